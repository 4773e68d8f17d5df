"""Reports as JSON, HTML and text, the two verdicts in each, and the CLI's streams and exit codes."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from parallel_isolation.console import Out
from parallel_isolation.identity import Owner
from parallel_isolation.validate import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_UNVALIDATED,
    ScanEnv,
    Severity,
    main,
    print_report,
    render_html,
    render_json,
    render_text,
    runs_main,
    validate_dir,
)

from .conftest import RunBuilder

EVIL = "tests/test_x.py::test_<script>alert(1)</script>"


@pytest.fixture
def dirty_run(run_builder: RunBuilder, dead_owner: Owner) -> RunBuilder:
    for worker_id in ("gw0", "gw2", "gw10"):
        worker = run_builder.worker(worker_id, dead_owner)
        for index in range(4):
            worker.test(f"tests/test_x.py::test_{worker_id}_{index}", seconds=0.5)
        start, _ = worker.test(
            EVIL, seconds=0.5, outcome="failed", failure="def test():\n>  boom()\nE   boom :100:"
        )
        worker.crosstalk("fire/<b>trigger</b> [red]x[/red]", start + 0.1)
        worker.log("camera_detector-001.log", [f"{start:.0f}: started"])
        worker.snapshot("after", worker.clock, rss=60_000_000, threads=5, fds=20)
        worker.finish()
    run_builder.record(exitstatus=1)
    return run_builder


def test_json_report_carries_both_verdicts(dirty_run: RunBuilder, scan_env: ScanEnv) -> None:
    data = json.loads(render_json(validate_dir(dirty_run.path, env=scan_env)))
    assert data["verdict"] == data["isolation"]["verdict"] == "findings"
    assert data["exit_code"] == data["isolation"]["exit_code"] == EXIT_FINDINGS
    assert data["counts"]["error"] == 3
    tests = data["tests"]
    assert tests["verdict"] == "failed"
    assert tests["counts"] == {"passed": 12, "failed": 3}
    assert tests["exitstatus"] == 1
    assert tests["duration_s"] == 60
    failed = tests["failed"]
    assert [f["worker"] for f in failed] == ["gw0", "gw2", "gw10"]
    assert failed[0]["test"] == EVIL
    assert failed[0]["summary"] == "boom :100:"
    assert re.fullmatch(r"gw0/events\.jsonl", failed[0]["file"])
    assert isinstance(failed[0]["line"], int)
    assert "gw0/logs/camera_detector-001.log" in failed[0]["logs"]
    assert len(tests["slowest"]) == 10
    assert len(data["sections"]["events"]["timeline"]) == 15


def test_a_green_isolation_verdict_does_not_hide_failed_tests(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    worker.test("tests/test_a.py::test_ok")
    worker.test("tests/test_a.py::test_setup", outcome="error", failure="E   fixture 'x' not found")
    worker.finish()
    run_builder.record(exitstatus=1)
    report = validate_dir(run_builder.path, env=scan_env)
    assert (report.verdict, report.exit_code()) == ("clean", EXIT_CLEAN)
    assert report.tests.verdict == "failed"
    text = render_text(report)
    assert "tests      FAILED  1 passed, 1 error (pytest exit 1)" in text
    assert "isolation  CLEAN" in text
    assert "fixture 'x' not found" in text
    page = render_html(report)
    assert "tests: failed (1)" in page
    assert "isolation: clean" in page


def test_exit_status_alone_makes_the_tests_verdict_failed(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv
) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    worker.test("tests/test_a.py::test_ok")
    worker.finish()
    run_builder.record(exitstatus=2)  # interrupted: a collection error, no test failed
    report = validate_dir(run_builder.path, env=scan_env)
    assert report.tests.verdict == "failed"
    assert "pytest exited with status 2" in render_html(report)


def test_html_is_self_contained_escaped_and_linked(
    dirty_run: RunBuilder, scan_env: ScanEnv
) -> None:
    page = render_html(validate_dir(dirty_run.path, env=scan_env))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page, "no scripts, and test names are escaped"
    assert "&lt;script&gt;" in page
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page), "nothing loaded"
    assert "@import" not in page
    assert page.count("<svg") >= 4, "a timeline and resource charts"
    assert page.count("<rect") >= 15, "one bar per test"
    for worker in ("gw0", "gw2", "gw10"):
        assert f">{worker}</text>" in page
    assert page.index(">gw2</text>") < page.index(">gw10</text>"), "natural worker order"
    assert "tests: failed (3)" in page
    assert "isolation: findings" in page
    assert "href='gw0/crosstalk.jsonl'" in page, "findings link to the file beside the report"
    assert "href='gw0/logs/camera_detector-001.log'" in page, "failed tests link to their logs"
    assert "Slowest tests" in page
    assert "run duration" in page
    assert "target ≤ 5 ms" in page


def test_html_links_follow_the_report_elsewhere(
    dirty_run: RunBuilder, scan_env: ScanEnv, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "ci" / "reports"
    page = render_html(validate_dir(dirty_run.path, env=scan_env), base=elsewhere)
    relative = f"../../runs/{dirty_run.run_id}/gw0/crosstalk.jsonl"
    assert f"href='{relative}'" in page
    assert (elsewhere / relative).resolve() == (dirty_run.path / "gw0" / "crosstalk.jsonl")


def test_text_report_is_literal_grouped_and_unwrapped(
    dirty_run: RunBuilder, scan_env: ScanEnv
) -> None:
    report = validate_dir(dirty_run.path, env=scan_env)
    text = render_text(report)
    assert "fire/<b>trigger</b> [red]x[/red]" in text, "user data stays literal"
    assert "boom :100:" in text, "no emoji codes replaced"
    crosstalk = [line for line in text.splitlines() if "crosstalk" in line and "ERROR" in line]
    assert len(crosstalk) == 1, "three findings, one group"
    assert "x3" in crosstalk[0]
    places = [line.strip() for line in text.splitlines() if "crosstalk.jsonl:" in line]
    assert [p.split()[0] for p in places] == ["gw0", "gw2", "gw10"], "natural worker order"
    assert all(p.endswith("crosstalk.jsonl:1") for p in places), "file:line never cut"
    rows = [line.split()[0] for line in text.splitlines() if re.match(r"gw\d+\s+\d+\s+yes", line)]
    assert rows == ["gw0", "gw2", "gw10"]


def test_text_report_details_and_min_severity(
    dirty_run: RunBuilder, scan_env: ScanEnv, dead_owner: Owner
) -> None:
    worker = dirty_run.worker("gw3", dead_owner)
    for index in range(8):
        worker.event("port_in_use", port=20300 + index, occupant="nc")
    worker.finish()
    report = validate_dir(dirty_run.path, env=scan_env)
    grouped = render_text(report)
    assert "event.port-in-use  x8" in grouped
    assert grouped.count("port 2030") == 1, "one example message, the places below it"
    assert "3 more places (--details lists each)" in grouped
    detailed = render_text(report, details=True)
    assert all(f"port {20300 + index} skipped" in detailed for index in range(8))
    quiet = render_text(report, min_severity=Severity.WARNING)
    assert "port-in-use" not in quiet
    assert "8 below warning hidden" in quiet


def test_plain_output_without_a_terminal_and_styles_on_one(
    dirty_run: RunBuilder, scan_env: ScanEnv
) -> None:
    report = validate_dir(dirty_run.path, env=scan_env)
    plain = io.StringIO()
    print_report(report, Out(plain))
    assert "\x1b[" not in plain.getvalue()
    assert plain.getvalue() == render_text(report)
    styled = io.StringIO()
    print_report(report, Out(styled, color=True))
    assert "\x1b[" in styled.getvalue()
    assert "fire/<b>trigger</b> [red]x[/red]" in styled.getvalue()
    assert "boom :100:" in styled.getvalue()


def test_cli_streams_and_exit_codes(
    dirty_run: RunBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(dirty_run.root)
    common = ["--artifacts", root, "--state-dir", str(tmp_path / "state"), "--no-process-scan"]
    assert main(["--format", "json", *common]) == EXIT_FINDINGS
    assert json.loads(capsys.readouterr().out)["run_id"] == dirty_run.run_id

    assert main(["--format", "html", "--run", dirty_run.run_id[:5], *common]) == EXIT_FINDINGS
    out, err = capsys.readouterr()
    report = dirty_run.path / "report.html"
    assert out.strip() == str(report), "the result (the report's path) on stdout"
    assert "isolation  FINDINGS" in err, "the summary on stderr"

    extra_json, extra_html = tmp_path / "v.json", tmp_path / "v.html"
    assert main([*common, "--json", str(extra_json), "--html", str(extra_html)]) == EXIT_FINDINGS
    out, err = capsys.readouterr()
    assert "isolation  FINDINGS" in out
    assert json.loads(extra_json.read_text())["tests"]["verdict"] == "failed"
    assert extra_html.read_text().startswith("<!DOCTYPE html>")
    assert f"wrote {extra_json}" in err

    out_file = tmp_path / "out.txt"
    assert main(["--output", str(out_file), *common]) == EXIT_FINDINGS
    assert "crosstalk" in out_file.read_text()
    assert main(["--fail-on", "nonsense", *common]) == EXIT_UNVALIDATED
    capsys.readouterr()


def test_cli_unknown_run_says_only_what_is_wrong(
    dirty_run: RunBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--artifacts", str(dirty_run.root), "--no-process-scan"]
    assert main(["--run", "nosuchrun", *common]) == EXIT_UNVALIDATED
    out, err = capsys.readouterr()
    assert out == "", "no report head for a run that does not exist"
    assert err.startswith("validate: error: run 'nosuchrun' was not found under")
    assert "workers" not in err


def test_ambiguous_prefix_lists_only_the_matches(
    run_builder: RunBuilder, dead_owner: Owner, capsys: pytest.CaptureFixture[str]
) -> None:
    for run_id in ("abc11111", "abc22222", "ffff0000"):
        run = RunBuilder(run_builder.root, run_id=run_id)
        run.worker("gw0", dead_owner).finish()
        run.record()
    assert main(["--artifacts", str(run_builder.root), "--run", "abc", "--no-process-scan"]) == 2
    err = capsys.readouterr().err
    assert "is ambiguous" in err
    assert "abc11111, abc22222" in err
    assert "ffff0000" not in err


def test_runs_lists_newest_first_with_both_verdicts(
    run_builder: RunBuilder, dead_owner: Owner, capsys: pytest.CaptureFixture[str]
) -> None:
    for index, run_id in enumerate(("aaaa0001", "bbbb0002", "cccc0003")):
        run = RunBuilder(run_builder.root, run_id=run_id, started=1_700_000_000 + index * 100)
        for worker_id in ("gw10", "gw2"):
            worker = run.worker(worker_id, dead_owner)
            worker.test(f"t.py::test_{worker_id}", outcome="failed" if index == 1 else "passed")
            worker.finish()
        run.record(exitstatus=1 if index == 1 else 0)
    assert runs_main(["--artifacts", str(run_builder.root)]) == EXIT_CLEAN
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "run", "started", "backend", "workers", "pytest", "tests", "isolation"
    ]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[1:]}
    assert [line.split()[0] for line in lines[1:]] == ["cccc0003", "bbbb0002", "aaaa0001"]
    assert rows["cccc0003"].rstrip().endswith("latest")
    assert " passed " in rows["cccc0003"]
    assert " failed " in rows["bbbb0002"]
    assert "\x1b[" not in "\n".join(lines), "plain when not a terminal"
    assert runs_main(["--artifacts", str(run_builder.root / "nope")]) == EXIT_UNVALIDATED
    assert "no artifacts directory" in capsys.readouterr().err
