"""invoke tasks: thin calls of the ``parallel-isolation`` command's subcommands.

Each task takes the same options as its subcommand (a test keeps them equal)
and hands them to the same function; anything after ``--`` is passed on as
it is, e.g. ``invoke migrate --check -- tests/a.py tests/b``.
"""

from __future__ import annotations

import shlex

from invoke import Context, Exit, task


def _argv(**options: object) -> list[str]:
    """``--name value`` for each string option given, ``--name`` for each true flag."""
    argv: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            argv += [flag, str(value)]
    return argv


def _call(c: Context, command: str, argv: list[str]) -> None:
    """Run ``parallel-isolation <command> argv`` (plus the text after ``--``) in-process."""
    from parallel_isolation.cli import run_command

    code = run_command(command, [*argv, *shlex.split(getattr(c, "remainder", "") or "")])
    if code:
        raise Exit(code=code)


@task(help={"skip_install": "only start the engine, do not apt-get install anything"})
def docker_up(c: Context, skip_install: bool = False) -> None:
    """Install docker.io/mosquitto if missing and start the Docker engine (root)."""
    if not skip_install:
        c.run("bash ci/install-system-deps.sh", pty=False)
    c.run("bash ci/start-docker.sh", pty=False)


@task(
    help={
        "command": "build (default) or status",
        "status": "the same as command=status: show each image; exit 1 if any is stale",
        "project": "find the project (its pyproject.toml) from this directory",
        "source": "auto (default), registry or offline",
        "force": "rebuild every image even when it is current",
        "json": "status as JSON",
        "verbose": "show the build commands' output",
    }
)
def images(
    c: Context,
    command: str = "build",
    status: bool = False,
    project: str = "",
    source: str = "",
    force: bool = False,
    json: bool = False,
    verbose: bool = False,
) -> None:
    """Build the Docker backend's images (offline from the host's Debian mirror if need be)."""
    options = _argv(project=project, source=source, force=force, json=json, verbose=verbose)
    _call(c, "images", ["status" if status else command, *options])


@task(
    help={
        "path": "files or directories, separated by spaces or commas (more after --)",
        "check": "only report the hazards (file:line:col CODE message); exit 1 if any",
        "diff": "show the rewrite as a diff and write nothing; exit 1 if a file would change",
        "format": "text (a line per finding and a summary table) or json",
        "jobs": "worker processes (default: one per CPU)",
        "codes_markdown": "print the hazard codes as Markdown",
    }
)
def migrate(
    c: Context,
    path: str = "",
    check: bool = False,
    diff: bool = False,
    format: str = "",
    jobs: int = 0,
    codes_markdown: bool = False,
) -> None:
    """Rewrite parallel-unsafe test files; --check lists the hazards and exits 1."""
    paths = path.replace(",", " ").split()
    options = _argv(check=check, diff=diff, format=format, codes_markdown=codes_markdown)
    _call(c, "migrate", [*paths, *options, *(["--jobs", str(jobs)] if jobs else [])])


@task(
    help={
        "run": "run id (or a unique prefix) or 'latest'",
        "format": "table, json or html (html is written into the run directory)",
        "artifacts": "artifacts root (default: found like the plugin, from the pytest rootdir)",
        "state_dir": "host-wide state dir (port reservations)",
        "output": "write the report to this file instead",
        "fail_on": "lowest severity that fails: error, warning (default) or info",
        "min_severity": "lowest severity the table shows: info (default), warning or error",
        "details": "list every finding of a group (the table groups repeated findings)",
        "json": "also write the JSON report to this file",
        "html": "also write the HTML report to this file",
        "no_process_scan": "skip looking for the run's leftover marked processes",
    }
)
def validate(
    c: Context,
    run: str = "",
    format: str = "",
    artifacts: str = "",
    state_dir: str = "",
    output: str = "",
    fail_on: str = "",
    min_severity: str = "",
    details: bool = False,
    json: str = "",
    html: str = "",
    no_process_scan: bool = False,
) -> None:
    """Scan a finished run (tests and isolation verdicts); exit 1 on findings, 2 if it cannot."""
    options = _argv(
        run=run,
        format=format,
        artifacts=artifacts,
        state_dir=state_dir,
        output=output,
        fail_on=fail_on,
        min_severity=min_severity,
        details=details,
        json=json,
        html=html,
        no_process_scan=no_process_scan,
    )
    _call(c, "validate", options)


@task(
    help={
        "dry_run": "decide and print, remove nothing",
        "older_than": "only objects older than this (30s, 10m, 2h, 1d)",
        "run": "only this run's objects (also those whose owner cannot be checked)",
        "state_dir": "host-wide state dir",
        "artifacts": "artifacts root; removals are noted in <run>/cleanup.jsonl there",
        "grace": "seconds between SIGTERM and SIGKILL",
        "no_docker": "do not look at Docker (without it, no engine means exit 2)",
        "format": "table or json",
    }
)
def cleanup_orphans(
    c: Context,
    dry_run: bool = False,
    older_than: str = "",
    run: str = "",
    state_dir: str = "",
    artifacts: str = "",
    grace: str = "",
    no_docker: bool = False,
    format: str = "",
) -> None:
    """Remove what dead runs left (labelled containers, networks, processes, reservations); never a live run's."""
    options = _argv(
        dry_run=dry_run,
        older_than=older_than,
        run=run,
        state_dir=state_dir,
        artifacts=artifacts,
        grace=grace,
        no_docker=no_docker,
        format=format,
    )
    _call(c, "cleanup-orphans", options)


@task(
    help={
        "artifacts": "artifacts root (default: found like the plugin, from the pytest rootdir)",
        "last": "how many runs (default 10)",
        "no_validate": "list from run.json alone, without validating",
        "format": "table or json",
    }
)
def runs(
    c: Context, artifacts: str = "", last: int = 0, no_validate: bool = False, format: str = ""
) -> None:
    """List the recorded runs, newest first, with their verdicts."""
    options = _argv(artifacts=artifacts, no_validate=no_validate, format=format)
    _call(c, "runs", [*options, *(["--last", str(last)] if last else [])])


@task(help={"json": "print the merged verdict as JSON"})
def merge(c: Context, json: bool = False) -> None:
    """One verdict from several shards' validation reports (the JSON files after --)."""
    _call(c, "merge", _argv(json=json))
