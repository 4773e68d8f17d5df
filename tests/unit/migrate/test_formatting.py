"""Comments and odd formatting survive the whole pipeline; only the hazards change."""

from __future__ import annotations

import re

from parallel_isolation.migrate import migrate_source

BEFORE = '''\
#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Odd formatting on purpose."""
import paho.mqtt.client as mqtt   # the client
import pytest ; import time

BROKER = "localhost"  # legacy broker
PORT   = 1883


@pytest.mark.slow
# a comment between decorators
@pytest.mark.integration
def test_odd(
  stack,   # the stack fixture
  # a comment line inside the parameters
):
  client = mqtt.Client( client_id = "odd-client" )  # fixed id
  client.connect(BROKER,
                 PORT,   # the port
                 60)
  received = []
  def on_message(c, u, msg):  # callback
      if msg.topic == \\
              "fire/trigger":   # continuation
          received.append(msg)
  client.on_message = on_message
  client.subscribe (  "fire/trigger" ,qos = 1 ); client.loop_start()
  client.publish(
      # the topic
      "frigate/events",
      b"{}",   # payload
  )
  text = "# not a comment, 'fire/trigger'"
  time.sleep( 1 )  # isolation: ignore[PI112] - the fire needs time
'''

AFTER = '''\
#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Odd formatting on purpose."""
import paho.mqtt.client as mqtt   # the client
import pytest ; import time


# legacy broker
@pytest.mark.slow
# a comment between decorators
@pytest.mark.integration
def test_odd(
  stack,   # the stack fixture
  mqtt_broker,
  parallel_test_context,
  topic_namespace,
  # a comment line inside the parameters
):
  client = mqtt.Client( client_id = parallel_test_context.client_id("odd-client") )  # fixed id
  client.connect(mqtt_broker.host,
                 mqtt_broker.port,   # the port
                 60)
  received = []
  def on_message(c, u, msg):  # callback
      if topic_namespace.strip(msg.topic) == \\
              "fire/trigger":   # continuation
          received.append(msg)
  client.on_message = on_message
  client.subscribe (  topic_namespace.filter("fire/trigger") ,qos = 1 ); client.loop_start()
  client.publish(
      # the topic
      topic_namespace.topic("frigate/events"),
      b"{}",   # payload
  )
  text = "# not a comment, 'fire/trigger'"
  time.sleep( 1 )  # isolation: ignore[PI112] - the fire needs time
'''


def _comments(code: str) -> list[str]:
    return re.findall(r"#[^\n\"']*$", code, flags=re.MULTILINE)


def test_comments_and_formatting_survive() -> None:
    result = migrate_source(BEFORE, "odd.py")
    assert result.rewritten == AFTER
    assert _comments(result.rewritten) == _comments(BEFORE)
    assert result.findings == ()


def test_rewrite_is_idempotent_and_compiles() -> None:
    once = migrate_source(BEFORE, "odd.py").rewritten
    assert once is not None
    compile(once, "odd.py", "exec")
    twice = migrate_source(once, "odd.py")
    assert not twice.changed


def test_crlf_line_endings_are_kept() -> None:
    source = "import paho.mqtt.client as mqtt\r\n\r\ndef test_x(c):\r\n    c.publish('a/b')\r\n"
    result = migrate_source(source, "crlf.py")
    assert result.rewritten == (
        "import paho.mqtt.client as mqtt\r\n\r\ndef test_x(c, topic_namespace):\r\n"
        "    c.publish(topic_namespace.topic('a/b'))\r\n"
    )


def test_tabs_are_kept() -> None:
    source = "import paho\ndef test_x(c):\n\tif c:\n\t\tc.publish('a/b')\n"
    result = migrate_source(source, "tabs.py")
    assert result.rewritten == (
        "import paho\ndef test_x(c, topic_namespace):\n\tif c:\n"
        "\t\tc.publish(topic_namespace.topic('a/b'))\n"
    )
