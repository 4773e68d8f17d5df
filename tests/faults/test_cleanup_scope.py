"""cleanup-orphans removes a dead owner's objects and leaves everything else alone."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parallel_isolation import naming, ownership
from parallel_isolation.containers.engine import engine_problem
from parallel_isolation.identity import Identity, Owner
from parallel_isolation.ownership import marker_env
from parallel_isolation.reap.orphans import owned_tempdir
from parallel_isolation.session.context import WorkerContext

from .conftest import Project, cleanup
from .test_foreign_occupants import ForeignMosquitto
from .test_killed_worker import _image

# Fault tests run one at a time (`-p no:xdist`; an xdist_group would do once loadgroup
# works again on pytest 9, pytest-xdist#1386): a fault test's deliberate leaks must not
# reach another fault test's run through a reused port.
pytestmark = [pytest.mark.slow, pytest.mark.docker]


def _dead_owner() -> Owner:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    owner = Owner.of_pid(proc.pid)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(10)
    return owner


@pytest.fixture
def docker_client() -> Iterator[Any]:
    problem = engine_problem()
    if problem:
        pytest.skip(f"no Docker engine: {problem}")
    import docker

    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def created(docker_client: Any) -> Iterator[list[str]]:
    """Ids of the containers this test created; each removed by id at the end."""
    ids: list[str] = []
    yield ids
    import docker

    for ident in ids:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_container(ident, force=True)


def test_leaves_alone_what_is_not_a_dead_owners(
    docker_client: Any,
    created: list[str],
    isolation_worker: WorkerContext,
    tmp_path: Path,
) -> None:
    image = _image()
    dead_run = uuid.uuid4().hex[:8]
    dead = Identity(dead_run, "gw5", 5, _dead_owner())
    live = isolation_worker.identity

    # An unlabelled container named exactly like one of ours.
    lookalike = docker_client.api.create_container(
        image, ["true"], name=naming.resource_name("mqtt-broker", dead)
    )
    created.append(lookalike["Id"])
    # The live run's container (our own worker is its owner), reservation, temp dir, process.
    live_container = docker_client.api.create_container(
        image, ["true"], name=naming.resource_name(f"live-{uuid.uuid4().hex[:6]}", live),
        labels=ownership.labels_for(live, "service"),
    )  # fmt: skip
    created.append(live_container["Id"])
    live_port = isolation_worker.allocator.allocate("live reservation")
    live_dir = owned_tempdir(live, "live scratch", isolation_worker.allocator.state_dir)
    live_proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        env={**os.environ, **marker_env(live, "service:live")},
    )
    # Another user's mosquitto: no labels, no markers.
    foreign_port = isolation_worker.allocator.allocate("foreign mosquitto")
    foreign = ForeignMosquitto(foreign_port, tmp_path / "foreign")
    # The control: a dead owner's labelled container, which must go.
    orphan = docker_client.api.create_container(
        image, ["true"], name=naming.resource_name("orphan", dead), labels=ownership.labels_for(dead, "service"),
    )  # fmt: skip
    created.append(orphan["Id"])
    project = Project(tmp_path)
    try:
        # The default sweep (dry run: in a test we remove only what we made).
        dry = subprocess.run(
            [sys.executable, "-m", "parallel_isolation.reap", "--dry-run", "--format", "json"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        import json

        decisions = json.loads(dry.stdout)["decisions"]
        by_name = {d["name"].split(" (")[0]: d for d in decisions}
        assert naming.resource_name("orphan", dead) in by_name
        assert by_name[naming.resource_name("orphan", dead)]["action"] == "remove"
        assert naming.resource_name("mqtt-broker", dead) not in by_name, (
            "unlabelled: never considered"
        )
        mine = [d for d in decisions if d["run"] == live.run_id and d["worker"] == live.worker_id]
        assert mine, "the live run's objects are listed"
        assert all(d["action"] == "keep" and "is alive" in d["reason"] for d in mine)
        assert not [d for d in decisions if f"pid {foreign.proc.pid} " in d["name"]]

        # For real, naming the live run explicitly: still nothing of it is touched.
        live_sweep = cleanup(project, "--run", live.run_id)
        assert live_sweep.code == 0
        assert not [
            d
            for d in live_sweep.data["decisions"]
            if d["result"].startswith("removed") and d["worker"] == live.worker_id
        ]
        # For real, the dead run: exactly its container goes.
        dead_sweep = cleanup(project, "--run", dead_run)
        removed = [d for d in dead_sweep.data["decisions"] if d["result"].startswith("removed")]
        assert [(d["kind"], d["run"]) for d in removed] == [("container", dead_run)]

        import docker

        with pytest.raises(docker.errors.NotFound):
            docker_client.api.inspect_container(orphan["Id"])
        docker_client.api.inspect_container(lookalike["Id"])
        docker_client.api.inspect_container(live_container["Id"])
        assert live_proc.poll() is None
        assert foreign.running()
        assert (isolation_worker.allocator.ports_dir / f"{live_port}.json").exists()
        assert live_dir.exists()
    finally:
        foreign.stop()
        assert live_proc.stdin is not None
        live_proc.stdin.close()
        live_proc.wait(10)
        isolation_worker.allocator.release(live_port)
        isolation_worker.allocator.release(foreign_port)
        for path in sorted(live_dir.rglob("*"), reverse=True):
            path.unlink()
        live_dir.rmdir()
