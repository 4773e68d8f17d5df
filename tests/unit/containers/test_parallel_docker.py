"""The docker backend end to end: a small suite under ``-n 4`` in a pytest subprocess."""

from __future__ import annotations

import re
from typing import Any

import pytest

from parallel_isolation.artifacts import read_events

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SUITE = """
import pytest


@pytest.mark.parametrize("n", range(6))
def test_round_trip(mqtt_client, n):
    mqtt_client.subscribe("echo/#", qos=1)
    mqtt_client.publish(f"echo/{n}", b"x", qos=1)
    mqtt_client.wait_for(f"echo/{n}", timeout=15)


@pytest.mark.parametrize("n", range(4))
def test_pump_in_a_container(parallel_test_context, mqtt_client, n):
    mqtt_client.subscribe("system/trigger_telemetry", qos=1)
    service = parallel_test_context.services.start("gpio_trigger", HEALTH_INTERVAL="0.5")
    assert service.mode == "container"
    mqtt_client.publish("fire/emergency", b"start", qos=1)
    mqtt_client.wait_for(
        "system/trigger_telemetry", lambda m: m.json().get("state") == "PRIMING", timeout=20
    )


def test_restart_a_service(parallel_test_context):
    runner = parallel_test_context.services
    first = runner.start("fire_consensus")
    second = runner.restart(first)
    assert second.is_running()
    assert not first.is_running()


def test_same_service_twice(parallel_test_context):
    a = parallel_test_context.services.start("camera_detector")
    b = parallel_test_context.services.start("camera_detector")
    assert a.name != b.name


def test_broker_restart_keeps_port(mqtt_broker, parallel_test_context):
    port = mqtt_broker.port
    mqtt_broker.restart()
    assert mqtt_broker.port == port
    client = parallel_test_context.mqtt_client("after")
    client.subscribe("after", qos=1)
    client.publish("after", b"1", qos=1)
    client.wait_for("after", timeout=15)
"""

# The inner project registers the services it starts, as any project does.
SERVICES = "\n".join(
    f'[tool.parallel-isolation.services.{name}]\nmodule = "wildfire.{name}"\n'
    'image = "parallel-isolation/wildfire-services:latest"\n'
    for name in ("gpio_trigger", "fire_consensus", "camera_detector")
)

# Docker's wording for a name clash ("409 Client Error ... Conflict (\"Conflict. The
# container name ... is already in use\")"); ids and timestamps may contain "409".
CONFLICT = re.compile(r"409 Client Error|Conflict|is already in use by container")


def test_suite_under_four_workers_on_the_docker_backend(
    pytester: pytest.Pytester, run_objects: Any
) -> None:
    pytester.makepyfile(test_docker_suite=SUITE)
    pytester.makepyprojecttoml(SERVICES)
    result = pytester.runpytest_subprocess(
        "-n", "4", "--isolation-backend", "docker", "--require-docker", "-p", "no:randomly",
        timeout=300,
    )  # fmt: skip
    result.assert_outcomes(passed=13)

    runs = pytester.path / ".isolation" / "runs"
    run_id = (runs / "latest").read_text().strip()
    worker_dirs = sorted(p for p in (runs / run_id).iterdir() if p.is_dir())
    assert [p.name for p in worker_dirs] == ["gw0", "gw1", "gw2", "gw3"]
    created: set[str] = set()
    removed: set[str] = set()
    for worker_dir in worker_dirs:
        events = read_events(worker_dir / "events.jsonl")
        kinds = [e["kind"] for e in events]
        assert "name_conflict" not in kinds
        assert kinds.count("network_created") == kinds.count("network_removed") == 1
        created |= {e["id"] for e in events if e["kind"] == "container_created"}
        removed |= {e["id"] for e in events if e["kind"] == "container_removed"}
        texts = [(worker_dir / "events.jsonl").read_text()]
        texts += [log.read_text() for log in (worker_dir / "logs").glob("*.log")]
        for text in texts:
            assert not CONFLICT.search(text), CONFLICT.search(text)
    assert created
    assert created == removed
    assert run_objects(run_id) == ([], [])
