"""Scanners over synthetic run directories: what each finds, where, and how severe."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from parallel_isolation.identity import Owner
from parallel_isolation.validate import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_UNVALIDATED,
    Finding,
    Report,
    ScanEnv,
    Severity,
    validate_dir,
    validate_run,
)

from .conftest import LocalTime, RunBuilder, make_dead_owner


def codes(report: Report, severity: Severity | None = None) -> list[str]:
    return sorted(f.code for f in report.findings if severity is None or f.severity == severity)


def only(report: Report, code: str) -> Finding:
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, f"expected one {code}, got {found}"
    return found[0]


def test_clean_run_exits_zero(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    for worker_id in ("gw0", "gw1"):
        worker = run_builder.worker(worker_id, dead_owner)
        worker.test(f"tests/test_x.py::test_{worker_id}")
        worker.finish()
    run_builder.record()
    report = validate_run(run_builder.root, "latest", env=scan_env)
    assert report.problems == []
    assert codes(report, Severity.ERROR) == []
    assert codes(report, Severity.WARNING) == []
    assert report.exit_code() == EXIT_CLEAN
    assert report.verdict == "clean"
    assert report.sections["events"]["tests"] == 2
    assert any("Docker: engine not reachable" in note for note in report.notes)


def test_client_id_clash_is_mapped_to_the_running_test(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv, mosquitto_time: LocalTime
) -> None:
    worker = run_builder.worker("gw2", dead_owner)
    worker.test("tests/test_a.py::test_before", seconds=2)
    start, _end = worker.test("tests/test_a.py::test_clash", seconds=4)
    worker.finish()
    run_builder.record()
    clash_at = int(start) + 2
    worker.log(
        "mqtt-broker.log",
        [
            f"{mosquitto_time(clash_at - 1)}: New client connected from 127.0.0.1 as legacy",
            f"{mosquitto_time(clash_at)}: Client legacy already connected, closing old connection.",
        ],
    )
    report = validate_dir(run_builder.path, env=scan_env)
    finding = only(report, "log.client-id-clash")
    assert finding.severity is Severity.ERROR
    assert finding.worker == "gw2"
    assert finding.test == "tests/test_a.py::test_clash"
    assert finding.file == "gw2/logs/mqtt-broker.log"
    assert finding.line == 2
    assert report.exit_code() == EXIT_FINDINGS


def test_address_in_use_is_info_when_the_allocator_retried(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv, mosquitto_time: LocalTime
) -> None:
    retried = run_builder.worker("gw0", dead_owner)
    at = retried.clock + 1
    retried.event(
        "port_in_use", at=at, port=20000, purpose="mqtt-broker", occupant="mosquitto (pid 1)"
    )
    retried.event(
        "port_retry", at=at + 0.1, port=20001, purpose="mqtt-broker", attempt=1, error="x"
    )
    retried.log("mqtt-broker.log", [f"{mosquitto_time(at)}: Error: Address already in use"])
    retried.finish()
    plain = run_builder.worker("gw1", dead_owner)
    plain.log("mqtt-broker.log", [f"{mosquitto_time(plain.clock)}: Error: Address already in use"])
    plain.finish()
    run_builder.record()
    report = validate_dir(run_builder.path, env=scan_env)
    by_worker = {f.worker: f for f in report.findings if f.code == "log.address-in-use"}
    assert by_worker["gw0"].severity is Severity.INFO
    assert "expected" in by_worker["gw0"].message
    assert by_worker["gw1"].severity is Severity.ERROR
    assert "event.port-retry" in codes(report, Severity.INFO)
    assert "event.port-in-use" in codes(report, Severity.INFO)


def test_health_failures_while_the_broker_was_down_are_expected(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv, service_time: LocalTime
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    start, _end = worker.test("tests/test_outage.py::test_outage", seconds=30)
    worker.event("broker_paused", at=start + 1, port=20000)
    worker.event("broker_restarted", at=start + 5, port=20000)
    worker.finish()
    run_builder.record()
    worker.log(
        "fire_consensus-001.log",
        [
            f"{service_time(start + 2)} ERROR fire_consensus Failed to publish health: not connected",
            f"{service_time(start + 28)} ERROR fire_consensus Failed to publish health: not connected",
        ],
    )
    report = validate_dir(run_builder.path, env=scan_env)
    found = sorted(
        (f for f in report.findings if f.code == "log.health-publish-failed"),
        key=lambda f: f.line or 0,
    )
    assert [f.severity for f in found] == [Severity.INFO, Severity.WARNING]
    assert all(f.test == "tests/test_outage.py::test_outage" for f in found)


@pytest.mark.parametrize(
    ("lines", "summary"),
    [
        (
            [
                "Traceback (most recent call last):",
                '  File "svc.py", line 3, in run',
                "    boom()",
                "KeyError: 'camera_id'",
            ],
            "KeyError: 'camera_id'",
        ),
        (
            [
                '2026-11-24T15:00:00.000Z ERROR gpio_trigger event=timer_error exc="Traceback (most recent call last):\\n  File \\"x\\", line 1\\nValueError: bad state"'
            ],
            "ValueError: bad state",
        ),
    ],
)
def test_traceback_names_the_exception(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv, lines: list[str], summary: str
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    worker.finish()
    run_builder.record()
    worker.log("gpio_trigger-001.log", lines)
    finding = only(validate_dir(run_builder.path, env=scan_env), "log.traceback")
    assert finding.severity is Severity.ERROR
    assert summary in finding.message


def test_crosstalk_is_grouped_by_topic_and_names_the_owner_namespace(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    gw0 = run_builder.worker("gw0", dead_owner)
    gw1 = run_builder.worker("gw1", dead_owner)
    start, _ = gw0.test("tests/test_legacy.py::test_bare", seconds=5)
    for offset in (1, 2, 3):
        gw0.crosstalk("fire/trigger", start + offset)
    gw0.crosstalk(f"test/{run_builder.run_id}/gw1/t-1234abcd/x", start + 4)
    gw0.finish()
    gw1.finish()
    run_builder.record()
    report = validate_dir(run_builder.path, env=scan_env)
    found = {f.message.split("'")[1]: f for f in report.findings if f.code == "crosstalk"}
    assert set(found) == {"fire/trigger", f"test/{run_builder.run_id}/gw1/t-1234abcd/x"}
    bare = found["fire/trigger"]
    assert bare.message.startswith("3 message(s)")
    assert "outside every namespace" in bare.message
    assert bare.test == "tests/test_legacy.py::test_bare"
    assert "namespace of worker gw1" in found[f"test/{run_builder.run_id}/gw1/t-1234abcd/x"].message
    assert report.sections["crosstalk"]["messages"] == 4


def test_leak_events_are_errors_with_the_test(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw3", dead_owner)
    _, end = worker.test("tests/test_svc.py::test_forgets_stop")
    worker.event(
        "leak", at=end, test="tests/test_svc.py::test_forgets_stop", what="thread",
        name="fire_consensus-scheduler", ident=1, native_id=2, daemon=True,
    )  # fmt: skip
    worker.finish(thread_names=["MainThread", "fire_consensus-scheduler"])
    run_builder.record()
    report = validate_dir(run_builder.path, env=scan_env)
    leak = only(report, "leak.thread")
    assert leak.severity is Severity.ERROR
    assert leak.test == "tests/test_svc.py::test_forgets_stop"
    assert "fire_consensus-scheduler" in leak.message
    assert only(report, "resources.threads-at-end").severity is Severity.WARNING


def test_dead_worker_is_reported_until_its_leftovers_were_reaped(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    survivor = run_builder.worker("gw0", dead_owner)
    survivor.test("tests/test_a.py::test_ok")
    survivor.finish()
    victim = run_builder.worker("gw1", make_dead_owner())
    victim.event("test_started", at=victim.clock + 1, test="tests/test_a.py::test_killed")
    run_builder.record(exitstatus=1)
    report = validate_dir(run_builder.path, env=scan_env)
    died = only(report, "worker-died")
    assert died.severity is Severity.WARNING
    assert died.worker == "gw1"
    assert died.test == "tests/test_a.py::test_killed"
    timeline = {s["test"]: s["outcome"] for s in report.sections["events"]["timeline"]}
    assert timeline["tests/test_a.py::test_killed"] == "crashed"
    (run_builder.path / "cleanup.jsonl").write_text(
        json.dumps(
            {"ts": time.time(), "action": "removed", "kind": "container", "run": run_builder.run_id}
        )
        + "\n"
    )
    again = validate_dir(run_builder.path, env=scan_env)
    assert only(again, "worker-died").severity is Severity.INFO
    assert again.exit_code() == EXIT_CLEAN


def test_leftover_reservations_by_owner_liveness(
    run_builder: RunBuilder, dead_owner: Owner, live_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    worker.finish()
    run_builder.record()
    assert scan_env.state_dir is not None
    ports = scan_env.state_dir / "ports"
    ports.mkdir()
    for port, owner in ((20005, dead_owner), (20006, live_owner)):
        (ports / f"{port}.json").write_text(
            json.dumps(
                {
                    "port": port,
                    "owner": owner.as_dict(),
                    "run_id": run_builder.run_id,
                    "worker_id": "gw0",
                    "purpose": "mqtt-broker",
                    "created": time.time(),
                }
            )
        )
    (ports / "20007.json").write_text(
        json.dumps(
            {"port": 20007, "owner": dead_owner.as_dict(), "run_id": "ffffffff", "worker_id": "gw0",
             "purpose": "other run", "created": time.time()}
        )
    )  # fmt: skip
    report = validate_dir(run_builder.path, env=scan_env)
    found = {
        f.message.split()[1]: f.severity
        for f in report.findings
        if f.code == "resources.port-reservation"
    }
    assert found == {"20005": Severity.ERROR, "20006": Severity.INFO}


def test_docker_unreachable_is_a_problem_only_when_the_run_used_docker(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    worker.finish()
    run_builder.record()
    assert validate_dir(run_builder.path, env=scan_env).exit_code() == EXIT_CLEAN
    worker.event("container_created", name="mqtt-broker-gw0-x", id="abc")
    report = validate_dir(
        run_builder.path,
        env=ScanEnv(state_dir=scan_env.state_dir, docker_problem="no engine", scan_processes=False),
    )
    assert report.exit_code() == EXIT_UNVALIDATED
    assert any("could not be checked" in p for p in report.problems)


def test_run_in_progress_cannot_be_validated(
    run_builder: RunBuilder, live_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw0", live_owner)
    worker.test("tests/test_a.py::test_one")
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.exit_code() == EXIT_UNVALIDATED
    assert "still in progress" in report.problems[0]


def test_failure_texts_are_scanned(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    worker.test(
        "tests/test_fixed.py::test_fixed_port",
        outcome="failed",
        failure="    sock.bind(('127.0.0.1', 18830))\nE   OSError: [Errno 98] Address already in use",
    )
    worker.finish()
    run_builder.record(exitstatus=1)
    finding = only(validate_dir(run_builder.path, env=scan_env), "test.address-in-use")
    assert finding.severity is Severity.ERROR
    assert finding.test == "tests/test_fixed.py::test_fixed_port"


def test_fail_on_threshold(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv, service_time: LocalTime
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    worker.finish()
    run_builder.record()
    worker.log(
        "camera_detector-001.log",
        [f"{service_time(worker.clock + 50)} ERROR camera_detector Failed to publish health: x"],
    )
    assert validate_dir(run_builder.path, env=scan_env).exit_code() == EXIT_FINDINGS
    assert (
        validate_dir(run_builder.path, env=scan_env, fail_on=Severity.ERROR).exit_code()
        == EXIT_CLEAN
    )


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing-root", "no artifacts directory"),
        ("no-latest", "no finished run recorded"),
        ("unknown-run", "was not found"),
        ("empty-run", "holds no worker artifacts"),
    ],
)
def test_unvalidatable_runs(tmp_path: Path, scan_env: ScanEnv, setup: str, message: str) -> None:
    root = tmp_path / "runs"
    run = "latest"
    if setup != "missing-root":
        root.mkdir()
    if setup == "unknown-run":
        (root / "abcd1234").mkdir()
        run = "ffff"
    if setup == "empty-run":
        (root / "abcd1234").mkdir()
        run = "abcd"
    report = validate_run(root, run, env=scan_env)
    assert report.exit_code() == EXIT_UNVALIDATED
    assert message in " ".join(report.problems)


def test_findings_a_test_declared_are_info(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    start, _ = worker.test("tests/test_m.py::test_drops_foreign", expect=["crosstalk"])
    worker.crosstalk("elsewhere/x", start + 0.1)
    other, _ = worker.test("tests/test_m.py::test_undeclared")
    worker.crosstalk("elsewhere/y", other + 0.5)
    worker.finish()
    run_builder.record()
    report = validate_dir(run_builder.path, env=scan_env)
    by_test = {f.test: f for f in report.findings if f.code == "crosstalk"}
    assert by_test["tests/test_m.py::test_drops_foreign"].severity is Severity.INFO
    assert "isolation_expect" in by_test["tests/test_m.py::test_drops_foreign"].message
    assert by_test["tests/test_m.py::test_undeclared"].severity is Severity.ERROR


def test_name_conflicts_refused_are_errors_reclaimed_are_info(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    start, _ = worker.test("tests/test_d.py::test_stack")
    worker.event(
        "name_conflict", at=start + 0.1, name="mqtt-broker-gw0-x", owner="pid 1", action="reclaimed"
    )
    worker.event(
        "name_conflict",
        at=start + 0.2,
        name="fire-consensus",
        owner="unlabelled: not ours",
        action="refused",
    )
    worker.event("container_created", at=start + 0.3, name="mqtt-broker-gw0-x", id="abc")
    worker.finish()
    run_builder.record(backend="docker")
    report = validate_dir(
        run_builder.path,
        env=ScanEnv(
            state_dir=scan_env.state_dir, docker_problem="no engine here", scan_processes=False
        ),
    )
    found = sorted(
        (f.severity, f.message) for f in report.findings if f.code == "event.name-conflict"
    )
    assert [severity for severity, _ in found] == [Severity.INFO, Severity.ERROR]
    assert "refused" in found[1][1]
    assert all(
        f.test == "tests/test_d.py::test_stack"
        for f in report.findings
        if f.code == "event.name-conflict"
    )
    assert report.exit_code() == EXIT_UNVALIDATED, "the run used Docker and no engine answers"


def test_crosstalk_seen_just_after_a_test_began_names_the_one_before(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    _, first_end = worker.test("tests/test_l.py::test_publishes_bare", seconds=1)
    second_start, _ = worker.test("tests/test_l.py::test_next", seconds=2)
    worker.crosstalk("fire/late", second_start + 0.005)  # stamped late by a busy spy
    worker.crosstalk("fire/own", second_start + 1.5)  # well inside the next test
    worker.finish()
    run_builder.record()
    report = validate_dir(run_builder.path, env=scan_env)
    by_topic = {f.message.split("'")[1]: f for f in report.findings if f.code == "crosstalk"}
    assert by_topic["fire/late"].test == "tests/test_l.py::test_next"
    assert "tests/test_l.py::test_publishes_bare ended" in by_topic["fire/late"].message
    assert by_topic["fire/own"].test == "tests/test_l.py::test_next"
    assert first_end < second_start
