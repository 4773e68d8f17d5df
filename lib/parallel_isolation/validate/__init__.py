"""Validation of a finished run: logs, events, cross-talk, Docker objects, host resources.

``python -m parallel_isolation.validate [--run ID|latest] [--format table|json|html]``
(wrapped by ``invoke validate``) exits 0 when clean, 1 with findings at or
above ``--fail-on`` (default ``warning``), 2 when the run could not be
(fully) validated.  A report holds two verdicts: the tests' and the
isolation's; the exit code is the isolation verdict's.  See ``docs/validation.md``.
"""

from __future__ import annotations

from parallel_isolation.validate.base import ScanEnv, Scanner, ScanResult
from parallel_isolation.validate.core import SCANNERS, validate_dir, validate_run
from parallel_isolation.validate.html import render_html
from parallel_isolation.validate.model import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_UNVALIDATED,
    FailedTest,
    Finding,
    FindingGroup,
    Report,
    Severity,
    TestOutcomes,
    group_findings,
)
from parallel_isolation.validate.outcomes import summarize_tests
from parallel_isolation.validate.patterns import PATTERNS, LogPattern, register_pattern
from parallel_isolation.validate.render import print_report, render_json, render_text
from parallel_isolation.validate.rundata import (
    ValidationError,
    default_artifacts_root,
    load_run,
    resolve_run_dir,
)
from parallel_isolation.validate.runs import RunSummary, list_runs

__all__ = [
    "EXIT_CLEAN",
    "EXIT_FINDINGS",
    "EXIT_UNVALIDATED",
    "PATTERNS",
    "SCANNERS",
    "FailedTest",
    "Finding",
    "FindingGroup",
    "LogPattern",
    "Report",
    "RunSummary",
    "ScanEnv",
    "ScanResult",
    "Scanner",
    "Severity",
    "TestOutcomes",
    "ValidationError",
    "default_artifacts_root",
    "group_findings",
    "list_runs",
    "load_run",
    "main",
    "print_report",
    "register_pattern",
    "render_html",
    "render_json",
    "render_text",
    "resolve_run_dir",
    "runs_main",
    "summarize_tests",
    "validate_dir",
    "validate_run",
]


def main(argv: list[str] | None = None) -> int:
    """The CLI (see :mod:`parallel_isolation.validate.cli`); returns the exit code."""
    from parallel_isolation.validate.cli import main as cli_main

    return cli_main(argv)


def runs_main(argv: list[str] | None = None) -> int:
    """The ``runs`` listing (see :mod:`parallel_isolation.validate.runs`)."""
    from parallel_isolation.validate.runs import main as runs_cli_main

    return runs_cli_main(argv)
