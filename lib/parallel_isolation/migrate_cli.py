"""Command line of the migration tool: ``python -m parallel_isolation.migrate_cli``.

``invoke migrate`` is a thin wrapper around :func:`run`.  Exit codes:

- ``--check``: 0 no hazards, 1 hazards found;
- rewrite: 0 done, 1 a file could not be parsed or rewritten;
- ``--diff``: 0 nothing to change, 1 a file would change (or failed);
- 2: bad usage (a path that does not exist).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console

from parallel_isolation.migrate import (
    Format,
    check_paths,
    codes_markdown,
    migrate_paths,
    render_findings,
    render_report,
)

__all__ = ["main", "run", "split_paths"]


def split_paths(argument: str) -> list[str]:
    """``invoke migrate a.py,tests/b`` -> ``["a.py", "tests/b"]`` (invoke takes one positional)."""
    return [part.strip() for part in argument.split(",") if part.strip()]


def run(
    paths: Sequence[str],
    *,
    check: bool = False,
    diff: bool = False,
    output_format: str = "text",
    jobs: int | None = None,
    console: Console | None = None,
) -> int:
    """Lint (``check``) or rewrite ``paths``; render the outcome; return the exit code."""
    console = console or Console()
    fmt: Format
    if output_format == "text":
        fmt = "text"
    elif output_format == "json":
        fmt = "json"
    else:
        console.print(f"[red]unknown format {output_format!r}; use text or json[/]")
        return 2
    if not paths:
        console.print("[red]no paths given[/]")
        return 2
    try:
        if check:
            findings = check_paths(paths, jobs=jobs)
            render_findings(findings, fmt, console)
            return 1 if findings else 0
        report = migrate_paths(paths, write=not diff, diff=diff, jobs=jobs)
    except FileNotFoundError as error:
        console.print(f"[red]{error}[/]")
        return 2
    render_report(report, fmt, console, show_diff=diff)
    if report.failed:
        return 1
    return 1 if diff and report.changed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invoke migrate",
        description="Find (--check) or rewrite parallel-unsafe patterns in pytest files.",
    )
    parser.add_argument("paths", nargs="*", help="files or directories (searched for *.py)")
    parser.add_argument(
        "--check", action="store_true", help="only report hazards; exit 1 when any is found"
    )
    parser.add_argument(
        "--diff", action="store_true", help="show the rewrite as a diff, write nothing"
    )
    parser.add_argument("--format", dest="output_format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--jobs", type=int, default=None, help="worker processes (default: one per CPU)"
    )
    parser.add_argument(
        "--codes-markdown",
        action="store_true",
        help="print the hazard codes as the Markdown section of docs/migration.md",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.codes_markdown:
        print(codes_markdown(), end="")
        return 0
    return run(
        args.paths,
        check=args.check,
        diff=args.diff,
        output_format=args.output_format,
        jobs=args.jobs,
    )


if __name__ == "__main__":
    raise SystemExit(main())
