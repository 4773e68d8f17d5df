"""ServiceRunner in container mode: the system under test as containers on the worker's network."""

from __future__ import annotations

from typing import Any

import pytest

from parallel_isolation import ownership
from parallel_isolation.containers.services import ContainerService
from parallel_isolation.services.runner import RunningService
from parallel_isolation.session.context import ParallelTestContext

pytestmark = pytest.mark.docker


def test_service_runs_in_a_container_with_the_tests_environment(
    make_worker: Any, docker_client: Any, events_of: Any, run_id: str
) -> None:
    worker = make_worker("gw841")
    context = ParallelTestContext(worker, "tests/x.py::test_pump")
    watcher = context.mqtt_client("watch")
    watcher.subscribe("system/trigger_telemetry", qos=1)

    service = context.services.start("gpio_trigger", HEALTH_INTERVAL="0.5")
    assert isinstance(service, ContainerService)
    assert isinstance(service, RunningService)
    assert service.mode == "container"
    assert service.name == f"gpio-trigger-gw841-{run_id}"
    assert service.env["MQTT_BROKER"] == f"mqtt-broker-gw841-{run_id}"
    assert service.env["MQTT_PORT"] == "1883"
    sdk = docker_client.containers.get(service.name)
    assert sdk.labels[ownership.ROLE_LABEL] == "service:gpio_trigger"
    assert sdk.labels["io.parallel-isolation.test"] == "tests/x.py::test_pump"
    assert sdk.attrs["Config"]["Cmd"] == ["python3", "-m", "wildfire.gpio_trigger"]
    assert list(sdk.attrs["NetworkSettings"]["Networks"]) == [worker.network_name()]

    watcher.publish("fire/emergency", b"start", qos=1)
    watcher.wait_for(
        "system/trigger_telemetry", lambda m: m.json().get("state") == "PRIMING", timeout=15
    )
    # The line reaches the container's log stream a moment after the telemetry
    # may have arrived: wait_for_log waits for it on the stream.
    log = service.wait_for_log("event=state_change previous=IDLE state=PRIMING", timeout=30)
    assert log.startswith(service.log_text()[: len(log)])
    with pytest.raises(TimeoutError) as missing:
        service.wait_for_log("never written", timeout=0.2)
    assert f"{service.name}" in str(missing.value)
    assert "'never written' is not in its log (not within 0.2 s)" in str(missing.value)
    assert "state=PRIMING" in str(missing.value), "the message ends with the log's tail"

    assert context.close() == []
    assert not service.is_running()
    [stopped] = [e for e in events_of(worker, "container_removed") if e["name"] == service.name]
    assert stopped["exit_code"] == 0
    log = service.container.log_path.read_text()
    assert "event=signal_received signal=SIGTERM" in log
    assert "Failed to publish health" not in log


def test_same_service_twice_and_restart_get_distinct_names(
    make_worker: Any, docker_client: Any, run_id: str
) -> None:
    worker = make_worker("gw842")
    context = ParallelTestContext(worker, "tests/x.py::test_twice")
    runner = context.services
    first = runner.start("fire_consensus")
    second = runner.start("fire_consensus")
    plain = f"fire-consensus-gw842-{run_id}"
    assert (first.name, second.name) == (plain, f"{plain}-2")

    again = runner.restart(first)  # stops the first, frees its name
    assert not first.is_running()
    assert again.name == plain
    assert again.is_running()
    assert second.is_running()
    assert context.close() == []
    for name in (plain, f"{plain}-2"):
        assert docker_client.containers.list(all=True, filters={"name": f"^/{name}$"}) == []
