"""Output: one ``file:line:col CODE message`` line per finding, a rich summary
table, JSON for machines, unified diffs for the codemod."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from parallel_isolation.migrate._codes import CODES
from parallel_isolation.migrate._model import Finding, MigrationReport

__all__ = ["Format", "findings_json", "render_findings", "render_report", "report_json"]

Format = Literal["text", "json"]


def findings_json(findings: Sequence[Finding]) -> dict[str, Any]:
    counts = Counter(f.code for f in findings)
    return {
        "findings": [f.as_dict() for f in findings],
        "summary": {
            "total": len(findings),
            "files": len({f.path for f in findings}),
            "auto_fixable": sum(1 for f in findings if f.autofix),
            "by_code": dict(sorted(counts.items())),
        },
    }


def _summary_table(findings: Sequence[Finding], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("code")
    table.add_column("name")
    table.add_column("severity")
    table.add_column("found", justify="right")
    table.add_column("auto-fixable", justify="right")
    counts = Counter(f.code for f in findings)
    fixable = Counter(f.code for f in findings if f.autofix)
    for code, count in sorted(counts.items()):
        info = CODES[code]
        style = "yellow" if info.severity == "warning" else "red"
        table.add_row(
            code, info.name, f"[{style}]{info.severity}[/]", str(count), str(fixable[code])
        )
    return table


def render_findings(
    findings: Sequence[Finding], output_format: Format = "text", console: Console | None = None
) -> None:
    console = console or Console()
    if output_format == "json":
        console.print_json(json.dumps(findings_json(findings)))
        return
    for finding in findings:
        console.print(str(finding), markup=False, highlight=False, soft_wrap=True)
    if not findings:
        console.print("[green]no parallel-safety hazards found[/]")
        return
    files = len({f.path for f in findings})
    console.print(
        _summary_table(
            findings,
            f"{len(findings)} hazards in {files} files "
            f"({sum(1 for f in findings if f.autofix)} auto-fixable by `invoke migrate`)",
        )
    )


_DIFF_STYLES = (("+++", "bold"), ("---", "bold"), ("@@", "cyan"), ("+", "green"), ("-", "red"))


def _print_diff(text: str, console: Console) -> None:
    """A unified diff, coloured per line, never wrapped or cropped."""
    for line in text.splitlines():
        style = next((s for prefix, s in _DIFF_STYLES if line.startswith(prefix)), None)
        console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)


def report_json(report: MigrationReport, include_diff: bool) -> dict[str, Any]:
    files = []
    for result in report.files:
        entry: dict[str, Any] = {
            "path": result.path,
            "changed": result.changed,
            "written": result.written,
            "failed": result.failed,
            "remaining": [f.as_dict() for f in result.findings],
            "notes": list(result.notes),
        }
        if include_diff:
            entry["diff"] = result.diff()
        files.append(entry)
    return {
        "files": files,
        "summary": {
            "files": len(report.files),
            "changed": len(report.changed),
            "failed": len(report.failed),
            "remaining": len(report.findings),
        },
    }


def render_report(
    report: MigrationReport,
    output_format: Format = "text",
    console: Console | None = None,
    show_diff: bool = False,
) -> None:
    console = console or Console()
    if output_format == "json":
        console.print_json(json.dumps(report_json(report, show_diff)))
        return
    if show_diff:
        _print_diff(report.diff(), console)
    table = Table(title="invoke migrate", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("status")
    table.add_column("left for a human", justify="right")
    for result in report.files:
        if result.failed:
            status = "[red]skipped[/]"
        elif result.written:
            status = "[green]rewritten[/]"
        elif result.changed:
            status = "[cyan]would change[/]"
        else:
            status = "unchanged"
        table.add_row(result.path, status, str(len(result.findings)))
    console.print(table)
    remaining = report.findings
    if remaining:
        console.print("[bold]Left as is (migrate these by hand):[/]")
        for finding in remaining:
            console.print(str(finding), markup=False, highlight=False, soft_wrap=True)
