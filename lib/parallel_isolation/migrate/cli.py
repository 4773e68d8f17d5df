"""Command line of the migration tool.

``python -m parallel_isolation.migrate [--check | --diff] [--format text|json]
[--jobs N] PATH...``; ``invoke migrate`` and the ``migrate`` subcommand of
``parallel-isolation`` call :func:`main` with the same options.

Results (findings, the table of files, diffs, JSON) go to stdout; usage errors
and other diagnostics to stderr.  Exit codes:

- 0: clean (``--check``: no hazard; ``--diff``: nothing would change and
  nothing is left; rewrite: done, nothing left for a person);
- 1: findings (hazards found, a file would change, or hazards are left for a
  person after the rewrite);
- 2: could not (a path that does not exist, a file that does not parse or
  cannot be read, a rewrite that would not compile, bad usage).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import TextIO

from parallel_isolation.migrate._codes import codes_markdown
from parallel_isolation.migrate._render import Format, render_findings, render_report
from parallel_isolation.migrate._runner import check_paths, migrate_paths

__all__ = ["EXIT_CLEAN", "EXIT_COULD_NOT", "EXIT_FINDINGS", "build_parser", "main", "split_paths"]

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_COULD_NOT = 2

_COULD_NOT = frozenset({"PI001", "PI002"})
_SEPARATORS = re.compile(r"[,\s]+")


def split_paths(*arguments: str) -> list[str]:
    """Paths from arguments that may hold several, separated by commas or whitespace.

    ``invoke`` passes one positional value, so ``invoke migrate "a.py b.py"``
    and ``invoke migrate a.py,b.py`` both arrive here as one string.
    """
    return [part for argument in arguments for part in _SEPARATORS.split(argument) if part]


def build_parser(prog: str = "python -m parallel_isolation.migrate") -> argparse.ArgumentParser:
    """The argument parser; also what the ``migrate`` subcommand mounts."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Find (--check) or rewrite the patterns that break a pytest suite under "
            "pytest-xdist: fixed broker ports, container and network names, client ids, "
            "bare topics, sleeps, shared temp paths."
        ),
        epilog="exit codes: 0 clean, 1 findings, 2 could not (missing path, file that does not parse)",
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="files or directories (searched for *.py)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="only report the hazards; exit 1 when any is found"
    )
    mode.add_argument(
        "--diff",
        action="store_true",
        help="show the rewrite as a unified diff and write nothing; exit 1 if a file would change",
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=("text", "json"),
        default="text",
        help="text: one line per hazard and a summary (default); json: for machines",
    )
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=None,
        metavar="N",
        help="worker processes (default: one per CPU; 1 runs in this process)",
    )
    parser.add_argument(
        "--codes-markdown",
        action="store_true",
        help="print the hazard codes as the Markdown section of docs/migration.md and exit",
    )
    return parser


def _jobs(value: str) -> int:
    try:
        jobs = int(value)
    except ValueError:
        msg = f"--jobs takes a whole number of processes, got {value!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if jobs < 0:
        msg = f"--jobs must be 0 (one per CPU) or more, got {jobs}"
        raise argparse.ArgumentTypeError(msg)
    return jobs


def run(
    paths: Sequence[str],
    *,
    check: bool = False,
    diff: bool = False,
    output_format: Format = "text",
    jobs: int | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Lint (``check``) or rewrite ``paths``; print the outcome; return the exit code."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    if not paths:
        err.write("migrate: no paths given; name the files or directories to migrate\n")
        return EXIT_COULD_NOT
    workers = jobs or None
    try:
        if check:
            findings = check_paths(paths, jobs=workers)
            render_findings(findings, output_format, out)
            if any(f.code in _COULD_NOT for f in findings):
                return EXIT_COULD_NOT
            return EXIT_FINDINGS if findings else EXIT_CLEAN
        report = migrate_paths(paths, write=not diff, diff=diff, jobs=workers)
    except FileNotFoundError as error:
        err.write(f"migrate: {error}\n")
        return EXIT_COULD_NOT
    render_report(report, output_format, out, show_diff=diff)
    if report.failed:
        return EXIT_COULD_NOT
    if report.findings or (diff and report.changed):
        return EXIT_FINDINGS
    return EXIT_CLEAN


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments), run, return the exit code.

    ``prog`` is the name usage and ``--help`` show (``parallel-isolation
    migrate`` when mounted as that command's subcommand).
    """
    parser = build_parser(prog) if prog else build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors, 0 on --help
        return int(exit_.code or 0)
    if args.codes_markdown:
        sys.stdout.write(codes_markdown())
        return EXIT_CLEAN
    return run(
        args.paths,
        check=args.check,
        diff=args.diff,
        output_format=args.output_format,
        jobs=args.jobs,
    )
