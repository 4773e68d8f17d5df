"""``python -m parallel_isolation.validate``: the command behind ``invoke validate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from parallel_isolation.validate.base import ScanEnv
from parallel_isolation.validate.core import validate_run
from parallel_isolation.validate.html import render_html
from parallel_isolation.validate.model import EXIT_UNVALIDATED, Severity
from parallel_isolation.validate.render import print_table, render_json
from parallel_isolation.validate.rundata import default_artifacts_root

__all__ = ["build_parser", "main"]

DESCRIPTION = (
    "Validate a finished run: scan its logs, events and snapshots, the Docker objects "
    "and processes carrying its labels. Exit 0 clean, 1 findings, 2 could not validate."
)


def _severity(raw: str) -> Severity:
    try:
        return Severity.parse(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser(prog: str = "parallel-isolation validate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument(
        "--run", default="latest", help="run id (or unique prefix) or 'latest' [latest]"
    )
    parser.add_argument(
        "--format", choices=("table", "json", "html"), default="table", help="output format [table]"
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        help="artifacts root [found like the plugin: isolation_artifacts of the pytest "
        "rootdir's ini file, $ISOLATION_ARTIFACTS_DIR, default <rootdir>/.isolation/runs]",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="host-wide state dir (port reservations) [the run's setting, $ISOLATION_STATE_DIR, <tmp>/parallel-isolation]",
    )
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        help="write the report here (html default: <run dir>/report.html; json/table: stdout)",
    )
    parser.add_argument(
        "--fail-on",
        type=_severity,
        default=Severity.WARNING,
        help="lowest severity that makes the exit code 1: error, warning or info [warning]",
    )
    parser.add_argument(
        "--no-process-scan",
        action="store_true",
        help="skip looking for the run's leftover marked processes",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "parallel-isolation validate") -> int:
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as stop:  # argparse's --help (0) and usage errors (2)
        return stop.code if isinstance(stop.code, int) else EXIT_UNVALIDATED
    root = args.artifacts or default_artifacts_root()
    env = ScanEnv(state_dir=args.state_dir, scan_processes=not args.no_process_scan)
    report = validate_run(root, args.run, env=env, fail_on=args.fail_on)
    if args.format == "json":
        text = render_json(report)
        if args.output:
            args.output.write_text(text)
        else:
            sys.stdout.write(text)
    elif args.format == "html":
        target = args.output or Path(report.run_dir) / "report.html"
        if not target.parent.is_dir():
            Console(stderr=True).print(f"[magenta]cannot write {target}: no such directory[/]")
            return EXIT_UNVALIDATED
        target.write_text(render_html(report))
        print_table(report, Console(stderr=True, width=120))
        print(target)
    else:
        if args.output:
            with args.output.open("w") as handle:
                print_table(report, Console(file=handle, width=160))
        else:
            print_table(report)
    return report.exit_code()
