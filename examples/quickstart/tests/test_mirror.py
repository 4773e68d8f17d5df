"""The mirror (a shell pipeline) sends every line back, in each test's own namespace."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("line", ["hello", "two words", "ünïcode", "last"])
def test_mirror_echoes_a_line(parallel_test_context, mqtt_client, line):
    parallel_test_context.services.start("mirror")
    mqtt_client.subscribe("mirror/out", qos=1)
    mqtt_client.publish("mirror/in", line.encode(), qos=1)
    answer = mqtt_client.wait_for("mirror/out", lambda m: m.payload == line.encode(), timeout=20)
    assert answer.payload.decode() == line
