"""nox sessions: the entry points for humans and CI."""

from __future__ import annotations

import shutil
import subprocess

import nox

nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]

DEFAULT_WORKERS = "12"
# The integration files do not use hypothesis; its plugin costs each xdist
# worker about half a second of CPU at start-up, which on 2 cores and 12
# workers is seconds of wall time.
LEAN = ["-p", "no:hypothesispytest"]
# Tests of one module-scoped stack (xdist_group) stay on one worker.
DIST = ["--dist", "loadgroup"]


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


def _has_worker_count(args: list[str]) -> bool:
    return any(
        a in {"-n", "--numprocesses"} or a.startswith(("-n", "--numprocesses=")) for a in args
    )


def _with_workers(session: nox.Session, default: str) -> list[str]:
    args = list(session.posargs)
    return args if _has_worker_count(args) else ["-n", default, *args]


def _images_if_engine(session: nox.Session) -> None:
    """Build the Docker backend's images when an engine answers (a no-op when current)."""
    docker = shutil.which("docker")
    if docker is None:
        session.log("no docker CLI: Docker-backed tests will skip (or fail with --require-docker)")
        return
    answer = subprocess.run([docker, "info"], capture_output=True, timeout=60, check=False)
    if answer.returncode != 0:
        session.log("the Docker engine does not answer (start it with `invoke docker-up`)")
        return
    session.run("python", "-m", "parallel_isolation.images", "build")


@nox.session
def tests(session: nox.Session) -> None:
    """The full test suite (unit + integration): the README's test command."""
    _install(session)
    _images_if_engine(session)
    session.run("pytest", *_with_workers(session, "4"))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy (strict) over the library and the services."""
    _install(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "lib", "services")
    session.run("mypy")


@nox.session(name="integration-parallel")
def integration_parallel(session: nox.Session) -> None:
    """The integration files under xdist, -n 12 unless -n is given after --."""
    _install(session)
    session.run("pytest", "tests/integration", *LEAN, *DIST, *_with_workers(session, DEFAULT_WORKERS))


@nox.session(name="bench-core", default=False)
def bench_core(session: nox.Session) -> None:
    """Core figures: broker start-to-ready, fixture overhead, 12 brokers at once."""
    _install(session)
    session.run("python", "benchmarks/bench_core.py", *session.posargs)


@nox.session(default=False)
def integration(session: nox.Session) -> None:
    """The same integration files serially: the baseline."""
    _install(session)
    session.run("pytest", "tests/integration", *LEAN, "-p", "no:xdist", *session.posargs)


@nox.session(name="integration-legacy", default=False)
def integration_legacy(session: nox.Session) -> None:
    """The legacy (parallel-unsafe) files, serially, on their fixed ports and names."""
    _install(session)
    _images_if_engine(session)
    session.run("pytest", "tests/legacy", *LEAN, "-p", "no:xdist", *session.posargs)


@nox.session(name="bench-docker", default=False)
def bench_docker(session: nox.Session) -> None:
    """Docker backend figures: broker container start-to-ready, one stack, 12 stacks at once."""
    _install(session)
    _images_if_engine(session)
    session.run("python", "benchmarks/bench_docker.py", *session.posargs)
