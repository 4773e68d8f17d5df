"""Rendering a report: a rich terminal table and JSON for CI."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from parallel_isolation.validate.model import Finding, Report, Severity

__all__ = ["print_table", "render_json", "render_table"]

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}
VERDICT_STYLE = {
    "clean": "bold green",
    "findings": "bold red",
    "could not validate": "bold magenta",
}
MAX_ROWS = {Severity.ERROR: 200, Severity.WARNING: 100, Severity.INFO: 30}


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, default=str) + "\n"


def _mb(value: Any) -> str:
    return f"{value / 1048576:.0f}" if isinstance(value, int | float) and value >= 0 else "-"


def _delta(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:+d}" if isinstance(value, int) else f"{value:+.1f}"


def _findings_table(report: Report) -> Table:
    table = Table(title="Findings", expand=True, title_justify="left", show_lines=True)
    table.add_column("severity", overflow="fold", ratio=1)
    table.add_column("where", overflow="fold", ratio=2)
    table.add_column("what", overflow="fold", ratio=4)
    shown: dict[Severity, int] = {}
    hidden: dict[Severity, int] = {}
    for finding in report.sorted_findings():
        count = shown.get(finding.severity, 0)
        if count >= MAX_ROWS[finding.severity]:
            hidden[finding.severity] = hidden.get(finding.severity, 0) + 1
            continue
        shown[finding.severity] = count + 1
        table.add_row(*_row(finding))
    for severity, count in hidden.items():
        table.add_row(
            Text(severity.label, style=STYLE[severity]),
            "",
            Text(f"... {count} more (use --format json or html)", style="italic"),
        )
    return table


def _row(finding: Finding) -> list[Text]:
    sev = Text(finding.severity.label, style=STYLE[finding.severity])
    sev.append(f"\n{finding.code}", style="dim")
    where = Text(finding.worker or "-", style="bold")
    if finding.test:
        where.append(f"\n{finding.test}")
    if finding.where:
        where.append(f"\n{finding.where}", style="dim")
    what = Text(finding.message)
    if finding.hint:
        what.append(f"\n→ {finding.hint}", style="cyan")
    return [sev, where, what]


def _workers_table(report: Report) -> Table | None:
    workers = report.sections.get("resources", {}).get("workers")
    if not workers:
        return None
    table = Table(title="Resources per worker (session start → end)", title_justify="left")
    for column in (
        "worker",
        "tests",
        "finished",
        "RSS MB",
        "threads",
        "fds",
        "sockets",
        "children",
    ):
        table.add_column(column, justify="right" if column != "worker" else "left")
    for worker, summary in sorted(workers.items()):
        start, end, delta = summary["start"], summary["end"], summary["delta"]
        table.add_row(
            worker,
            str(summary["tests"]),
            "yes" if summary["finished"] else Text("no", style="red"),
            f"{_mb(start['rss'])} → {_mb(end['rss'])}",
            f"{start['threads'] or '-'} → {end['threads'] or '-'} ({_delta(delta['threads'])})",
            f"{start['fds'] or '-'} → {end['fds'] or '-'} ({_delta(delta['fds'])})",
            f"{start['sockets'] if start['sockets'] is not None else '-'} → {end['sockets'] if end['sockets'] is not None else '-'}",
            str(end["children"]) if end["children"] is not None else "-",
        )
    return table


def render_table(report: Report) -> Group:
    """A renderable: verdict panel, findings, per-worker resources, notes."""
    verdict = report.verdict
    counts = report.counts()
    events = report.sections.get("events", {})
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(events.get("outcomes", {}).items()))
    head = Text()
    head.append(f"run {report.run_id}  ", style="bold")
    head.append(f"{verdict.upper()} (exit {report.exit_code()})", style=VERDICT_STYLE[verdict])
    head.append(
        f"\n{counts['error']} errors, {counts['warning']} warnings, {counts['info']} info"
        f" (fail on {report.fail_on.label})"
        f"\nworkers: {len(report.sections.get('run', {}).get('workers', []))}"
        f"  tests: {events.get('tests', 0)}{f' ({outcomes})' if outcomes else ''}"
        f"  validated in {report.elapsed_s:.2f} s\n{report.run_dir}"
    )
    parts: list[Any] = [Panel(head, title="parallel-isolation validate", expand=True)]
    for problem in report.problems:
        parts.append(Text(f"could not validate: {problem}", style="bold magenta"))
    if report.findings:
        parts.append(_findings_table(report))
    workers = _workers_table(report)
    if workers is not None:
        parts.append(workers)
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    return Group(*parts)


def print_table(report: Report, console: Console | None = None) -> None:
    (console or Console()).print(render_table(report))
