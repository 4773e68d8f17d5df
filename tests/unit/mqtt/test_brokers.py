from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from parallel_isolation.artifacts import EventLog, read_events
from parallel_isolation.host.ports import PortAllocator
from parallel_isolation.mqtt.brokers import (
    BACKENDS,
    BrokerBackend,
    BrokerCrashedError,
    BrokerError,
    ProcessBackend,
    TestMQTTBroker,
    find_mosquitto,
    resolve_backend_name,
)
from parallel_isolation.session.context import WorkerContext

LOCAL_BACKENDS = ["process", "embedded"]
pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="process backend needs mosquitto")


@pytest.fixture
def make_broker(isolation_worker: WorkerContext, tmp_path: Path) -> Iterator[object]:
    made: list[TestMQTTBroker] = []

    def make(backend: str, name: str = "mqtt-broker", **kwargs: object) -> TestMQTTBroker:
        broker = TestMQTTBroker(
            identity=isolation_worker.identity,
            allocator=kwargs.pop("allocator", isolation_worker.allocator),  # type: ignore[arg-type]
            workdir=tmp_path / name,
            backend=backend,
            events=EventLog(tmp_path / "events.jsonl", isolation_worker.identity.worker_id),
            name=name,
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.stop()


def _round_trip(host: str, port: int, topic: str = "probe/x", timeout: float = 5.0) -> bytes | None:
    got: list[bytes] = []
    event = threading.Event()
    subscribed = threading.Event()
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=f"rt-{port}-{threading.get_ident()}"
    )
    client.on_message = lambda _c, _u, m: (got.append(m.payload), event.set())
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect(host, port)
    client.loop_start()
    try:
        client.subscribe(topic, 1)
        assert subscribed.wait(timeout)
        client.publish(topic, b"ping", qos=1)
        return got[0] if event.wait(timeout) else None
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_backend_satisfies_protocol(
    backend: str, isolation_worker: WorkerContext, tmp_path: Path
) -> None:
    instance = BACKENDS[backend](
        identity=isolation_worker.identity, workdir=tmp_path, log_path=tmp_path / "b.log"
    )
    assert isinstance(instance, BrokerBackend)


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_start_ready_round_trip_and_stop(
    backend: str, make_broker, isolation_worker: WorkerContext
) -> None:  # type: ignore[no-untyped-def]
    broker = make_broker(backend)
    broker.start()
    assert broker.ready_seconds is not None
    assert broker.port in isolation_worker.allocator.held
    assert _round_trip(broker.host, broker.port) == b"ping"
    port = broker.port
    broker.stop()
    assert not broker.is_running()
    assert port not in isolation_worker.allocator.held
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_two_brokers_are_isolated(backend: str, make_broker) -> None:  # type: ignore[no-untyped-def]
    a = make_broker(backend, "broker-a").start()
    b = make_broker(backend, "broker-b").start()
    assert a.port != b.port
    heard = threading.Event()
    ready = threading.Event()
    listener = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="listen-b")
    listener.on_message = lambda *_a: heard.set()
    listener.on_subscribe = lambda *_a: ready.set()
    listener.connect(b.host, b.port)
    listener.loop_start()
    try:
        listener.subscribe("#", 1)
        assert ready.wait(5)
        assert _round_trip(b.host, b.port, "own/topic") == b"ping"
        assert heard.wait(5), "the listener hears its own broker"
        heard.clear()
        assert _round_trip(a.host, a.port, "shared/topic") == b"ping"
        assert not heard.wait(0.3), "broker B saw broker A's traffic"
    finally:
        listener.disconnect()
        listener.loop_stop()


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_restart_keeps_the_port(backend: str, make_broker) -> None:  # type: ignore[no-untyped-def]
    broker = make_broker(backend).start()
    port = broker.port
    broker.restart()
    assert broker.port == port
    assert broker.restarts == 1
    assert _round_trip(broker.host, port) == b"ping"


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_crash_is_detected_with_log_tail(backend: str, make_broker) -> None:  # type: ignore[no-untyped-def]
    broker = make_broker(backend).start()
    assert not broker.crashed()
    broker.kill()
    assert broker.crashed()
    with pytest.raises(BrokerCrashedError, match="died during the run") as info:
        broker.check_alive()
    assert "last log lines" in str(info.value)
    assert str(broker.port) in str(info.value)
    broker.resume()
    assert not broker.crashed()
    assert _round_trip(broker.host, broker.port) == b"ping"


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_port_taken_after_probe_is_retried(
    backend: str, make_broker, isolation_worker: WorkerContext, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # No bind probe: the broker itself meets the foreign listener, as when a
    # foreign process wins the race between our probe and the broker's bind.
    events = EventLog(tmp_path / "alloc.jsonl", "gw0")
    allocator = PortAllocator(
        isolation_worker.identity,
        base=30000 + isolation_worker.identity.worker_number * 50,
        block_size=50,
        state_dir=tmp_path / "state",
        events=events,
        probe_host=None,
    )
    first = next(allocator.candidates())
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", first))
        foreign.listen()
        broker = make_broker(backend, allocator=allocator).start()
        assert broker.port == first + 1
    kinds = [e["kind"] for e in read_events(tmp_path / "alloc.jsonl")]
    assert "port_retry" in kinds
    assert "port_conflict" in kinds


def test_failed_start_releases_everything_and_shows_the_log(
    make_broker, isolation_worker: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ProcessBackend, "config_text", lambda self, port: "no_such_option 1\n")
    broker = make_broker("process")
    before = dict(isolation_worker.allocator.held)
    with pytest.raises(BrokerError, match="did not become ready") as info:
        broker.start()
    assert "no_such_option" in str(info.value), "the broker's own complaint is shown"
    assert isolation_worker.allocator.held == before
    assert not broker.is_running()


def test_backend_names() -> None:
    assert resolve_backend_name("auto") == "process"
    assert resolve_backend_name("embedded") == "embedded"
    with pytest.raises(ValueError, match="unknown broker backend 'nats'"):
        resolve_backend_name("nats")


def test_broker_class_is_not_collected() -> None:
    assert TestMQTTBroker.__test__ is False


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_retained_messages_reach_only_matching_subscriptions(backend: str, make_broker) -> None:  # type: ignore[no-untyped-def]
    # amqtt replays every known filter's retained messages to each new client;
    # the embedded backend must not (it would leak across namespaces).
    broker = make_broker(backend).start()
    got: list[str] = []
    first = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="ret-first")
    first.connect(broker.host, broker.port)
    first.loop_start()
    first.publish("ns1/state", b"ARMED", qos=1, retain=True).wait_for_publish(5)
    replayed = threading.Event()
    first.on_message = lambda *_a: replayed.set()
    first.subscribe("ns1/#", 1)  # now the broker knows a filter matching the retained message
    assert replayed.wait(5)
    first.disconnect()
    first.loop_stop()
    acked = threading.Event()
    other = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="ret-other")
    other.on_message = lambda _c, _u, m: got.append(m.topic)
    other.on_subscribe = lambda *_a: acked.set()
    other.connect(broker.host, broker.port)
    other.loop_start()
    try:
        other.subscribe("ns2/#", 1)
        assert acked.wait(5)
        assert _round_trip(broker.host, broker.port, "ns2/probe") == b"ping"
        assert "ns1/state" not in got
    finally:
        other.disconnect()
        other.loop_stop()


