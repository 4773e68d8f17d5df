"""Validation of a finished run: logs, events, cross-talk, Docker objects, host resources.

``python -m parallel_isolation.validate [--run ID|latest] [--format table|json|html]``
(wrapped by ``invoke validate``) exits 0 when clean, 1 with findings at or
above ``--fail-on`` (default ``warning``), 2 when the run could not be
validated.  See ``docs/validation.md``.
"""

from __future__ import annotations

from parallel_isolation.validate.base import ScanEnv, Scanner, ScanResult
from parallel_isolation.validate.core import SCANNERS, validate_dir, validate_run
from parallel_isolation.validate.html import render_html
from parallel_isolation.validate.model import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_UNVALIDATED,
    Finding,
    Report,
    Severity,
)
from parallel_isolation.validate.patterns import PATTERNS, LogPattern, register_pattern
from parallel_isolation.validate.render import print_table, render_json, render_table
from parallel_isolation.validate.rundata import (
    ValidationError,
    default_artifacts_root,
    load_run,
    resolve_run_dir,
)

__all__ = [
    "EXIT_CLEAN",
    "EXIT_FINDINGS",
    "EXIT_UNVALIDATED",
    "PATTERNS",
    "SCANNERS",
    "Finding",
    "LogPattern",
    "Report",
    "ScanEnv",
    "ScanResult",
    "Scanner",
    "Severity",
    "ValidationError",
    "default_artifacts_root",
    "load_run",
    "main",
    "print_table",
    "register_pattern",
    "render_html",
    "render_json",
    "render_table",
    "resolve_run_dir",
    "validate_dir",
    "validate_run",
]


def main(argv: list[str] | None = None) -> int:
    """The CLI (see :mod:`parallel_isolation.validate.cli`); returns the exit code."""
    from parallel_isolation.validate.cli import main as cli_main

    return cli_main(argv)
