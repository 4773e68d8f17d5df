"""``parallel-isolation validate`` (``python -m parallel_isolation.validate``, ``invoke validate``).

:func:`main` (``main(argv) -> exit code``) validates one run; the recorded
runs are listed by :mod:`parallel_isolation.validate.runs`.  Output follows
:mod:`parallel_isolation.console`: the report (or the path of the HTML
report) on stdout, diagnostics on stderr, exit 0 clean, 1 findings, 2 could
not validate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from parallel_isolation.console import EXIT_COULD_NOT, Out, error_text
from parallel_isolation.validate.base import ScanEnv
from parallel_isolation.validate.core import validate_run
from parallel_isolation.validate.html import render_html
from parallel_isolation.validate.model import Report, Severity
from parallel_isolation.validate.render import print_report, render_json
from parallel_isolation.validate.rundata import default_artifacts_root

__all__ = ["build_parser", "main"]

PROG = "parallel-isolation validate"
DESCRIPTION = (
    "Validate a finished run: its tests' outcomes, and its isolation (logs, events, cross-talk, "
    "snapshots, the Docker objects and processes carrying its labels). "
    "Exit 0 clean, 1 findings, 2 could not validate."
)


def _severity(raw: str) -> Severity:
    try:
        return Severity.parse(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _artifacts_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        help="artifacts root [found like the plugin: isolation_artifacts of the pytest "
        "rootdir's ini file, $ISOLATION_ARTIFACTS_DIR, default <rootdir>/.isolation/runs]",
    )


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument(
        "--run", default="latest", help="run id (or unique prefix) or 'latest' [latest]"
    )
    parser.add_argument(
        "--format", choices=("table", "json", "html"), default="table", help="output format [table]"
    )
    _artifacts_option(parser)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="host-wide state dir (port reservations) "
        "[the run's setting, $ISOLATION_STATE_DIR, <tmp>/parallel-isolation-<uid>]",
    )
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        help="write the report here (html default: <run dir>/report.html; json/table: stdout)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the JSON report here"
    )
    parser.add_argument(
        "--html", type=Path, default=None, metavar="PATH", help="also write the HTML report here"
    )
    parser.add_argument(
        "--fail-on",
        type=_severity,
        default=Severity.WARNING,
        help="lowest severity that makes the exit code 1: error, warning or info [warning]",
    )
    parser.add_argument(
        "--min-severity",
        type=_severity,
        default=Severity.INFO,
        help="lowest severity the table shows: info, warning or error [info]",
    )
    parser.add_argument(
        "--details",
        action="store_true",
        help="list every finding of a group (the table groups repeated findings by code)",
    )
    parser.add_argument(
        "--no-process-scan",
        action="store_true",
        help="skip looking for the run's leftover marked processes",
    )
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except SystemExit as stop:  # argparse's --help (0) and usage errors (2)
        return stop.code if isinstance(stop.code, int) else EXIT_COULD_NOT


def _write(target: Path, text: str, errors: Out) -> bool:
    try:
        target.write_text(text)
    except OSError as error:
        errors.line(
            error_text(
                f"validate: cannot write {target}: {error.strerror or error}",
                "pass an existing, writable directory",
            ),
            "bold magenta",
        )
        return False
    return True


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    args = _parse(build_parser(prog), argv)
    if isinstance(args, int):
        return args
    errors = Out(sys.stderr)
    root = args.artifacts or default_artifacts_root()
    env = ScanEnv(state_dir=args.state_dir, scan_processes=not args.no_process_scan)
    report = validate_run(root, args.run, env=env, fail_on=args.fail_on)
    if not report.loaded:
        for problem in report.problems:
            errors.line(f"validate: error: {problem}", "bold magenta")
        return report.exit_code()
    if args.json is not None and not _write(args.json, render_json(report), errors):
        return EXIT_COULD_NOT
    if args.html is not None and not _write(
        args.html, render_html(report, base=args.html.parent.absolute()), errors
    ):
        return EXIT_COULD_NOT
    if args.format == "json":
        text = render_json(report)
        if args.output:
            if not _write(args.output, text, errors):
                return EXIT_COULD_NOT
        else:
            sys.stdout.write(text)
    elif args.format == "html":
        target = args.output or Path(report.run_dir) / "report.html"
        if not _write(target, render_html(report, base=target.parent.absolute()), errors):
            return EXIT_COULD_NOT
        _print(report, errors, args)
        Out(sys.stdout).line(str(target))
    elif args.output:
        try:
            with args.output.open("w") as handle:
                _print(report, Out(handle), args)
        except OSError as error:
            errors.line(f"validate: error: cannot write {args.output}: {error}", "bold magenta")
            return EXIT_COULD_NOT
    else:
        _print(report, Out(sys.stdout), args)
    for extra in (args.json, args.html):
        if extra is not None:
            errors.line(f"validate: wrote {extra}", "dim")
    return report.exit_code()


def _print(report: Report, out: Out, args: argparse.Namespace) -> None:
    print_report(report, out, min_severity=args.min_severity, details=args.details)
