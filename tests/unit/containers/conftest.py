"""Fixtures of the Docker backend tests: synthetic workers on a real engine.

Each test builds its own :class:`WorkerContext` objects with worker ids far
above any real ``-n`` (``gw8xx``) and a run id of its own, so the objects it
creates can be told apart from everything else on the engine by their labels.
Everything a test creates is removed by the worker's own cleanup (by labels)
or, for the foreign objects a test fakes, by id.  Nothing is ever removed by
name pattern.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import NotFound

from parallel_isolation.artifacts import read_events
from parallel_isolation.identity import Identity, Owner
from parallel_isolation.ownership import RUN_LABEL
from parallel_isolation.session.context import WorkerContext
from parallel_isolation.settings import Settings

SERVICES_IMAGE = "parallel-isolation/wildfire-services:latest"
MOSQUITTO_IMAGE = "parallel-isolation/mosquitto:latest"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    client = docker.from_env(timeout=60)
    yield client
    client.close()


@pytest.fixture
def run_id() -> str:
    """A run id of this test alone."""
    return uuid.uuid4().hex[:8]


WorkerFactory = Callable[..., WorkerContext]


@pytest.fixture
def make_worker(tmp_path: Path, run_id: str) -> Iterator[WorkerFactory]:
    """``make_worker("gw801")``: a docker-backend worker of this test's run, closed at teardown."""
    created: list[WorkerContext] = []

    def make(worker_id: str, *, run: str | None = None) -> WorkerContext:
        identity = Identity.resolve(run_id=run or run_id, worker_id=worker_id)
        settings = Settings(backend="docker", artifacts=str(tmp_path / "runs"))
        worker = WorkerContext(identity, settings)
        created.append(worker)
        return worker

    yield make
    problems = [problem for worker in created for problem in worker.close()]
    assert not problems, problems


@pytest.fixture
def foreign_containers(docker_client: Any) -> Iterator[Callable[..., Any]]:
    """Create containers the toolkit did not (or a faked owner did); removed by id."""
    made: list[Any] = []

    def create(name: str, *, labels: dict[str, str] | None = None, start: bool = True) -> Any:
        container = docker_client.containers.create(
            SERVICES_IMAGE,
            ["python3", "-c", "import signal; signal.pause()"],
            name=name,
            labels=labels or {},
            init=True,
            detach=True,
        )
        made.append(container)
        if start:
            container.start()
        return container

    yield create
    for container in made:
        with contextlib.suppress(NotFound):
            container.remove(force=True)


@pytest.fixture
def other_process() -> Iterator[Callable[..., Owner]]:
    """``other_process(alive=True)``: the Owner of a live child, or of one that has exited."""
    children: list[subprocess.Popen[bytes]] = []

    def spawn(*, alive: bool = True) -> Owner:
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
        )
        children.append(child)
        owner = Owner.of_pid(child.pid)
        if not alive:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(10)
        return owner

    yield spawn
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def _events_of(worker: WorkerContext, kind: str | None = None) -> list[dict[str, Any]]:
    events = read_events(worker.artifacts.events_path)
    return [e for e in events if kind is None or e["kind"] == kind]


@pytest.fixture
def events_of() -> Callable[..., list[dict[str, Any]]]:
    """``events_of(worker, kind=None)``: the worker's event log entries."""
    return _events_of


@pytest.fixture
def run_objects(docker_client: Any) -> Callable[[str], tuple[list[Any], list[Any]]]:
    """``run_objects(run_id)``: (containers, networks) labelled with that run."""

    def find(run: str) -> tuple[list[Any], list[Any]]:
        filters = {"label": f"{RUN_LABEL}={run}"}
        return (
            list(docker_client.containers.list(all=True, filters=filters)),
            list(docker_client.networks.list(filters=filters)),
        )

    return find
