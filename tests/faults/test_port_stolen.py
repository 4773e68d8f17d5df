"""A broker's port taken by a foreign process between the allocator's probe and the broker's bind.

What must hold: the broker start is retried on another port (the stolen one
quarantined), the retry is in the worker's events (``port_retry``,
``port_conflict``), the broker works, and the foreign process is untouched.
The theft happens at the worst moment: right after the probe said the port
was free (the allocator's ``port_reserved`` event), before the broker binds.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parallel_isolation.artifacts import EventLog, read_events
from parallel_isolation.containers.engine import engine_problem
from parallel_isolation.identity import Identity
from parallel_isolation.mqtt.brokers import TestMQTTBroker, find_mosquitto
from parallel_isolation.mqtt.client import connect_client, disconnect_quietly
from parallel_isolation.session.context import WorkerContext
from parallel_isolation.settings import Settings

pytestmark = pytest.mark.slow

LISTENER = """
import socket, sys
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


class Thief(EventLog):
    """An event log that, on the first reservation, has a foreign process take that port."""

    def __init__(self, path: Path, worker_id: str) -> None:
        super().__init__(path, worker_id)
        self.stolen: int | None = None
        self.listener: subprocess.Popen[str] | None = None

    def emit(self, kind: str, **fields: Any) -> None:
        if kind == "port_reserved" and self.stolen is None and "broker" in str(fields["purpose"]):
            self.stolen = int(fields["port"])
            self.listener = subprocess.Popen(
                [sys.executable, "-c", LISTENER, str(self.stolen)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={"PATH": "/usr/bin:/bin"},  # no markers: not ours
            )
            assert self.listener.stdout is not None
            assert self.listener.stdout.readline() == "listening\n"
        super().emit(kind, **fields)

    def release(self) -> None:
        if self.listener is not None:
            assert self.listener.stdin is not None
            self.listener.stdin.close()
            self.listener.wait(30)


BACKENDS = [
    pytest.param("process", marks=pytest.mark.skipif(not find_mosquitto(), reason="no mosquitto")),
    "embedded",
    pytest.param("docker", marks=pytest.mark.docker),
]


@pytest.fixture
def worker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[WorkerContext]:
    backend = request.param
    if backend == "docker" and (problem := engine_problem()):
        pytest.skip(f"no Docker engine: {problem}")
    identity = Identity.resolve(run_id="5701e4aa", worker_id="gw871")
    settings = Settings(
        backend=backend, artifacts=str(tmp_path / "runs"), state_dir=str(tmp_path / "state")
    )
    context = WorkerContext(identity, settings)
    yield context
    assert context.close() == []


@pytest.mark.parametrize("worker", BACKENDS, indirect=True)
def test_a_port_stolen_after_the_probe_is_retried_elsewhere(
    worker: WorkerContext, tmp_path: Path
) -> None:
    thief = Thief(tmp_path / "thief-events.jsonl", worker.identity.worker_id)
    worker.allocator.events = thief
    try:
        broker = TestMQTTBroker(
            identity=worker.identity,
            allocator=worker.allocator,
            workdir=worker.artifacts.logs_dir,
            backend=worker.docker_broker_backend(base="mqtt-broker-stolen")
            if worker.backend_name == "docker"
            else worker.backend_name,
            events=thief,
            name="mqtt-broker",
        )
        with broker:
            assert thief.stolen is not None, "the port was never reserved"
            assert broker.port != thief.stolen
            assert broker.port is not None
            client = connect_client(
                broker.host,
                broker.port,
                client_id=worker.client_id("after-theft"),
                namespace=worker.namespace.child("theft"),
            )
            try:
                client.subscribe("after/theft", qos=1)
                client.publish("after/theft", b"1", qos=1)
                assert client.wait_for("after/theft", timeout=30).payload == b"1"
            finally:
                disconnect_quietly([client])
        assert thief.listener is not None
        assert thief.listener.poll() is None, "the foreign listener was touched"
        events = read_events(thief.path)
        retries = [e for e in events if e["kind"] == "port_retry"]
        assert [e["port"] for e in retries] == [thief.stolen], events
        assert "in use" in retries[0]["error"].lower() or "allocated" in retries[0]["error"]
        assert [e["port"] for e in events if e["kind"] == "port_conflict"] == [thief.stolen]
    finally:
        thief.release()
