"""``parallel-isolation``: the toolkit's one installed command.

Each subcommand is a tool's own ``main(argv)``, mounted here unchanged, so
``parallel-isolation validate ...``, ``python -m parallel_isolation.validate
...``, ``invoke validate ...`` and ``nox -s validate -- ...`` accept the same
options and behave the same.  Every subcommand works from any directory of a
project: it finds the project the way pytest finds its rootdir and reads the
plugin's settings there (``isolation_artifacts``, ``isolation_state_dir`` from
the ini file, overridden by ``ISOLATION_ARTIFACTS_DIR`` / ``ISOLATION_STATE_DIR``).

Exit status: 0 clean, 1 findings, 2 could not (the subcommand's own).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from parallel_isolation.project import ProjectError, find_project, project_settings

__all__ = ["COMMANDS", "Command", "main"]

PROG = "parallel-isolation"


@dataclass(frozen=True)
class Command:
    """A subcommand: the tool's ``main(argv)`` and a one-line summary."""

    name: str
    module: str
    summary: str
    function: str = "main"
    # Options to fill in from the project's settings when the user gave none.
    from_project: tuple[str, ...] = ()

    def entry(self) -> Callable[..., int]:
        tool: Callable[..., int] = getattr(importlib.import_module(self.module), self.function)
        return tool


COMMANDS: tuple[Command, ...] = (
    Command(
        "validate",
        "parallel_isolation.validate.cli",
        "scan a finished run for leaks and collisions (exit 1 on findings)",
        from_project=("--state-dir",),
    ),
    Command(
        "runs",
        "parallel_isolation.validate.runs",
        "list the recorded runs with their verdicts",
    ),
    Command(
        "cleanup-orphans",
        "parallel_isolation.reap.orphans",
        "remove what dead runs left behind (never a live run's objects)",
        from_project=("--state-dir",),
    ),
    Command(
        "migrate",
        "parallel_isolation.migrate.cli",
        "find (--check) or rewrite parallel-unsafe patterns in test files",
    ),
    Command(
        "images",
        "parallel_isolation.images.cli",
        "build (default) or show the status of the Docker backend's images",
    ),
    Command(
        "merge",
        "parallel_isolation.validate.merge",
        "one verdict from several shards' JSON validation reports",
    ),
)


def _version() -> str:
    try:
        return version("parallel-isolation")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tools of the parallel-isolation pytest plugin. Run from any directory "
        "of your project: the artifacts and settings are found the way the plugin finds them "
        "(pytest rootdir, isolation_* ini keys, ISOLATION_* environment variables).",
        epilog=f"`{PROG} COMMAND --help` shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        # Each tool parses its own options: the sub-parser only names it.
        commands.add_parser(command.name, help=command.summary, add_help=False)
    return parser


def _given(argv: Sequence[str], option: str) -> bool:
    return any(arg == option or arg.startswith(option + "=") for arg in argv)


def _project_defaults(command: Command, argv: list[str]) -> list[str]:
    """``argv`` plus the project's settings for the options the user left out."""
    wanted = [option for option in command.from_project if not _given(argv, option)]
    if not wanted or _given(argv, "--help") or _given(argv, "-h"):
        return argv
    settings = project_settings(find_project())
    extra: list[str] = []
    if "--state-dir" in wanted and settings.state_dir:
        extra += ["--state-dir", settings.state_dir]
    return [*argv, *extra]


def run_command(name: str, argv: Sequence[str]) -> int:
    """Run subcommand ``name`` with ``argv`` (what invoke tasks and nox sessions call)."""
    command = next((c for c in COMMANDS if c.name == name), None)
    if command is None:
        known = ", ".join(c.name for c in COMMANDS)
        print(f"{PROG}: error: unknown command {name!r}; known: {known}", file=sys.stderr)
        return 2
    try:
        args = _project_defaults(command, list(argv))
    except ProjectError as error:
        print(f"{PROG} {name}: error: {error}", file=sys.stderr)
        return 2
    tool = command.entry()
    prog = f"{PROG} {name}"
    try:
        if "prog" in inspect.signature(tool).parameters:
            return int(tool(args, prog=prog))
        return int(tool(args))
    except SystemExit as stop:  # a tool whose argparse exits (--help: 0, usage: 2)
        return stop.code if isinstance(stop.code, int) else 2


def main(argv: Sequence[str] | None = None) -> int:
    """The ``parallel-isolation`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not args:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: a command is required (see {PROG} --help)", file=sys.stderr)
        return 2
    if args[0] in {"-h", "--help"}:
        parser.print_help()
        return 0
    if args[0] == "--version" or args[0].startswith("-"):
        try:
            parser.parse_args(args[:1])
        except SystemExit as stop:
            return stop.code if isinstance(stop.code, int) else 2
    return run_command(args[0], args[1:])


if __name__ == "__main__":
    sys.exit(main())
