"""What the plugin records per worker and per test, end to end through pytester."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parallel_isolation.session.context import WorkerContext
from parallel_isolation.validate import ScanEnv, Severity, validate_run

INNER = """
import threading
import pytest
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

STOP = threading.Event()

def test_isolated(mqtt_client):
    mqtt_client.subscribe("x/#", qos=1)
    mqtt_client.publish("x/y", b"1", qos=1).wait_for_publish(5)
    mqtt_client.wait_for("x/y", timeout=5)

def test_leaks_a_timer_thread(parallel_test_context):
    threading.Thread(target=STOP.wait, name="fire_consensus-scheduler", daemon=True).start()

def test_bare_topic(mqtt_broker, parallel_test_context):
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=parallel_test_context.client_id("raw"))
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    client.publish("fire/trigger", b"1", qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()

def test_plain():
    pass

@pytest.mark.isolation_expect("crosstalk", reason="checks that foreign topics are dropped")
def test_deliberate_crosstalk(mqtt_broker, parallel_test_context):
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=parallel_test_context.client_id("raw"))
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    client.publish("elsewhere/x", b"1", qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
"""


@pytest.fixture
def inner(
    pytester: pytest.Pytester, isolation_worker: WorkerContext
) -> tuple[pytest.Pytester, int]:
    pytester.makepyfile(test_inner=INNER)
    return pytester, 40000 + isolation_worker.identity.worker_number * 400


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("mode", [["-n", "2"], ["-p", "no:xdist"]], ids=["xdist", "no-xdist"])
def test_records_timeline_snapshots_leaks_and_crosstalk(
    inner: tuple[pytest.Pytester, int], mode: list[str], tmp_path: Path
) -> None:
    pytester, base = inner
    result = pytester.runpytest_subprocess(
        *mode, f"--isolation-port-base={base}", "--strict-markers"
    )
    result.assert_outcomes(passed=5)
    root = pytester.path / ".isolation" / "runs"
    run_id = (root / "latest").read_text().strip()
    workers = sorted(p for p in (root / run_id).iterdir() if p.is_dir())
    started = set()
    for worker in workers:
        events = _records(worker / "events.jsonl")
        kinds = [e["kind"] for e in events]
        assert kinds.count("test_started") == kinds.count("test_finished")
        started |= {str(e["test"]) for e in events if e["kind"] == "test_started"}
        finished = [e for e in events if e["kind"] == "test_finished"]
        assert all(e["outcome"] == "passed" and "overhead_ms" in e for e in finished)
        phases = [s["phase"] for s in _records(worker / "snapshots.jsonl")]
        assert phases[0] == "session_start"
        assert phases[-1] == "session_end"
        assert phases.count("before") == phases.count("after") == kinds.count("test_started")
        leaks = [e for e in events if e["kind"] == "leak"]
        for leak in leaks:
            assert leak["test"] == "test_inner.py::test_leaks_a_timer_thread"
            assert leak["name"] == "fire_consensus-scheduler"
    assert started == {
        f"test_inner.py::{name}"
        for name in (
            "test_isolated",
            "test_leaks_a_timer_thread",
            "test_bare_topic",
            "test_plain",
            "test_deliberate_crosstalk",
        )
    }

    report = validate_run(
        root, run_id, env=ScanEnv(state_dir=None, docker_problem="not needed", scan_processes=False)
    )
    errors = [f for f in report.findings if f.severity is Severity.ERROR]
    leaks = {(f.code, f.test) for f in errors if f.code.startswith("leak.")}
    assert leaks == {("leak.thread", "test_inner.py::test_leaks_a_timer_thread")}, (
        "brokers are no leaks"
    )
    crosstalk = [f for f in errors if f.code == "crosstalk"]
    assert [f.message.split("'")[1] for f in crosstalk] == ["fire/trigger"]
    # Named as the test, or (stamped late on a busy host) as the one that just ended.
    assert "test_inner.py::test_bare_topic" in f"{crosstalk[0].test} {crosstalk[0].message}"
    assert report.sections["events"]["tests"] == 5
    deliberate = [
        f for f in report.findings if f.test == "test_inner.py::test_deliberate_crosstalk"
    ]
    assert [(f.code, f.severity) for f in deliberate] == [("crosstalk", Severity.INFO)]
    assert report.sections["crosstalk"]["workers_spied"] >= 1
