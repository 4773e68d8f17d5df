"""MQTT behaviour the services rely on: QoS, payload sizes, retained messages, wills.

Migrated form (``invoke migrate`` plus the hand edits listed in
tests/unit/migrate/expected_differences.toml): the worker's broker, the test's
topic namespace, unique client ids, SUBACK and CONNACK instead of sleeps.
"""

from __future__ import annotations

import json
import os
import threading

import paho.mqtt.client as mqtt
import pytest
from parallel_isolation import TestMQTTBroker


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


def connect(client_id: str, inbox: Inbox | None = None, *, mqtt_broker: TestMQTTBroker) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    if inbox is not None:
        client.on_message = inbox
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    return client


def subscribe(client: mqtt.Client, topic: str, qos: int = 0) -> None:
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.subscribe(topic, qos=qos)
    assert subscribed.wait(10), "no SUBACK for the subscription"  # let the broker register the subscription


def close(*clients: mqtt.Client) -> None:
    for client in clients:
        client.disconnect()
        client.loop_stop()


def test_publish_subscribe_round_trip(mqtt_broker, parallel_test_context, topic_namespace):
    inbox = Inbox()
    sub = connect(parallel_test_context.client_id("optimized-subscriber"), inbox, mqtt_broker=mqtt_broker)
    pub = connect(parallel_test_context.client_id("optimized-publisher"), mqtt_broker=mqtt_broker)
    try:
        subscribe(sub, topic_namespace.filter("test/roundtrip"), qos=1)
        pub.publish(topic_namespace.topic("test/roundtrip"), b"hello", qos=1)
        assert inbox.wait(1)
        assert topic_namespace.strip(inbox.messages[0].topic) == "test/roundtrip"
        assert inbox.messages[0].payload == b"hello"
    finally:
        close(sub, pub)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_qos_levels(mqtt_broker, qos, parallel_test_context, topic_namespace):
    inbox = Inbox()
    sub = connect(parallel_test_context.client_id("optimized-qos-subscriber"), inbox, mqtt_broker=mqtt_broker)
    pub = connect(parallel_test_context.client_id("optimized-qos-publisher"), mqtt_broker=mqtt_broker)
    try:
        subscribe(sub, topic_namespace.filter("test/qos"), qos=qos)
        for index in range(10):
            pub.publish(topic_namespace.topic("test/qos"), json.dumps({"n": index}), qos=qos)
        assert inbox.wait(10)
        assert [json.loads(m.payload)["n"] for m in inbox.messages] == list(range(10))
        assert {m.qos for m in inbox.messages} == {qos}
    finally:
        close(sub, pub)


@pytest.mark.parametrize("size", [100, 1024, 64 * 1024, 256 * 1024])
def test_payload_sizes(mqtt_broker, size, parallel_test_context, topic_namespace):
    inbox = Inbox()
    sub = connect(parallel_test_context.client_id("optimized-size-subscriber"), inbox, mqtt_broker=mqtt_broker)
    pub = connect(parallel_test_context.client_id("optimized-size-publisher"), mqtt_broker=mqtt_broker)
    payload = os.urandom(size)
    try:
        subscribe(sub, topic_namespace.filter("test/payload"), qos=1)
        pub.publish(topic_namespace.topic("test/payload"), payload, qos=1)
        assert inbox.wait(1)
        assert inbox.messages[0].payload == payload
    finally:
        close(sub, pub)


def test_retained_message_reaches_late_subscriber(mqtt_broker, parallel_test_context, topic_namespace):
    pub = connect(parallel_test_context.client_id("optimized-retain-publisher"), mqtt_broker=mqtt_broker)
    pub.publish(topic_namespace.topic("test/retained/state"), b"ARMED", qos=1, retain=True).wait_for_publish(5)
    inbox = Inbox()
    late = connect(parallel_test_context.client_id("optimized-retain-late"), inbox, mqtt_broker=mqtt_broker)
    try:
        subscribe(late, topic_namespace.filter("test/retained/#"), qos=1)
        assert inbox.wait(1)
        assert topic_namespace.strip(inbox.messages[0].topic) == "test/retained/state"
        assert inbox.messages[0].retain
        assert inbox.messages[0].payload == b"ARMED"
    finally:
        close(pub, late)


def test_last_will_on_abrupt_disconnect(mqtt_broker, parallel_test_context, topic_namespace):
    inbox = Inbox()
    watcher = connect(parallel_test_context.client_id("optimized-will-watcher"), inbox, mqtt_broker=mqtt_broker)
    subscribe(watcher, topic_namespace.filter("test/clients/+/status"), qos=1)
    doomed = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=parallel_test_context.client_id("optimized-will-doomed"))
    doomed.will_set(topic_namespace.topic("test/clients/doomed/status"), b"offline", qos=1)
    connected = threading.Event()
    doomed.on_connect = lambda *_: connected.set()
    doomed.connect(mqtt_broker.host, mqtt_broker.port)
    doomed.loop_start()
    assert connected.wait(10), "no CONNACK from the broker"
    doomed._sock_close()  # no DISCONNECT: the broker must publish the will
    doomed.loop_stop()
    try:
        assert inbox.wait(1)
        assert topic_namespace.strip(inbox.messages[0].topic) == "test/clients/doomed/status"
        assert inbox.messages[0].payload == b"offline"
    finally:
        close(watcher)


def test_two_clients_do_not_hear_each_others_topics(mqtt_broker, parallel_test_context, topic_namespace):
    alpha, beta = Inbox(), Inbox()
    client_a = connect(parallel_test_context.client_id("optimized-alpha"), alpha, mqtt_broker=mqtt_broker)
    client_b = connect(parallel_test_context.client_id("optimized-beta"), beta, mqtt_broker=mqtt_broker)
    try:
        subscribe(client_a, topic_namespace.filter("test/alpha/#"), qos=1)
        subscribe(client_b, topic_namespace.filter("test/beta/#"), qos=1)
        client_a.publish(topic_namespace.topic("test/beta/ping"), b"for-beta", qos=1)
        client_b.publish(topic_namespace.topic("test/alpha/ping"), b"for-alpha", qos=1)
        assert alpha.wait(1)
        assert beta.wait(1)
        assert [m.payload for m in alpha.messages] == [b"for-alpha"]
        assert [m.payload for m in beta.messages] == [b"for-beta"]
    finally:
        close(client_a, client_b)


@pytest.mark.parametrize("attempt", range(4))
def test_topic_prefix_is_unique_per_process(mqtt_broker, attempt, parallel_test_context):
    record = parallel_test_context.artifacts.run_dir / "worker-prefixes.txt"
    worker_prefix = parallel_test_context.worker.namespace.prefix
    assert parallel_test_context.run_id in worker_prefix
    assert worker_prefix.endswith(f"/{parallel_test_context.worker_id}")
    record.touch()
    mine = f"{worker_prefix} {parallel_test_context.worker_id}"
    others = [line for line in record.read_text().splitlines() if line and line != mine]
    with record.open("a") as handle:
        handle.write(mine + "\n")
    clashes = [line for line in others if line.split()[0] == worker_prefix]
    assert not clashes, f"prefix {worker_prefix!r} also used by {clashes}"
