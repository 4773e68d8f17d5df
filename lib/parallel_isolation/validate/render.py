"""Rendering a report as text (terminal or plain) and JSON.

The text report follows :mod:`parallel_isolation.console`: every value is
literal, nothing wraps when the output is not a terminal, workers are in
natural order.  Its head holds the two verdicts (tests, isolation); then the
failed tests, the findings grouped by severity and code with a count and
their places (``details`` lists each finding), resources per worker, notes.
"""

from __future__ import annotations

import json
from typing import Any

from parallel_isolation.console import Out, Segment, columns, natural_sorted
from parallel_isolation.validate.model import (
    Finding,
    FindingGroup,
    Report,
    Severity,
    group_findings,
)

__all__ = [
    "OVERHEAD_TARGET_MS",
    "SEVERITY_STYLE",
    "VERDICT_STYLE",
    "overhead_text",
    "print_report",
    "render_json",
    "render_text",
    "report_lines",
]

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
VERDICT_STYLE = {
    "clean": "bold green",
    "passed": "bold green",
    "findings": "bold red",
    "failed": "bold red",
    "could not validate": "bold magenta",
    "could not fully validate": "bold magenta",
    "no tests": "bold yellow",
    "unknown": "bold yellow",
}
OVERHEAD_TARGET_MS = 5.0
"""The recorder's per-test overhead target (median), shown next to the measured figure."""
PLACES = 5
"""Places listed per finding group unless ``details`` is asked for."""

Line = list[Segment]


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, default=str) + "\n"


def _mb(value: Any) -> str:
    return f"{value / 1048576:.0f}" if isinstance(value, int | float) and value >= 0 else "-"


def _span(start: Any, end: Any, delta: Any = None) -> str:
    left = "-" if start is None else str(start)
    right = "-" if end is None else str(end)
    if isinstance(delta, int):
        return f"{left} → {right} ({delta:+d})"
    return f"{left} → {right}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _place(finding: Finding) -> str:
    parts = [finding.worker or "-"]
    if finding.test:
        parts.append(finding.test)
    if finding.where:
        parts.append(finding.where)
    return "  ".join(parts)


def _head(report: Report) -> list[Line]:
    tests = report.tests
    workers = report.sections.get("run", {}).get("workers", [])
    verdict = report.verdict
    counts = report.counts()
    title: Line = [("parallel-isolation validate", "bold"), (f" · run {report.run_id}", "bold")]
    if report.loaded:
        title.append(
            (
                f" · {len(workers)} workers · {tests.total} tests"
                f" · run took {_seconds(tests.duration_s)}",
                None,
            )
        )
    lines: list[Line] = [title, [(report.run_dir, "dim")]]
    if report.loaded:
        lines.append(
            [
                ("tests      ", "bold"),
                (tests.verdict.upper(), VERDICT_STYLE[tests.verdict]),
                (f"  {tests.describe()}", None),
            ]
        )
    lines.append(
        [
            ("isolation  ", "bold"),
            (verdict.upper(), VERDICT_STYLE[verdict]),
            (
                f"  {counts['error']} errors, {counts['warning']} warnings, {counts['info']} info"
                f" · exit {report.exit_code()} (fails on {report.fail_on.label})"
                f" · validated in {report.elapsed_s:.2f} s",
                None,
            ),
        ]
    )
    return lines


def _failed_tests(report: Report) -> list[Line]:
    failed = report.tests.failed
    if not failed:
        return []
    lines: list[Line] = [[], [(f"Failed tests ({len(failed)})", "bold")]]
    for test in failed:
        took = f"  ({test.duration_s:.2f} s)" if test.duration_s is not None else ""
        lines.append(
            [
                (f"  {test.outcome.upper():7} ", "bold red"),
                (f"{test.worker}  ", "bold"),
                (test.test, None),
                (took, "dim"),
            ]
        )
        if test.summary:
            lines.append([("          ", None), (test.summary, "red")])
        where = [test.where] if test.where else []
        if test.logs:
            where.append("logs: " + ", ".join(test.logs))
        if where:
            lines.append([("          ", None), ("  ".join(where), "dim")])
    return lines


def _group_lines(group: FindingGroup, details: bool) -> list[Line]:
    style = SEVERITY_STYLE[group.severity]
    example = group.example
    head: Line = [
        (f"  {group.severity.label.upper():7} ", style),
        (group.code, "bold"),
        (f"  x{group.count}" if group.count > 1 else "", "bold"),
        ("  ", None),
        (example.message, None),
    ]
    lines = [head]
    shown = group.findings if details else group.findings[:PLACES]
    for finding in shown:
        lines.append([("          ", None), (_place(finding), "dim")])
        if details and finding is not example:
            lines.append([("            ", None), (finding.message, None)])
    hidden = group.count - len(shown)
    if hidden:
        lines.append(
            [("          ", None), (f"... {hidden} more places (--details lists each)", "dim")]
        )
    hints = list(dict.fromkeys(f.hint for f in group.findings if f.hint))
    for hint in hints[:2]:
        lines.append([("          ", None), (f"→ {hint}", "cyan")])
    return lines


