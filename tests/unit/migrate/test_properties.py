"""Properties of the whole pipeline on generated modules.

Whatever the mix of hazards, scopes and signatures: the rewrite compiles,
running it again changes nothing, and nothing it calls auto-fixable is left.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parallel_isolation.migrate import check_source, migrate_source

HEADER = """\
import json
import time

import docker
import paho.mqtt.client as mqtt
import pytest

BROKER_HOST = "localhost"
BROKER_PORT = 18833
TOPIC = "fire/trigger"
NAME = "svc-test"


def helper(client, topic, payload=b""):
    client.publish(topic, payload)


def make_client(client_id):
    client = mqtt.Client(client_id=client_id)
    client.connect(BROKER_HOST, BROKER_PORT)
    return client
"""

STATEMENTS = [
    'client = mqtt.Client(client_id="c1")',
    "client.connect(BROKER_HOST, BROKER_PORT)",
    'client.connect("localhost", 1883)',
    'client.publish(TOPIC, b"x")',
    'client.publish(f"cam/{n}/fire", b"x")',
    'client.subscribe([("a/+", 0), ("b/#", 1)])',
    'env = {"MQTT_BROKER": BROKER_HOST, "MQTT_PORT": str(BROKER_PORT)}',
    'helper(client, "h/topic")',
    'other = make_client("other")',
    "time.sleep(1)",
    'ok = msg.topic == "a/b"',
    'docker.from_env().containers.run("img", name=NAME, network="net-x")',
    'for t in ["x/1", "x/2"]:\n        client.unsubscribe(t)',
    'def on_message(c, u, m):\n        return m.topic.startswith("a/")',
]


@st.composite
def functions(draw: st.DrawFn, index: int) -> str:
    kind = draw(st.sampled_from(["test", "fixture", "fixture-module", "fixture-session"]))
    params = draw(st.lists(st.sampled_from(["n", "msg", "client", "stack"]), unique=True))
    defaults = draw(st.booleans()) and bool(params)
    multiline = draw(st.booleans())
    rendered = [
        f"{p}=None" if defaults and i == len(params) - 1 else p for i, p in enumerate(params)
    ]
    if multiline and rendered:
        signature = "(\n    " + ",\n    ".join(rendered) + ",\n)"
    else:
        signature = "(" + ", ".join(rendered) + ")"
    body = draw(st.lists(st.sampled_from(STATEMENTS), min_size=1, max_size=6))
    decorator = {
        "test": "",
        "fixture": "@pytest.fixture\n",
        "fixture-module": '@pytest.fixture(scope="module")\n',
        "fixture-session": '@pytest.fixture(scope="session")\n',
    }[kind]
    name = f"test_case_{index}" if kind == "test" else f"resource_{index}"
    lines = "\n".join("    " + statement for statement in body)
    return f"\n\n{decorator}def {name}{signature}:\n{lines}\n"


@st.composite
def modules(draw: st.DrawFn) -> str:
    count = draw(st.integers(min_value=1, max_value=4))
    return HEADER + "".join(draw(functions(index)) for index in range(count))


# Derandomized: a gate that fails on an example no earlier run drew is not
# reproducible. Examples random draws found are kept below as plain tests.
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(modules())
def test_rewrite_compiles_is_idempotent_and_complete(source: str) -> None:
    compile(source, "generated.py", "exec")
    result = migrate_source(source, "generated.py")
    assert not result.failed, result.findings
    assert result.rewritten is not None
    compile(result.rewritten, "generated.py", "exec")
    again = migrate_source(result.rewritten, "generated.py")
    assert not again.changed, again.diff()
    left = check_source(result.rewritten, "generated.py")
    assert not [f for f in left if f.autofix], [str(f) for f in left if f.autofix]
    assert sorted(left) == sorted(result.findings)


# Found by the property above (a random draw): test_case_1's literal broker
# address sits in the broker flow of the blocked BROKER_HOST/BROKER_PORT
# constants only through the topic constant both tests publish.  Once the
# rewrite had namespaced that topic, the tie was gone and a second pass moved
# the address the first had left (and had reported as auto-fix).
TOPIC_TIED = (
    HEADER
    + '\n\ndef test_case_0():\n    client.connect(BROKER_HOST, BROKER_PORT)\n    client.publish(TOPIC, b"x")\n\n\ndef test_case_1():\n    client.connect("localhost", 1883)\n    client.publish(TOPIC, b"x")\n'
)


def test_a_topic_constant_ties_its_readers_before_and_after_the_rewrite() -> None:
    result = migrate_source(TOPIC_TIED, "generated.py")
    assert result.rewritten is not None
    assert "topic_namespace.topic(TOPIC)" in result.rewritten
    again = migrate_source(result.rewritten, "generated.py")
    assert not again.changed, again.diff()
    assert not [f for f in result.findings if f.autofix], [str(f) for f in result.findings]
    # The literal address stays, listed under the constant that holds it back.
    host = next(f for f in result.findings if f.code == "PI101" and f.line == 8)
    assert "generated.py:30:20" in host.related
    assert sorted(check_source(result.rewritten, "generated.py")) == sorted(result.findings)
