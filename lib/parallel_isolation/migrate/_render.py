"""Output of the tool: plain lines for people and tools, JSON for machines.

Every ``path:line:col`` and every message is printed exactly as it is: no
markup, no emoji codes, no wrapping.  Colour is added only to the tool's own
words (codes, statuses), only when the stream is a terminal and ``NO_COLOR``
is not set.  Results go to the stream given (stdout); nothing here writes to
stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal, TextIO

from parallel_isolation.migrate._codes import CODES
from parallel_isolation.migrate._model import FileResult, Finding, MigrationReport

__all__ = [
    "Format",
    "findings_json",
    "render_findings",
    "render_report",
    "report_json",
    "use_color",
]

Format = Literal["text", "json"]

_RED, _YELLOW, _GREEN, _CYAN, _BOLD, _RESET = (
    "\x1b[31m",
    "\x1b[33m",
    "\x1b[32m",
    "\x1b[36m",
    "\x1b[1m",
    "\x1b[0m",
)


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _paint(text: str, color: str, enabled: bool) -> str:
    return f"{color}{text}{_RESET}" if enabled else text


def findings_json(findings: Sequence[Finding]) -> dict[str, Any]:
    counts = Counter(f.code for f in findings)
    return {
        "findings": [f.as_dict() for f in findings],
        "summary": {
            "total": len(findings),
            "sites": sum(1 + len(f.related) for f in findings),
            "files": len({f.path for f in findings}),
            "auto_fixable": sum(1 for f in findings if f.autofix),
            "by_code": dict(sorted(counts.items())),
        },
    }


def _finding_lines(finding: Finding, color: bool) -> list[str]:
    code = _paint(finding.code, _YELLOW if finding.severity == "warning" else _RED, color)
    fix = " [auto-fix]" if finding.autofix else ""
    lines = [f"{finding.path}:{finding.line}:{finding.col} {code} {finding.message}{fix}"]
    if finding.related:
        lines.append("    also at " + ", ".join(finding.related))
    return lines


def _summary_lines(findings: Sequence[Finding]) -> list[str]:
    counts = Counter(f.code for f in findings)
    sites: Counter[str] = Counter()
    fixable = Counter(f.code for f in findings if f.autofix)
    for finding in findings:
        sites[finding.code] += 1 + len(finding.related)
    files = len({f.path for f in findings})
    total_sites = sum(sites.values())
    person = sum(1 for f in findings if not f.autofix)
    lines = [
        f"{len(findings)} hazards ({total_sites} sites) in {files} files: "
        f"{len(findings) - person} auto-fixable by migrate, {person} for a person",
        f"{'code':<6} {'name':<20} {'severity':<8} {'hazards':>7} {'sites':>6} {'auto-fix':>8}",
    ]
    for code, count in sorted(counts.items()):
        info = CODES[code]
        lines.append(
            f"{code:<6} {info.name:<20} {info.severity:<8} {count:>7} {sites[code]:>6} "
            f"{fixable[code]:>8}"
        )
    return lines


def render_findings(
    findings: Sequence[Finding],
    output_format: Format = "text",
    stream: TextIO | None = None,
    color: bool | None = None,
) -> None:
    """One line per distinct hazard (its other sites indented below), then a summary."""
    out = stream if stream is not None else sys.stdout
    if output_format == "json":
        out.write(json.dumps(findings_json(findings), indent=2) + "\n")
        return
    paint = use_color(out) if color is None else color
    lines: list[str] = []
    for finding in findings:
        lines += _finding_lines(finding, paint)
    if not findings:
        lines.append("no parallel-safety hazards found")
    else:
        lines += ["", *_summary_lines(findings)]
    out.write("\n".join(lines) + "\n")


def _status(result: FileResult) -> str:
    if result.failed:
        return "skipped"
    if result.written:
        return "rewritten"
    if result.changed:
        return "would change"
    return "unchanged"


_STATUS_COLORS = {"skipped": _RED, "rewritten": _GREEN, "would change": _CYAN}


def report_json(report: MigrationReport, include_diff: bool) -> dict[str, Any]:
    files = []
    for result in report.files:
        entry: dict[str, Any] = {
            "path": result.path,
            "status": _status(result),
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


_DIFF_COLORS = (("+++", _BOLD), ("---", _BOLD), ("@@", _CYAN), ("+", _GREEN), ("-", _RED))


def render_report(
    report: MigrationReport,
    output_format: Format = "text",
    stream: TextIO | None = None,
    show_diff: bool = False,
    color: bool | None = None,
) -> None:
    """The diff (if asked), a table of files (status, hazards left, path), then what is left.

    The path is the last column, so a long path never pushes the others
    around or gets broken.
    """
    out = stream if stream is not None else sys.stdout
    if output_format == "json":
        out.write(json.dumps(report_json(report, show_diff), indent=2) + "\n")
        return
    paint = use_color(out) if color is None else color
    lines: list[str] = []
    if show_diff:
        for line in report.diff().splitlines():
            style = next((s for prefix, s in _DIFF_COLORS if line.startswith(prefix)), None)
            lines.append(_paint(line, style, paint) if style else line)
    lines.append(f"{'status':<12} {'left':>4}  file")
    for result in report.files:
        status = _status(result)
        tint = _STATUS_COLORS.get(status)
        shown = _paint(f"{status:<12}", tint, paint) if tint else f"{status:<12}"
        lines.append(f"{shown} {len(result.findings):>4}  {result.path}")
    remaining = report.findings
    if remaining:
        lines += ["", f"Left for a person ({len(remaining)}):"]
        for finding in remaining:
            lines += _finding_lines(finding, paint)
    out.write("\n".join(lines) + "\n")
