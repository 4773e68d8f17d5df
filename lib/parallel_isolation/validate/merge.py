"""One verdict from the validation reports of several shards of a CI run.

Each shard (``--splits N --group K``, on its own machine) validates its own
run and uploads ``validate-<run>.json``.  :func:`merge_reports` reads them all
and decides: the worst exit code wins (2 "could not validate" over 1
"findings" over 0 "clean"); shards that share a run id are themselves a
finding, since run ids key every label and namespace.

``python -m parallel_isolation.validate.merge report.json...`` prints a table and exits
with the merged code (the isolation verdict's); the tests verdicts of the shards
are merged beside it (failed if any shard's tests failed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parallel_isolation.console import Out, natural_sorted

__all__ = ["MergedVerdict", "ShardReport", "main", "merge_reports"]

_SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class ShardReport:
    path: Path
    run_id: str
    exit_code: int
    verdict: str
    counts: dict[str, int]
    findings: list[dict[str, Any]]
    tests: dict[str, Any] = field(default_factory=dict)
    """The shard's tests verdict (``verdict``, ``counts``), when its report has one."""


@dataclass
class MergedVerdict:
    shards: list[ShardReport]
    exit_code: int
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {0: "clean", 1: "findings"}.get(self.exit_code, "could not validate")

    def counts(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for shard in self.shards:
            total.update(shard.counts)
        return {severity: total.get(severity, 0) for severity in _SEVERITIES}

    def test_counts(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for shard in self.shards:
            total.update({str(k): int(v) for k, v in dict(shard.tests.get("counts", {})).items()})
        return dict(total)

    @property
    def tests_verdict(self) -> str:
        """``failed`` if any shard's tests failed, ``passed`` if all passed, else ``unknown``."""
        verdicts = [str(shard.tests.get("verdict", "unknown")) for shard in self.shards]
        if "failed" in verdicts:
            return "failed"
        if verdicts and all(v == "passed" for v in verdicts):
            return "passed"
        return "unknown"


def _load(path: Path) -> ShardReport:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "exit_code" not in data or "run_id" not in data:
        msg = f"{path}: not a validation report (no run_id/exit_code)"
        raise ValueError(msg)
    return ShardReport(
        path=path,
        run_id=str(data["run_id"]),
        exit_code=int(data["exit_code"]),
        verdict=str(data.get("verdict", "")),
        counts={str(k): int(v) for k, v in dict(data.get("counts", {})).items()},
        findings=list(data.get("findings", [])),
        tests=dict(data["tests"]) if isinstance(data.get("tests"), dict) else {},
    )


def merge_reports(paths: list[Path]) -> MergedVerdict:
    """Read every report; unreadable ones make the verdict "could not validate"."""
    shards: list[ShardReport] = []
    problems: list[str] = []
    for path in paths:
        try:
            shards.append(_load(path))
        except (OSError, ValueError, TypeError) as error:
            problems.append(f"{path}: {error}")
    if not paths:
        problems.append("no shard reports given")
    owners: dict[str, list[str]] = {}
    for shard in shards:
        owners.setdefault(shard.run_id, []).append(str(shard.path))
    duplicates = {run: files for run, files in owners.items() if len(files) > 1}
    for run, files in duplicates.items():
        problems.append(f"run id {run} is shared by {len(files)} shards ({', '.join(files)})")
    exit_code = max((shard.exit_code for shard in shards), default=0)
    if problems and not duplicates:
        exit_code = 2
    elif duplicates:
        exit_code = max(exit_code, 1)
    return MergedVerdict(shards=shards, exit_code=exit_code, problems=problems)


def _print(merged: MergedVerdict, out: Out, errors: Out) -> None:
    """One line per shard (natural order of report names), the totals, then the verdict."""
    rows = [
        [
            shard.path.name,
            shard.run_id,
            str(shard.tests.get("verdict", "unknown")),
            shard.verdict,
            *(shard.counts.get(severity, 0) for severity in _SEVERITIES),
        ]
        for shard in natural_sorted(merged.shards, key=lambda s: s.path.name)
    ]
    totals = merged.counts()
    rows.append(
        ["all", "", merged.tests_verdict, merged.verdict, *(totals[s] for s in _SEVERITIES)]
    )
    out.table(["report", "run", "tests", "isolation", *_SEVERITIES], rows, right=[4, 5, 6])
    tests = ", ".join(f"{n} {k}" for k, n in sorted(merged.test_counts().items())) or "none"
    out.line(f"tests: {merged.tests_verdict} ({tests})")
    style = {0: "bold green", 1: "bold red"}.get(merged.exit_code, "bold magenta")
    out.line(f"shards: {merged.verdict} (exit {merged.exit_code})", style)
    for problem in merged.problems:
        errors.line(f"validate-merge: problem: {problem}", "bold magenta")


def main(argv: list[str] | None = None, *, prog: str = "parallel-isolation merge") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "reports", nargs="*", type=Path, help="validate-<run>.json files, one per shard"
    )
    parser.add_argument("--json", action="store_true", help="print the merged verdict as JSON")
    args = parser.parse_args(argv)
    merged = merge_reports(args.reports)
    if args.json:
        print(
            json.dumps(
                {
                    "verdict": merged.verdict,
                    "exit_code": merged.exit_code,
                    "counts": merged.counts(),
                    "tests": {
                        "verdict": merged.tests_verdict,
                        "counts": merged.test_counts(),
                    },
                    "problems": merged.problems,
                    "shards": [
                        {"report": str(s.path), "run_id": s.run_id, "exit_code": s.exit_code}
                        for s in merged.shards
                    ],
                },
                indent=2,
            )
        )
    else:
        _print(merged, Out(sys.stdout), Out(sys.stderr))
    return merged.exit_code


if __name__ == "__main__":
    sys.exit(main())
