"""Reports as JSON, HTML and a terminal table, and the CLI's exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from parallel_isolation.identity import Owner
from parallel_isolation.validate import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_UNVALIDATED,
    ScanEnv,
    main,
    render_html,
    render_json,
    render_table,
    validate_dir,
)

from .conftest import RunBuilder


@pytest.fixture
def dirty_run(run_builder: RunBuilder, dead_owner: Owner) -> RunBuilder:
    evil = "tests/test_x.py::test_<script>alert(1)</script>"
    for worker_id in ("gw0", "gw1", "gw2"):
        worker = run_builder.worker(worker_id, dead_owner)
        for index in range(4):
            worker.test(f"tests/test_x.py::test_{worker_id}_{index}", seconds=0.5)
        start, _ = worker.test(evil, seconds=0.5, outcome="failed", failure="E   boom")
        worker.crosstalk("fire/<b>trigger</b>", start + 0.1)
        worker.snapshot("after", worker.clock, rss=60_000_000, threads=5, fds=20)
        worker.finish()
    run_builder.record(exitstatus=1)
    return run_builder


def test_json_report_is_complete(dirty_run: RunBuilder, scan_env: ScanEnv) -> None:
    data = json.loads(render_json(validate_dir(dirty_run.path, env=scan_env)))
    assert data["verdict"] == "findings"
    assert data["exit_code"] == EXIT_FINDINGS
    assert data["counts"]["error"] == 3
    assert {f["code"] for f in data["findings"]} >= {"crosstalk"}
    assert len(data["sections"]["events"]["timeline"]) == 15
    assert set(data["sections"]["resources"]["workers"]) == {"gw0", "gw1", "gw2"}


def test_html_is_self_contained_and_escaped(dirty_run: RunBuilder, scan_env: ScanEnv) -> None:
    page = render_html(validate_dir(dirty_run.path, env=scan_env))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page, "no scripts, and test names are escaped"
    assert "&lt;script&gt;" in page
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page), (
        "nothing loaded from anywhere"
    )
    assert "@import" not in page
    assert page.count("<svg") >= 3, "a timeline and resource charts"
    assert page.count("<rect") >= 15, "one bar per test"
    for worker in ("gw0", "gw1", "gw2"):
        assert f">{worker}</text>" in page


def test_table_renders_everything(dirty_run: RunBuilder, scan_env: ScanEnv) -> None:
    console = Console(record=True, width=140)
    console.print(render_table(validate_dir(dirty_run.path, env=scan_env)))
    text = console.export_text()
    assert "FINDINGS (exit 1)" in text
    assert "fire/<b>trigger</b>" in text
    assert "Resources per worker" in text


def test_cli_exit_codes_and_outputs(
    dirty_run: RunBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(dirty_run.root)
    state = str(tmp_path / "state")
    common = ["--artifacts", root, "--state-dir", state, "--no-process-scan"]
    assert main(["--format", "json", *common]) == EXIT_FINDINGS
    assert json.loads(capsys.readouterr().out)["run_id"] == dirty_run.run_id
    assert main(["--format", "html", "--run", dirty_run.run_id[:5], *common]) == EXIT_FINDINGS
    report = dirty_run.path / "report.html"
    assert report.exists()
    assert str(report) in capsys.readouterr().out
    assert main(["--fail-on", "info", "--run", "nosuchrun", *common]) == EXIT_UNVALIDATED
    out = tmp_path / "out.txt"
    assert main(["--output", str(out), *common]) == EXIT_FINDINGS
    assert "crosstalk" in out.read_text()


def test_cli_clean_run(run_builder: RunBuilder, dead_owner: Owner, tmp_path: Path) -> None:
    worker = run_builder.worker("gw0", dead_owner)
    worker.test("tests/test_a.py::test_ok")
    worker.finish()
    run_builder.record()
    args = ["--artifacts", str(run_builder.root), "--state-dir", str(tmp_path), "--no-process-scan"]
    assert main(args) in {EXIT_CLEAN, EXIT_UNVALIDATED}  # unvalidated only if Docker is needed
    assert main(["--fail-on", "nonsense", *args]) == 2
