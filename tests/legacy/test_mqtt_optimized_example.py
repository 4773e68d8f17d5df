"""MQTT behaviour the services rely on: QoS, payload sizes, retained messages, wills.

Legacy form: fixed broker address, fixed client ids, bare topics under a fixed
"test" prefix, sleeps after subscribing.  Serially it passes; under xdist two
workers publish on the same topics with the same client ids.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

BROKER_HOST = "localhost"
BROKER_PORT = 18833
TEST_PREFIX = "test"
PREFIX_RECORD = Path("/tmp/wildfire-test-prefixes.txt")


@pytest.fixture(scope="module", autouse=True)
def fresh_prefix_record():
    PREFIX_RECORD.unlink(missing_ok=True)


class Inbox:
    """Collects messages; ``wait(n)`` blocks until n arrived."""

    def __init__(self) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.cond = threading.Condition()

    def __call__(self, client, userdata, message) -> None:
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.messages) >= count, timeout)


def connect(client_id: str, inbox: Inbox | None = None) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    if inbox is not None:
        client.on_message = inbox
    client.connect(BROKER_HOST, BROKER_PORT)
    client.loop_start()
    return client


def subscribe(client: mqtt.Client, topic: str, qos: int = 0) -> None:
    client.subscribe(topic, qos=qos)
    time.sleep(0.3)  # let the broker register the subscription


def close(*clients: mqtt.Client) -> None:
    for client in clients:
        client.disconnect()
        client.loop_stop()


def test_publish_subscribe_round_trip(mqtt_broker):
    inbox = Inbox()
    sub = connect("optimized-subscriber", inbox)
    pub = connect("optimized-publisher")
    try:
        subscribe(sub, "test/roundtrip", qos=1)
        pub.publish("test/roundtrip", b"hello", qos=1)
        assert inbox.wait(1)
        assert inbox.messages[0].topic == "test/roundtrip"
        assert inbox.messages[0].payload == b"hello"
    finally:
        close(sub, pub)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_qos_levels(mqtt_broker, qos):
    inbox = Inbox()
    sub = connect("optimized-qos-subscriber", inbox)
    pub = connect("optimized-qos-publisher")
    try:
        subscribe(sub, "test/qos", qos=qos)
        for index in range(10):
            pub.publish("test/qos", json.dumps({"n": index}), qos=qos)
        assert inbox.wait(10)
        assert [json.loads(m.payload)["n"] for m in inbox.messages] == list(range(10))
        assert {m.qos for m in inbox.messages} == {qos}
    finally:
        close(sub, pub)


@pytest.mark.parametrize("size", [100, 1024, 64 * 1024, 256 * 1024])
def test_payload_sizes(mqtt_broker, size):
    inbox = Inbox()
    sub = connect("optimized-size-subscriber", inbox)
    pub = connect("optimized-size-publisher")
    payload = os.urandom(size)
    try:
        subscribe(sub, "test/payload", qos=1)
        pub.publish("test/payload", payload, qos=1)
        assert inbox.wait(1)
        assert inbox.messages[0].payload == payload
    finally:
        close(sub, pub)


def test_retained_message_reaches_late_subscriber(mqtt_broker):
    pub = connect("optimized-retain-publisher")
    pub.publish("test/retained/state", b"ARMED", qos=1, retain=True).wait_for_publish(5)
    inbox = Inbox()
    late = connect("optimized-retain-late", inbox)
    try:
        subscribe(late, "test/retained/#", qos=1)
        assert inbox.wait(1)
        assert inbox.messages[0].topic == "test/retained/state"
        assert inbox.messages[0].retain
        assert inbox.messages[0].payload == b"ARMED"
    finally:
        close(pub, late)


def test_last_will_on_abrupt_disconnect(mqtt_broker):
    inbox = Inbox()
    watcher = connect("optimized-will-watcher", inbox)
    subscribe(watcher, "test/clients/+/status", qos=1)
    doomed = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="optimized-will-doomed")
    doomed.will_set("test/clients/doomed/status", b"offline", qos=1)
    doomed.connect(BROKER_HOST, BROKER_PORT)
    doomed.loop_start()
    time.sleep(0.5)
    doomed._sock_close()  # no DISCONNECT: the broker must publish the will
    doomed.loop_stop()
    try:
        assert inbox.wait(1)
        assert inbox.messages[0].topic == "test/clients/doomed/status"
        assert inbox.messages[0].payload == b"offline"
    finally:
        close(watcher)


def test_two_clients_do_not_hear_each_others_topics(mqtt_broker):
    alpha, beta = Inbox(), Inbox()
    client_a = connect("optimized-alpha", alpha)
    client_b = connect("optimized-beta", beta)
    try:
        subscribe(client_a, "test/alpha/#", qos=1)
        subscribe(client_b, "test/beta/#", qos=1)
        client_a.publish("test/beta/ping", b"for-beta", qos=1)
        client_b.publish("test/alpha/ping", b"for-alpha", qos=1)
        assert alpha.wait(1)
        assert beta.wait(1)
        assert [m.payload for m in alpha.messages] == [b"for-alpha"]
        assert [m.payload for m in beta.messages] == [b"for-beta"]
    finally:
        close(client_a, client_b)


@pytest.mark.parametrize("attempt", range(4))
def test_topic_prefix_is_unique_per_process(mqtt_broker, attempt):
    PREFIX_RECORD.touch()
    mine = f"{TEST_PREFIX} {os.getpid()}"
    others = [line for line in PREFIX_RECORD.read_text().splitlines() if line and line != mine]
    with PREFIX_RECORD.open("a") as record:
        record.write(mine + "\n")
    clashes = [line for line in others if line.split()[0] == TEST_PREFIX]
    assert not clashes, f"prefix {TEST_PREFIX!r} also used by {clashes}"
