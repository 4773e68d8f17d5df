"""The ``docker`` broker backend: isolation between workers, crashes, restarts."""

from __future__ import annotations

from typing import Any

import pytest

from parallel_isolation.containers.broker import DockerBrokerBackend
from parallel_isolation.mqtt.brokers import BrokerBackend, BrokerCrashedError
from parallel_isolation.session.context import ParallelTestContext

pytestmark = pytest.mark.docker

SERVICES = "parallel-isolation/wildfire-services:latest"


def _resolve(worker: Any, host: str) -> tuple[int | None, str]:
    """Resolve ``host`` from a one-shot container on ``worker``'s network."""
    return worker.containers.run_to_completion(
        "resolver",
        SERVICES,
        ["python3", "-c", f"import socket; print(socket.gethostbyname({host!r}))"],
        timeout=60,
    )


def test_backend_satisfies_the_protocol(make_worker: Any) -> None:
    broker = make_worker("gw821").broker
    assert isinstance(broker.backend, DockerBrokerBackend)
    assert isinstance(broker.backend, BrokerBackend)
    assert broker.backend_name == "docker"
    assert "mqtt-broker-gw821" in broker.backend.describe()


def test_two_workers_cannot_see_each_other(make_worker: Any, run_id: str) -> None:
    a = make_worker("gw822")
    b = make_worker("gw823")
    broker_a, broker_b = a.broker, b.broker
    assert broker_a.port != broker_b.port
    name_a, _ = broker_a.backend.container_address
    name_b, _ = broker_b.backend.container_address

    code, output = _resolve(a, name_a)
    assert code == 0, output
    code, output = _resolve(a, name_b)
    assert code != 0, f"worker A's network resolved worker B's broker: {output}"
    assert "gaierror" in output
    code, output = _resolve(b, name_a)
    assert code != 0, output

    # And on the MQTT level: a message on A's broker never reaches B's.
    context_a = ParallelTestContext(a, "tests/x.py::test_a")
    context_b = ParallelTestContext(b, "tests/x.py::test_b")
    try:
        on_a, on_b = context_a.mqtt_client(), context_b.mqtt_client()
        on_a.subscribe("probe/#", qos=1)
        on_b.subscribe("probe/#", qos=1)
        on_a.publish("probe/a", b"only-a", qos=1)
        on_a.wait_for("probe/a", timeout=10)
        on_b.publish("probe/b", b"only-b", qos=1)
        on_b.wait_for("probe/b", timeout=10)  # B's own message arrived after A's was sent
        assert [m.topic for m in on_b.messages()] == ["probe/b"]
        assert [m.topic for m in on_a.messages()] == ["probe/a"]
    finally:
        assert context_a.close() == context_b.close() == []


def test_crash_is_detected_with_the_log_tail(make_worker: Any, docker_client: Any) -> None:
    worker = make_worker("gw824")
    broker = worker.broker
    port = broker.port
    sdk = docker_client.containers.get(broker.backend.container_name)
    sdk.kill()
    sdk.wait(timeout=30)  # the engine says it exited

    assert broker.crashed()
    with pytest.raises(BrokerCrashedError) as caught:
        broker.check_alive()
    assert "mosquitto version" in str(caught.value)
    assert "mqtt-broker-gw824" in str(caught.value)

    report = worker.recover_broker()  # what the fixture does after the test
    assert report is not None
    assert "crashed" in report
    assert broker.is_running()
    assert broker.port == port


def test_restart_keeps_the_published_port(make_worker: Any, docker_client: Any) -> None:
    worker = make_worker("gw825")
    broker = worker.broker
    port = broker.port
    first = broker.backend.container.id

    broker.restart()

    assert broker.port == port
    assert broker.backend.container.id != first
    bindings = docker_client.containers.get(broker.backend.container_name).attrs["HostConfig"][
        "PortBindings"
    ]
    assert bindings["1883/tcp"][0]["HostPort"] == str(port)
    context = ParallelTestContext(worker, "tests/x.py::test_restart")
    try:
        client = context.mqtt_client()
        client.subscribe("after/restart", qos=1)
        client.publish("after/restart", b"1", qos=1)
        client.wait_for("after/restart", timeout=10)
    finally:
        assert context.close() == []
    # Both containers' logs are in the one artifacts file, one header each.
    log = broker.backend.log_path.read_text()
    assert log.count("=== container mqtt-broker-gw825") == 1  # the first, removed at restart
    broker.stop()
    assert broker.backend.log_path.read_text().count("=== container mqtt-broker-gw825") == 2