_OWNER_SCRIPT = """
import sys, time
from pathlib import Path
from parallel_isolation.mqtt.brokers import TestMQTTBroker
from parallel_isolation.identity import Identity
from parallel_isolation.host.ports import PortAllocator
ident = Identity.resolve(run_id="deadbeef", worker_id="gw0")
allocator = PortAllocator(ident, base=int(sys.argv[2]), block_size=20, state_dir=Path(sys.argv[1]) / "state")
broker = TestMQTTBroker(identity=ident, allocator=allocator, workdir=Path(sys.argv[1]) / "logs", backend=sys.argv[3])
broker.start()
print(broker.backend.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_sigkilled_owner_takes_its_broker_along(
    backend: str, tmp_path: Path, isolation_worker: WorkerContext
) -> None:
    import signal
    import subprocess
    import sys

    import psutil

    base = 36000 + isolation_worker.identity.worker_number * 40
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT, str(tmp_path), str(base), backend],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        broker_pid = int(owner.stdout.readline())  # type: ignore[union-attr]
        broker = psutil.Process(broker_pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        gone, _ = psutil.wait_procs([broker], timeout=10)
        assert broker in gone, f"broker pid {broker_pid} outlived its SIGKILLed owner"
    finally:
        if owner.poll() is None:
            owner.kill()
