"""One verdict from the validation reports of several shards of a CI run.

Each shard (``--splits N --group K``, on its own machine) validates its own
run and uploads ``validate-<run>.json``.  :func:`merge_reports` reads them all
and decides: the worst exit code wins (2 "could not validate" over 1
"findings" over 0 "clean"); shards that share a run id are themselves a
finding, since run ids key every label and namespace.

``python -m parallel_isolation.validate.merge report.json...`` prints a table and exits
with the merged code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

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


def _table(merged: MergedVerdict) -> Table:
    table = Table(title=f"shards: {merged.verdict} (exit {merged.exit_code})")
    for column in ("report", "run", "verdict", *_SEVERITIES):
        table.add_column(column)
    for shard in merged.shards:
        table.add_row(
            shard.path.name,
            shard.run_id,
            shard.verdict,
            *(str(shard.counts.get(severity, 0)) for severity in _SEVERITIES),
        )
    totals = merged.counts()
    table.add_row("all", "", merged.verdict, *(str(totals[s]) for s in _SEVERITIES))
    return table


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
        console = Console()
        console.print(_table(merged))
        for problem in merged.problems:
            console.print(f"[red]problem:[/red] {problem}")
    return merged.exit_code


if __name__ == "__main__":
    sys.exit(main())
