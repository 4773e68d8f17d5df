"""invoke tasks: thin wrappers that parse arguments, call the library, render output."""

from __future__ import annotations

from invoke import Context, Exit, task
from rich.console import Console

console = Console(stderr=True)


@task(help={"skip_install": "only start the engine, do not apt-get install anything"})
def docker_up(c: Context, skip_install: bool = False) -> None:
    """Install docker.io/mosquitto if missing and start the Docker engine (root)."""
    if not skip_install:
        c.run("bash ci/install-system-deps.sh", pty=False)
    c.run("bash ci/start-docker.sh", pty=False)


@task(
    help={
        "force": "rebuild every image even when it is current",
        "source": "auto (default), registry or offline",
        "status": "only show whether each image is current",
        "verbose": "show the build commands' output",
    }
)
def images(
    c: Context, force: bool = False, source: str = "", status: bool = False, verbose: bool = False
) -> None:
    """Build the Docker backend's images (offline from the host's Debian mirror if need be)."""
    from parallel_isolation.images import core as lib
    from parallel_isolation.images.progress import image_progress, image_status_table

    try:
        if status:
            rows = lib.images_status(source=source or None)
            console.print(image_status_table(rows))
            if any(not row.up_to_date for row in rows):
                raise Exit("some images are missing or stale: run `invoke images`", code=1)
            return
        results = lib.build_images(
            force=force, source=source or None, progress=image_progress(console, verbose)
        )
    except (lib.ImagesError, lib.EngineUnavailableError) as error:
        raise Exit(str(error), code=1) from None
    built = [r for r in results if r.action != "up-to-date"]
    console.print(
        f"[green]images ready[/green] ({len(built)} built, {len(results) - len(built)} current)"
    )


@task(
    help={
        "path": (
            "files or directories to migrate; several: quoted and separated by spaces or "
            'commas ("a.py tests/b", a.py,tests/b), or more after -- (a.py -- tests/b tests/c)'
        ),
        "check": "only report the hazards (file:line:col CODE message); exit 1 if any",
        "diff": "show the rewrite as a diff and write nothing; exit 1 if a file would change",
        "format": "text (a line per hazard and a summary) or json",
        "jobs": "worker processes (default 0: one per CPU)",
    }
)
def migrate(
    c: Context,
    path: str,
    check: bool = False,
    diff: bool = False,
    format: str = "text",
    jobs: int = 0,
) -> None:
    """Rewrite parallel-unsafe test files; --check lists the hazards (same as python -m parallel_isolation.migrate)."""
    from parallel_isolation.migrate.cli import main, split_paths

    argv = [
        *(["--check"] if check else []),
        *(["--diff"] if diff else []),
        "--format",
        format,
        "--jobs",
        str(jobs),
        "--",
        *split_paths(path, c.remainder),
    ]
    code = main(argv)
    if code:
        raise Exit(code=code)


@task(
    help={
        "run": "run id (or a unique prefix) or 'latest'",
        "format": "table, json or html (html is written into the run directory)",
        "output": "write the report to this file instead",
        "fail_on": "lowest severity that fails: error, warning (default) or info",
    }
)
def validate(
    c: Context,
    run: str = "latest",
    format: str = "table",
    output: str = "",
    fail_on: str = "warning",
) -> None:
    """Scan a finished run (logs, events, Docker, processes, snapshots); exit 1 on findings, 2 if it cannot."""
    from parallel_isolation.validate.cli import main

    argv = [
        "--run",
        run,
        "--format",
        format,
        "--fail-on",
        fail_on,
        *(["--output", output] if output else []),
    ]
    code = main(argv)
    if code:
        raise Exit(code=code)


@task(
    help={
        "dry_run": "decide and print, remove nothing",
        "older_than": "only objects older than this (30s, 10m, 2h, 1d)",
        "run": "only this run's objects (also those whose owner cannot be checked)",
        "format": "table or json",
    }
)
def cleanup_orphans(
    c: Context, dry_run: bool = False, older_than: str = "", run: str = "", format: str = "table"
) -> None:
    """Remove what dead runs left (labelled containers, networks, processes, reservations); never a live run's."""
    from parallel_isolation.reap.orphans import main

    argv = [
        *(["--dry-run"] if dry_run else []),
        *(["--older-than", older_than] if older_than else []),
        *(["--run", run] if run else []),
        "--format",
        format,
    ]
    code = main(argv)
    if code:
        raise Exit(code=code)
