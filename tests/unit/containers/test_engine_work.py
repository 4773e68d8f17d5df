"""What spares the engine work: one log stream per container, create-first names, one image check.

Each behaviour here replaced engine requests (polls, lookups, hashing in
every worker); the tests prove the behaviour the requests used to provide is
still there: readiness lines, liveness, saved logs, name-conflict rules for
networks, and a project image check that still happens once per run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from parallel_isolation import ownership
from parallel_isolation.artifacts import IMAGES_CHECKED_FILE
from parallel_isolation.containers.manager import NameConflictError
from parallel_isolation.identity import Identity
from parallel_isolation.images import build as images_build

pytestmark = pytest.mark.docker

SERVICES = "parallel-isolation/wildfire-services:latest"
MOSQUITTO = "parallel-isolation/mosquitto:latest"
TWO_LINES = "print('first', flush=True); import time; time.sleep(1.5); print('second', flush=True)"


def test_a_containers_output_and_exit_come_from_its_stream(make_worker: Any) -> None:
    worker = make_worker("gw840")
    manager = worker.containers
    box = manager.run(
        manager.unique_name("talker"), SERVICES, role="task", command=["python3", "-c", TWO_LINES]
    )
    follower = box.follower
    assert follower is not None
    assert follower.wait_for("first", 30), f"no first line; output so far: {box.logs()!r}"

    inspected: list[int] = []
    reload = box.container.reload
    box.container.reload = lambda: (inspected.append(1), reload())[1]
    if not follower.ended:
        assert box.seems_running()
        assert not inspected, "seems_running asked the engine while the stream was open"

    assert follower.wait_ended(30), "the stream did not end when the container exited"
    assert not box.seems_running()
    assert not box.is_running()
    assert not inspected, "is_running asked the engine after the stream ended with the exit"
    assert box.logs().splitlines() == ["first", "second"]
    assert box.log_tail(1) == "second\n"
    assert box.stop() == 0
    saved = box.log_path.read_text()
    assert "exit 0" in saved
    assert saved.rstrip().splitlines()[-2:] == ["first", "second"]


def test_the_broker_waits_for_mosquittos_running_line_on_the_stream(
    make_worker: Any, events_of: Any
) -> None:
    worker = make_worker("gw841")
    broker = worker.broker
    container = broker.backend.container
    assert container is not None
    assert container.follower is not None
    assert " running" in container.follower.text()
    assert broker.ready_seconds is not None

    broker.stop()  # mosquitto runs as PID 1 (no init): SIGTERM still ends it cleanly
    [removed] = [e for e in events_of(worker, "container_removed") if e["id"] == container.id]
    assert removed["exit_code"] == 0
    assert "terminating" in container.log_path.read_text()


def test_a_network_name_held_by_a_dead_owner_is_reclaimed(
    make_worker: Any, other_process: Any, events_of: Any, docker_client: Any, run_id: str
) -> None:
    worker = make_worker("gw842")
    dead = other_process(alive=False)
    twin = Identity(run_id=run_id, worker_id="gw842", worker_number=842, owner=dead)
    name = worker.network_name()
    stale = docker_client.networks.create(name, labels=ownership.labels_for(twin, "network"))
    try:
        assert worker.containers.ensure_network() == name
        current = docker_client.networks.get(name)
        assert current.id != stale.id
        assert current.attrs["Labels"][ownership.OWNER_PID_LABEL] == str(worker.identity.owner.pid)
        [conflict] = events_of(worker, "name_conflict")
        assert conflict["action"] == "reclaimed"
        removed = [e for e in events_of(worker, "network_removed") if e["id"] == stale.id]
        assert [e["reason"] for e in removed] == ["dead owner"]
    finally:
        for network in docker_client.networks.list(ids=[stale.id]):
            network.remove()


def test_a_network_name_held_by_a_live_owner_is_refused(
    make_worker: Any, other_process: Any, events_of: Any, docker_client: Any, run_id: str
) -> None:
    worker = make_worker("gw843")
    alive = other_process(alive=True)
    twin = Identity(run_id=run_id, worker_id="gw843", worker_number=843, owner=alive)
    name = worker.network_name()
    theirs = docker_client.networks.create(name, labels=ownership.labels_for(twin, "network"))
    try:
        with pytest.raises(NameConflictError, match=f"pid {alive.pid}"):
            worker.containers.ensure_network()
        assert docker_client.networks.get(theirs.id).name == name
        [conflict] = events_of(worker, "name_conflict")
        assert conflict["action"] == "refused"
    finally:
        theirs.remove()


def test_the_project_images_are_checked_by_one_worker_per_run(
    make_worker: Any, events_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = make_worker("gw844"), make_worker("gw845")
    first.containers.ensure_images([MOSQUITTO])
    [checked] = events_of(first, "images_checked")
    assert "reused" not in checked
    marker = first.artifacts.images_checked_path
    assert marker.name == IMAGES_CHECKED_FILE
    assert MOSQUITTO in marker.read_text()

    def no_second_check(**_: Any) -> Any:
        raise AssertionError("the second worker of the run checked the images again")

    monkeypatch.setattr(images_build, "images_status", no_second_check)
    second.containers.ensure_images([MOSQUITTO, SERVICES])
    [reused] = events_of(second, "images_checked")
    assert reused["reused"] == IMAGES_CHECKED_FILE


def test_workers_starting_together_check_the_images_once(
    make_worker: Any, events_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = [make_worker(f"gw85{n}") for n in range(4)]
    calls: list[int] = []
    real = images_build.images_status

    def counted(**kwargs: Any) -> Any:
        calls.append(1)
        return real(**kwargs)

    monkeypatch.setattr(images_build, "images_status", counted)
    with ThreadPoolExecutor(len(workers)) as pool:
        list(pool.map(lambda w: w.containers.ensure_images([MOSQUITTO]), workers))
    assert len(calls) == 1, f"{len(calls)} workers of one run checked the images"
    reused = [e for w in workers for e in events_of(w, "images_checked") if e.get("reused")]
    assert len(reused) == len(workers) - 1
