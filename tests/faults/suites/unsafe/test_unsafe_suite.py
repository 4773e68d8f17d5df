"""A deliberately parallel-unsafe suite, as legacy integration tests were written.

Fixed MQTT client ids, bare topics, a fixed port, a service never stopped.
Run by the fault tests under ``-n 4`` (never collected directly); the port
comes from ``UNSAFE_FIXED_PORT`` so that only this run can collide on it.
"""

from __future__ import annotations

import os
import socket
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from wildfire.fire_consensus import FireConsensus, FireConsensusConfig

FIXED_PORT = int(os.environ["UNSAFE_FIXED_PORT"])
SERVERS: list[socket.socket] = []  # "started for the suite", never closed


def raw_client(broker, client_id: str) -> paho.Client:
    connected = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_connect = lambda *_: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert connected.wait(10)
    return client


def test_fixed_client_id(mqtt_broker):
    """The service and the test harness both use the service's default id."""
    service = raw_client(mqtt_broker, "fire_consensus")
    kicked = threading.Event()
    service.on_disconnect = lambda *_: kicked.set()
    harness = raw_client(mqtt_broker, "fire_consensus")
    try:
        assert kicked.wait(10), "the broker kicked the older client off"
    finally:
        for client in (harness, service):
            client.disconnect()
            client.loop_stop()


@pytest.mark.parametrize("n", range(4))
def test_bare_topics(n, mqtt_broker):
    got = threading.Event()
    client = raw_client(mqtt_broker, f"bare-{n}-{os.getpid()}")
    client.on_message = lambda *_: got.set()
    client.subscribe("fire/#", qos=1)
    client.publish("fire/detection", b'{"camera": "cam1"}', qos=1).wait_for_publish(5)
    try:
        assert got.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("n", range(4))
def test_fixed_port(n):
    server = socket.socket()
    server.bind(("127.0.0.1", FIXED_PORT))
    server.listen()
    SERVERS.append(server)


def test_service_never_stopped(mqtt_broker):
    service = FireConsensus(
        FireConsensusConfig(
            mqtt_broker=mqtt_broker.host, mqtt_port=mqtt_broker.port, health_interval=0.2
        )
    )
    service.start()
    assert service.wait_ready(10)
    # A message of the service has gone through the broker before the test
    # ends: the worker's spy (subscribed to '#' on that broker, flushed at
    # session end) has it even if this is the worker's last test.
    heard = threading.Event()
    watcher = raw_client(mqtt_broker, f"watch-{os.getpid()}")
    watcher.on_message = lambda *_: heard.set()
    watcher.subscribe("system/fire_consensus/#", qos=1)
    try:
        assert heard.wait(30), "no message of the service within 30 s"
    finally:
        watcher.disconnect()
        watcher.loop_stop()
