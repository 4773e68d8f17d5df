"""The cross-talk spy against a real broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from parallel_isolation.mqtt.brokers import TestMQTTBroker, find_mosquitto
from parallel_isolation.mqtt.spy import CrossTalkSpy
from parallel_isolation.ownership import SESSION_THREAD_PREFIX
from parallel_isolation.session.context import WorkerContext

BACKEND = "process" if find_mosquitto() else "embedded"


@pytest.fixture
def broker(isolation_worker: WorkerContext, tmp_path: Path) -> Iterator[TestMQTTBroker]:
    with TestMQTTBroker(
        identity=isolation_worker.identity,
        allocator=isolation_worker.allocator,
        workdir=tmp_path / "broker",
        backend=BACKEND,
        name="spy-test-broker",
    ) as running:
        yield running


@pytest.fixture
def spy(broker: TestMQTTBroker, tmp_path: Path) -> Iterator[CrossTalkSpy]:
    assert broker.port is not None
    watcher = CrossTalkSpy(
        host=broker.host,
        port=broker.port,
        client_id=f"spy-test-{tmp_path.name}"[:60],
        allowed=("test/abcd1234/gw0",),
        out_path=tmp_path / "crosstalk.jsonl",
        thread_name=f"{SESSION_THREAD_PREFIX}-spy-test",
    ).start()
    yield watcher
    watcher.stop()


def publish_all(broker: TestMQTTBroker, topics: list[str], client_id: str) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    assert broker.port is not None
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for topic in topics:
            client.publish(topic, topic.encode(), qos=1).wait_for_publish(5)
        # A final marker on an ignored topic: once the spy saw it, it saw the rest
        # (one connection, QoS 1 publishes, delivered in order).
        client.publish("_isolation/done", b"", qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def recorded(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["topic"] for line in path.read_text().splitlines()]


def test_records_only_topics_outside_the_namespaces(
    broker: TestMQTTBroker, spy: CrossTalkSpy, tmp_path: Path
) -> None:
    topics = [
        "test/abcd1234/gw0/t-11111111/fire/trigger",  # a test's namespace: fine
        "test/abcd1234/gw0/system/health",  # the worker's namespace: fine
        "test/abcd1234/gw1/t-22222222/fire/trigger",  # another worker's: cross-talk
        "fire/trigger",  # bare: cross-talk
        "_isolation/ready/x",  # readiness canary: ignored
    ]
    publish_all(broker, topics, f"pub-{tmp_path.name}"[:60])
    assert spy.wait_seen(len(topics) + 1, timeout=5)
    assert recorded(tmp_path / "crosstalk.jsonl") == [
        "test/abcd1234/gw1/t-22222222/fire/trigger",
        "fire/trigger",
    ]
    assert spy.thread_name.startswith(SESSION_THREAD_PREFIX)


def test_spy_survives_a_broker_restart(
    broker: TestMQTTBroker, spy: CrossTalkSpy, tmp_path: Path
) -> None:
    broker.restart()
    assert spy.wait_subscribed(10), "the spy reconnected and subscribed again"
    before = spy.seen
    publish_all(broker, ["after/restart"], f"pub2-{tmp_path.name}"[:60])
    assert spy.wait_seen(before + 2, timeout=5)
    assert recorded(tmp_path / "crosstalk.jsonl") == ["after/restart"]


def test_spy_that_cannot_connect_raises(tmp_path: Path, isolation_worker: WorkerContext) -> None:
    port = isolation_worker.allocator.allocate("nobody listens here")
    try:
        watcher = CrossTalkSpy(
            host="127.0.0.1",
            port=port,
            client_id="spy-refused",
            allowed=("x",),
            out_path=tmp_path / "c.jsonl",
        )
        with pytest.raises(OSError, match="refused"):
            watcher.start(timeout=1.0)
    finally:
        isolation_worker.allocator.release(port)
