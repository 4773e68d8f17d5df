"""A realistic parallel-safe suite: what a migrated MQTT integration suite does.

Run by the fault tests (never collected directly).  Every test uses the
toolkit's fixtures, cleans up after itself and asserts that it saw nothing
of its siblings.
"""

from __future__ import annotations

import socket

import pytest

from wildfire.fire_consensus import FireConsensus, FireConsensusConfig


@pytest.mark.parametrize("n", range(12))
def test_roundtrip_and_retained(n, parallel_test_context, mqtt_client):
    mine = f"{parallel_test_context.nodeid}".encode()
    mqtt_client.publish("sensors/state", mine, qos=1, retain=True).wait_for_publish(5)
    watcher = parallel_test_context.mqtt_client("watcher")
    watcher.subscribe("sensors/#", qos=1)
    mqtt_client.publish("sensors/live", mine, qos=1).wait_for_publish(5)
    watcher.wait_for("sensors/live", timeout=10)
    assert watcher.wait_for("sensors/state", timeout=10).payload == mine
    assert {m.payload for m in watcher.messages("#")} == {mine}


@pytest.mark.parametrize("n", range(6))
def test_last_will(n, parallel_test_context):
    watcher = parallel_test_context.mqtt_client("watcher")
    watcher.subscribe("status/+", qos=1)
    dying = parallel_test_context.mqtt_client("dying", will=("status/dying", b"offline", 1, False))
    sock = dying.socket()
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)  # an abrupt drop: the broker publishes the will
    assert watcher.wait_for("status/dying", timeout=10).payload == b"offline"


@pytest.mark.parametrize("n", range(6))
def test_service_health(n, parallel_test_context, mqtt_client):
    env = parallel_test_context.service_env("fire_consensus", HEALTH_INTERVAL="0.2")
    mqtt_client.subscribe("system/fire_consensus/#", qos=1)
    service = FireConsensus(FireConsensusConfig.from_env(env))
    service.start()
    try:
        assert service.wait_ready(10)
        health = mqtt_client.wait_for("system/fire_consensus/health", timeout=10)
        assert health.json()["service"] == "fire_consensus"
    finally:
        service.stop()
    mqtt_client.wait_for("system/fire_consensus/lwt", lambda m: m.payload == b"offline", timeout=10)


@pytest.mark.parametrize("n", range(6))
def test_allocated_port(n, parallel_test_context):
    port = parallel_test_context.port("listener")
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            conn, _ = server.accept()
        conn.close()  # the client closed first: no TIME_WAIT on the allocated port


@pytest.mark.parametrize("n", range(6))
def test_wildcards_stay_inside(n, parallel_test_context, mqtt_client):
    mqtt_client.subscribe("#", qos=1)
    mqtt_client.publish("a/b/c", b"x", qos=1).wait_for_publish(5)
    mqtt_client.wait_for("a/b/c", timeout=10)
    assert all(
        m.full_topic.startswith(parallel_test_context.namespace.prefix + "/")
        for m in mqtt_client.messages("#")
    )
