"""The end-of-run verdict: when it fails the session, what it scans, what the summary says."""

from __future__ import annotations

from pathlib import Path

import pytest

from parallel_isolation.identity import Owner
from parallel_isolation.validate.verdict import full_report_command, judge, summary_lines

from .conftest import RunBuilder


def _run(run_builder: RunBuilder, owner: Owner, *, errors: int, warnings: int) -> RunBuilder:
    worker = run_builder.worker("gw0", owner)
    for index in range(errors):
        start, _ = worker.test(f"tests/test_v.py::test_cross_{index}")
        worker.crosstalk(f"bare/{index}", start + 0.1)
    for index in range(warnings):
        worker.event("lock_timeout", waited_s=30, resource=f"gpio{index}")
    worker.finish()
    run_builder.record()
    return run_builder


@pytest.mark.parametrize(
    ("errors", "warnings", "fail_on", "fails"),
    [
        (0, 0, "error", False),
        (1, 0, "error", True),
        (0, 1, "error", False),
        (0, 1, "warning", True),
        (1, 1, "never", False),
        (0, 0, "warning", False),
    ],
)
def test_which_findings_fail_the_session(
    run_builder: RunBuilder,
    dead_owner: Owner,
    tmp_path: Path,
    errors: int,
    warnings: int,
    fail_on: str,
    fails: bool,
) -> None:
    run = _run(run_builder, dead_owner, errors=errors, warnings=warnings)
    verdict = judge(
        run.path, backend="process", fail_on=fail_on, artifacts_root=run.root, state_dir=tmp_path
    )
    assert verdict.fails_session is fails
    assert verdict.report.counts()["error"] == errors


def test_unreadable_evidence_fails_only_a_strict_session(
    run_builder: RunBuilder, dead_owner: Owner, tmp_path: Path
) -> None:
    run = _run(run_builder, dead_owner, errors=0, warnings=0)
    with (run.path / "gw0" / "events.jsonl").open("a") as handle:
        handle.write("garbage\n")
    lenient = judge(run.path, backend="process", fail_on="error", artifacts_root=run.root)
    strict = judge(run.path, backend="process", fail_on="warning", artifacts_root=run.root)
    assert lenient.report.problems
    assert not lenient.fails_session
    assert strict.fails_session
    lines = [text for text, _ in summary_lines(lenient)]
    assert "isolation: COULD NOT FULLY VALIDATE" in lines[0]
    assert any("could not read gw0/events.jsonl" in line for line in lines)


def test_docker_is_scanned_only_when_the_run_used_it(
    run_builder: RunBuilder, dead_owner: Owner, tmp_path: Path
) -> None:
    run = _run(run_builder, dead_owner, errors=0, warnings=0)
    plain = judge(run.path, backend="process", artifacts_root=run.root, state_dir=tmp_path)
    assert "docker" not in plain.report.sections
    used = judge(run.path, backend="docker", artifacts_root=run.root, state_dir=tmp_path)
    assert "docker" in used.report.sections


def test_summary_lists_the_top_groups_and_the_command(
    run_builder: RunBuilder, dead_owner: Owner, tmp_path: Path
) -> None:
    run = _run(run_builder, dead_owner, errors=3, warnings=2)
    verdict = judge(run.path, backend="process", artifacts_root=run.root, state_dir=tmp_path)
    lines = summary_lines(verdict, elapsed_s=0.25)
    texts = [text for text, _ in lines]
    assert texts[0].startswith(f"run {run.run_id} · 1 workers (gw0) · isolation: FINDINGS")
    assert lines[0][1] == {"red": True, "bold": True}
    assert texts[1] == "3 errors, 2 warnings, 0 info (judged in 0.25 s)"
    assert any(t.startswith("  ERROR   crosstalk x3: ") for t in texts)
    assert any(t.startswith("  WARNING event.lock-timeout x2: ") for t in texts)
    assert f"artifacts: {run.path}" in texts
    assert any(
        t.startswith(f"full report: parallel-isolation validate --run {run.run_id} --artifacts ")
        for t in texts
    )
    assert texts[-1].startswith("the session fails on these findings (--isolation-fail-on error;")


def test_the_command_names_the_artifacts_root_only_when_it_is_not_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ISOLATION_ARTIFACTS_DIR", raising=False)
    default = tmp_path / ".isolation" / "runs"
    assert full_report_command("ab12cd34", default) == "parallel-isolation validate --run ab12cd34"
    assert full_report_command("ab12cd34", tmp_path / "elsewhere").endswith(
        f"--run ab12cd34 --artifacts {tmp_path / 'elsewhere'}"
    )