def _findings(report: Report, min_severity: Severity, details: bool) -> list[Line]:
    visible = report.visible(min_severity)
    hidden = len(report.findings) - len(visible)
    if not report.findings:
        return [[], [("Findings: none", "bold")]]
    groups = group_findings(visible)
    title = f"Findings ({len(visible)} in {len(groups)} group{'s' if len(groups) != 1 else ''}"
    if hidden:
        title += f"; {hidden} below {min_severity.label} hidden"
    title += ")"
    lines: list[Line] = [[], [(title, "bold")]]
    for group in groups:
        lines.extend(_group_lines(group, details))
    return lines


def _workers(report: Report) -> list[Line]:
    workers: dict[str, Any] = report.sections.get("resources", {}).get("workers") or {}
    if not workers:
        return []
    rows = []
    for worker in natural_sorted(workers):
        summary = workers[worker]
        start, end, delta = summary["start"], summary["end"], summary["delta"]
        rows.append(
            [
                worker,
                summary["tests"],
                "yes" if summary["finished"] else "NO",
                f"{_mb(start['rss'])} → {_mb(end['rss'])}",
                _span(start["threads"], end["threads"], delta["threads"]),
                _span(start["fds"], end["fds"], delta["fds"]),
                _span(start["sockets"], end["sockets"]),
                "-" if end["children"] is None else end["children"],
            ]
        )
    table = columns(
        ["worker", "tests", "finished", "RSS MB", "threads", "fds", "sockets", "children"],
        rows,
        right=[1],
    )
    lines: list[Line] = [[], [("Resources per worker (session start → end)", "bold")]]
    lines.append([(table[0], "bold")])
    lines.extend([[(row, None)] for row in table[1:]])
    return lines


def overhead_text(report: Report) -> str:
    """The recorder's per-test overhead with its target and the host's load, or ''."""
    events = report.sections.get("events", {})
    wall = events.get("overhead_ms") or {}
    if wall.get("median") is None:
        return ""
    cpu = events.get("overhead_cpu_ms") or {}
    host = events.get("host") or {}
    text = (
        f"recorder overhead per test: median {wall['median']:.2f} ms, p95 {wall['p95']:.2f} ms "
        f"over {wall['n']} tests"
    )
    if cpu.get("median") is not None:
        text += f" (CPU: median {cpu['median']:.2f} ms)"
    text += f"; target: median ≤ {OVERHEAD_TARGET_MS:g} ms"
    if host.get("load_end") is not None:
        text += f"; host load {host['load_end']:.1f} on {host.get('cpus') or '?'} CPUs at the end"
    return text


def _notes(report: Report) -> list[Line]:
    lines: list[Line] = []
    if report.problems:
        lines.append([("Not validated (exit 2):", "bold magenta")])
    for problem in report.problems:
        lines.append([("  - ", "bold magenta"), (problem, None)])
    overhead = overhead_text(report)
    if overhead:
        lines.append([("note: ", "dim"), (overhead, "dim")])
    for note in report.notes:
        lines.append([("note: ", "dim"), (note, "dim")])
    return [[], *lines] if lines else []


def report_lines(
    report: Report, *, min_severity: Severity = Severity.INFO, details: bool = False
) -> list[Line]:
    """The text report, line by line, each line a list of (text, style) segments."""
    lines = _head(report)
    if not report.loaded:
        lines.extend(_notes(report))
        return lines
    lines.extend(_failed_tests(report))
    lines.extend(_findings(report, min_severity, details))
    lines.extend(_workers(report))
    lines.extend(_notes(report))
    return lines


def render_text(
    report: Report, *, min_severity: Severity = Severity.INFO, details: bool = False
) -> str:
    """The text report as plain text."""
    return "".join(
        "".join(text for text, _ in line) + "\n"
        for line in report_lines(report, min_severity=min_severity, details=details)
    )


def print_report(
    report: Report,
    out: Out | None = None,
    *,
    min_severity: Severity = Severity.INFO,
    details: bool = False,
) -> None:
    """Print the text report (styled on a terminal, plain otherwise)."""
    target = out or Out()
    for line in report_lines(report, min_severity=min_severity, details=details):
        target.segments(line)
