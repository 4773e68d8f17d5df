"""The relay scales every sensor's readings, each test against its own relay."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("sensor", [f"boiler-{n}" for n in range(8)])
def test_relay_scales_a_reading(parallel_test_context, mqtt_client, sensor):
    parallel_test_context.services.start("relay")
    mqtt_client.subscribe(f"sensors/{sensor}/scaled", qos=1)
    mqtt_client.publish(f"sensors/{sensor}/raw", b"21.5", qos=1)
    answer = mqtt_client.wait_for(f"sensors/{sensor}/scaled", timeout=20)
    assert answer.payload == b"43"


def test_relay_ignores_garbage(parallel_test_context, mqtt_client):
    relay = parallel_test_context.services.start("relay")
    mqtt_client.subscribe("sensors/+/scaled", qos=1)
    mqtt_client.publish("sensors/boiler-x/raw", b"not a number", qos=1)
    mqtt_client.publish("sensors/boiler-y/raw", b"1", qos=1)
    assert mqtt_client.wait_for("sensors/boiler-y/scaled", timeout=20).payload == b"2"
    assert mqtt_client.messages("sensors/boiler-x/scaled") == []
    # The relay's output reaches its log a moment after it wrote it (through
    # the container's log stream on the docker backend): wait for the line.
    relay.wait_for_log("ignored b'not a number' from boiler-x", timeout=20)
