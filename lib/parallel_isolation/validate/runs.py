"""``parallel-isolation runs``: the recorded runs, newest first, each with its two verdicts.

A run's verdicts are its validation's: the tests' (passed, failed, ...) and
the isolation's (clean, findings, could not validate), computed now from its
artifacts without scanning processes; ``--no-validate`` lists the runs from
their ``run.json`` alone.  The run ``latest`` points at is marked.  One line
per run on stdout (plain aligned columns, see :mod:`parallel_isolation.console`),
or ``--format json``.  Exit status 0, or 2 when there is no artifacts
directory (the message says where it looked and how to point elsewhere).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from parallel_isolation.artifacts import LATEST_FILE
from parallel_isolation.console import Out
from parallel_isolation.project import explain_artifacts_root
from parallel_isolation.validate.base import ScanEnv
from parallel_isolation.validate.core import validate_dir
from parallel_isolation.validate.model import EXIT_UNVALIDATED
from parallel_isolation.validate.rundata import default_artifacts_root

__all__ = ["RunSummary", "build_parser", "list_runs", "main"]


@dataclass(frozen=True)
class RunSummary:
    """One recorded run."""

    run_id: str
    run_dir: str
    started: float | None
    finished: float | None
    exitstatus: int | None
    backend: str
    workers: int
    verdict: str  # clean, findings, could not validate, or "-" when not validated
    counts: dict[str, int]
    tests: str = "-"  # passed, failed, no tests, unknown, or "-" when not validated
    latest: bool = False


def _record(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def list_runs(root: Path, *, last: int = 10, validate: bool = True) -> list[RunSummary]:
    """The ``last`` newest runs under ``root`` (by start time, else directory time)."""
    runs = [path for path in root.iterdir() if path.is_dir()]

    def started(path: Path) -> float:
        begun = _number(_record(path).get("started"))
        return begun if begun is not None else path.stat().st_mtime

    summaries: list[RunSummary] = []
    env = ScanEnv(scan_processes=False)
    marker = root / LATEST_FILE
    latest = marker.read_text().strip() if marker.is_file() else ""
    for run_dir in sorted(runs, key=started, reverse=True)[: max(last, 0)]:
        record = _record(run_dir)
        settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
        verdict, counts, tests = "-", {}, "-"
        if validate:
            report = validate_dir(run_dir, env=env)
            verdict, counts, tests = report.verdict, report.counts(), report.tests.verdict
        exitstatus = record.get("exitstatus")
        summaries.append(
            RunSummary(
                run_id=run_dir.name,
                run_dir=str(run_dir),
                started=_number(record.get("started")),
                finished=_number(record.get("finished")),
                exitstatus=exitstatus if isinstance(exitstatus, int) else None,
                backend=str((settings or {}).get("backend", "?")),
                workers=sum(1 for p in run_dir.iterdir() if p.is_dir()),
                verdict=verdict,
                counts=counts,
                tests=tests,
                latest=run_dir.name == latest,
            )
        )
    return summaries


def build_parser(prog: str = "parallel-isolation runs") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="List the recorded runs, newest first, with their verdicts."
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        help="artifacts root [found like the plugin: the pytest rootdir's isolation_artifacts, "
        "$ISOLATION_ARTIFACTS_DIR, default <rootdir>/.isolation/runs]",
    )
    parser.add_argument("--last", type=int, default=10, help="how many runs [10]")
    parser.add_argument(
        "--no-validate", action="store_true", help="do not validate: list from run.json alone"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def main(argv: Sequence[str] | None = None, *, prog: str = "parallel-isolation runs") -> int:
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else EXIT_UNVALIDATED
    root = args.artifacts or default_artifacts_root()
    if not root.is_dir():
        Out(sys.stderr).line(
            f"runs: error: no artifacts directory at {root}; {explain_artifacts_root(root)}"
        )
        return EXIT_UNVALIDATED
    summaries = list_runs(root, last=args.last, validate=not args.no_validate)
    if args.format == "json":
        print(json.dumps([asdict(summary) for summary in summaries], indent=2))
        return 0
    rows = []
    for item in summaries:
        counts = ", ".join(f"{n} {k}" for k, n in item.counts.items() if n)
        isolation = f"{item.verdict} ({counts})" if counts else item.verdict
        rows.append(
            [
                item.run_id,
                _when(item.started),
                item.backend,
                item.workers,
                "-" if item.exitstatus is None else item.exitstatus,
                item.tests,
                isolation,
                "latest" if item.latest else "",
            ]
        )
    Out(sys.stdout).table(
        ["run", "started", "backend", "workers", "pytest", "tests", "isolation", ""],
        rows,
        right=[3, 4],
    )
    if not summaries:
        Out(sys.stderr).line(f"runs: no runs under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
