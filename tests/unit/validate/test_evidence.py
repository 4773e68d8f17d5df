"""Corrupted or missing evidence is never "clean": validate says what it could not read."""

from __future__ import annotations

import json
from pathlib import Path

from parallel_isolation.identity import Owner
from parallel_isolation.validate import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_UNVALIDATED,
    ScanEnv,
    Severity,
    render_text,
    validate_dir,
)

from .conftest import RunBuilder, WorkerBuilder


def _finished_run(
    run_builder: RunBuilder, owner: Owner, workers: tuple[str, ...] = ("gw0",)
) -> list[WorkerBuilder]:
    built = []
    for worker_id in workers:
        worker = run_builder.worker(worker_id, owner)
        worker.test(f"tests/test_a.py::test_{worker_id}_one")
        worker.test(f"tests/test_a.py::test_{worker_id}_two")
        worker.finish()
        built.append(worker)
    run_builder.record(workers={w: {"status": "finished", "recorded": True} for w in workers})
    return built


def _insert(path: Path, after_line: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(after_line, text)
    path.write_text("".join(lines))


def test_a_clean_run_stays_clean(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    _finished_run(run_builder, dead_owner, ("gw0", "gw1"))
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.problems == []
    assert report.exit_code() == EXIT_CLEAN


def test_half_a_line_and_garbage_inside_events_is_could_not(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    # The case from the report: once validated CLEAN with exit 0 and no mention of it.
    (worker,) = _finished_run(run_builder, dead_owner)
    events = worker.path / "events.jsonl"
    _insert(events, 2, '{"ts": 1795000000.1, "kind": "leak", "wor\n')
    _insert(events, 4, "\x00\x13 garbage from a bad disk\n")
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.exit_code() == EXIT_UNVALIDATED
    assert report.verdict == "could not fully validate"
    (problem,) = report.problems
    assert problem.startswith("could not read gw0/events.jsonl: 2 line(s) are not JSON objects:")
    assert "line 3 (" in problem
    assert "line 5 (" in problem
    assert report.tests.total == 2, "the readable lines were still used"
    text = render_text(report)
    assert "COULD NOT FULLY VALIDATE" in text
    assert "gw0/events.jsonl" in text


def test_garbage_in_snapshots_and_crosstalk_names_each_file(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    (worker,) = _finished_run(run_builder, dead_owner)
    worker.crosstalk("stray/topic", worker.clock)
    _insert(worker.path / "snapshots.jsonl", 1, "[1, 2, 3]\n")
    _insert(worker.path / "crosstalk.jsonl", 0, "not json at all\n")
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.exit_code() == EXIT_UNVALIDATED
    problems = " | ".join(report.problems)
    assert (
        "could not read gw0/snapshots.jsonl: 1 line(s) are not JSON objects: line 2 ('[1, 2, 3]')"
        in problems
    )
    assert "could not read gw0/crosstalk.jsonl: 1 line(s) are not JSON objects: line 1" in problems
    assert any(f.code == "crosstalk" for f in report.findings), "the good lines still count"


def test_a_killed_workers_partial_last_line_is_said_as_such(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    worker.test("tests/test_a.py::test_one")
    start = worker.event("test_started", test="tests/test_a.py::test_killer")
    with (worker.path / "events.jsonl").open("a") as handle:
        handle.write(f'{{"ts": {start + 1}, "kind": "leak", "test": "tests/test_a.py::te')
    run_builder.record(workers={"gw0": {"status": "crashed", "recorded": None}})
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.problems == [], "a partial last line is not 'could not'"
    partial = next(f for f in report.findings if f.code == "evidence.partial-line")
    assert partial.severity is Severity.INFO
    assert (partial.file, partial.line) == ("gw0/events.jsonl", 5)
    assert "partial last line" in partial.message
    assert "killed" in partial.message
    assert report.exit_code() == EXIT_FINDINGS, "the dead worker itself is a warning"


def test_a_partial_last_line_of_a_finished_worker_is_a_warning(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    (worker,) = _finished_run(run_builder, dead_owner)
    with (worker.path / "snapshots.jsonl").open("a") as handle:
        handle.write('{"ts": 1, "phase": "aft')
    report = validate_dir(run_builder.path, env=scan_env)
    partial = next(f for f in report.findings if f.code == "evidence.partial-line")
    assert partial.severity is Severity.WARNING
    assert partial.file == "gw0/snapshots.jsonl"
    assert report.problems == []


def test_a_complete_but_bad_last_line_is_garbage_not_partial(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    (worker,) = _finished_run(run_builder, dead_owner)
    with (worker.path / "events.jsonl").open("a") as handle:
        handle.write("garbage with its newline\n")
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.exit_code() == EXIT_UNVALIDATED
    assert not any(f.code == "evidence.partial-line" for f in report.findings)


def test_a_missing_worker_directory_is_could_not(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    _finished_run(run_builder, dead_owner, ("gw0", "gw1", "gw2"))
    for path in (run_builder.path / "gw1").rglob("*"):
        path.unlink()
    (run_builder.path / "gw1").rmdir()
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.exit_code() == EXIT_UNVALIDATED
    assert report.problems == [
        "could not read gw1/: worker gw1 recorded its session (says run.json) but its "
        "directory is missing or empty"
    ]


def test_workers_that_recorded_nothing_or_crashed_early(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    _finished_run(run_builder, dead_owner)
    run_builder.record(
        workers={
            "gw0": {"status": "finished", "recorded": True},
            "gw1": {"status": "finished", "recorded": False},  # ran none of our tests: no trace
            "gw2": {"status": "crashed", "recorded": None},
        }
    )
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.problems == []
    (crashed,) = [f for f in report.findings if f.code == "evidence.worker-unrecorded"]
    assert crashed.severity is Severity.WARNING
    assert crashed.worker == "gw2"
    assert not any(f.worker == "gw1" for f in report.findings)


def test_an_unreadable_run_record_is_could_not_but_the_rest_is_checked(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    (worker,) = _finished_run(run_builder, dead_owner)
    worker.crosstalk("stray/topic", worker.clock)
    (run_builder.path / "run.json").write_text('{"run_id": "x", "started": 17')
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.exit_code() == EXIT_UNVALIDATED
    assert report.loaded
    assert any(p.startswith("could not read run.json:1: not JSON") for p in report.problems)
    assert not any(f.code == "run-unrecorded" for f in report.findings), "it exists, unreadable"
    assert report.tests.total == 2
    assert any(f.code == "crosstalk" for f in report.findings)


def test_a_file_that_cannot_be_read_is_could_not(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    (worker,) = _finished_run(run_builder, dead_owner)
    crosstalk = worker.path / "crosstalk.jsonl"
    crosstalk.mkdir()  # a directory where a file should be: reading it fails
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.exit_code() == EXIT_UNVALIDATED
    assert any(p.startswith("could not read gw0/crosstalk.jsonl: ") for p in report.problems)


def test_snapshots_of_tests_without_an_event_log(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    (worker,) = _finished_run(run_builder, dead_owner)
    worker.snapshot("before", worker.clock, test="tests/test_a.py::test_gw0_one")
    (worker.path / "events.jsonl").unlink()
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.exit_code() == EXIT_UNVALIDATED
    assert any(
        "gw0/snapshots.jsonl records tests but the event log is missing" in p
        for p in report.problems
    )


def test_json_report_lists_the_issues(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    from parallel_isolation.validate import render_json

    (worker,) = _finished_run(run_builder, dead_owner)
    _insert(worker.path / "events.jsonl", 1, "oops\n")
    data = json.loads(render_json(validate_dir(run_builder.path, env=scan_env)))
    assert data["verdict"] == "could not fully validate"
    assert data["exit_code"] == 2
    assert data["sections"]["evidence"]["issues"] == [
        {"kind": "garbage", "file": "gw0/events.jsonl", "line": 2, "detail": "oops"}
    ]
