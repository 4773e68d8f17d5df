"""DockerContainerManager on a real engine: names, labels, networks, conflicts, cleanup, errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, NotFound

from parallel_isolation import ownership
from parallel_isolation.containers.engine import connect_engine
from parallel_isolation.containers.manager import (
    DaemonError,
    DockerContainerManager,
    EngineUnavailableError,
    ImageMissingError,
    NameConflictError,
)
from parallel_isolation.host.ports import PortAllocator, is_port_conflict
from parallel_isolation.identity import Identity

pytestmark = pytest.mark.docker

MOSQUITTO = "parallel-isolation/mosquitto:latest"


def test_names_labels_and_network_per_worker(
    make_worker: Any, docker_client: Any, run_id: str
) -> None:
    worker = make_worker("gw801")
    broker = worker.broker
    name = f"mqtt-broker-gw801-{run_id}"
    assert worker.container_name("mqtt-broker") == name
    assert broker.backend.container_address == (name, 1883)
    assert broker.host == "127.0.0.1"

    container = docker_client.containers.get(name)
    labels = container.labels
    owner = worker.identity.owner
    assert labels[ownership.TOOL_LABEL] == ownership.TOOL_VALUE
    assert labels[ownership.RUN_LABEL] == run_id
    assert labels[ownership.WORKER_LABEL] == "gw801"
    assert labels[ownership.OWNER_PID_LABEL] == str(owner.pid)
    assert labels[ownership.OWNER_START_LABEL] == f"{owner.start_time:.2f}"
    assert labels[ownership.HOST_LABEL] == owner.host
    assert labels[ownership.ROLE_LABEL] == "broker"
    assert not container.attrs["HostConfig"]["Init"]  # mosquitto is PID 1, handles SIGTERM
    bindings = container.attrs["HostConfig"]["PortBindings"]["1883/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(broker.port)}]

    network_name = f"isolation-net-gw801-{run_id}"
    assert worker.network_name() == network_name
    network = docker_client.networks.get(network_name)
    assert network.attrs["Labels"][ownership.WORKER_LABEL] == "gw801"
    assert network.attrs["Labels"][ownership.ROLE_LABEL] == "network"
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [network_name]


def test_user_labels_in_the_reserved_namespace_are_refused(
    make_worker: Any, run_objects: Any, run_id: str
) -> None:
    manager = make_worker("gw802").containers
    with pytest.raises(ValueError, match="reserved prefix"):
        manager.run(
            manager.container_name("sneaky"),
            MOSQUITTO,
            role="task",
            labels={"io.parallel-isolation.run": "someone-else"},
        )
    assert run_objects(run_id)[0] == []
    # Labels outside the namespace are fine and kept.
    ok = manager.run(
        manager.container_name("labelled"), MOSQUITTO, role="task", labels={"team": "qa"}
    )
    assert ok.container.labels["team"] == "qa"


def test_name_conflict_with_a_live_foreign_owner_names_the_owner(
    make_worker: Any,
    foreign_containers: Any,
    other_process: Any,
    events_of: Any,
    run_id: str,
) -> None:
    worker = make_worker("gw803")
    alive = other_process(alive=True)
    twin = Identity(run_id=run_id, worker_id="gw803", worker_number=803, owner=alive)
    name = worker.container_name("mqtt-broker")
    theirs = foreign_containers(name, labels=ownership.labels_for(twin, "broker"))

    with pytest.raises(NameConflictError) as caught:
        _ = worker.broker
    text = str(caught.value)
    assert name in text
    assert f"pid {alive.pid}" in text
    assert "alive" in text
    theirs.reload()
    assert theirs.status == "running"
    [event] = events_of(worker, "name_conflict")
    assert event["action"] == "refused"
    assert f"pid {alive.pid}" in event["owner"]


def test_name_conflict_with_a_dead_owner_is_reclaimed(
    make_worker: Any,
    foreign_containers: Any,
    other_process: Any,
    events_of: Any,
    docker_client: Any,
    run_id: str,
) -> None:
    worker = make_worker("gw804")
    dead = other_process(alive=False)
    twin = Identity(run_id=run_id, worker_id="gw804", worker_number=804, owner=dead)
    name = worker.container_name("mqtt-broker")
    stale = foreign_containers(name, labels=ownership.labels_for(twin, "broker"))

    broker = worker.broker  # starts despite the leftover
    assert broker.backend.container.id != stale.id
    with pytest.raises(NotFound):
        docker_client.containers.get(stale.id)
    [event] = events_of(worker, "name_conflict")
    assert event["action"] == "reclaimed"
    assert f"pid {dead.pid}" in event["owner"]
    removed = [e for e in events_of(worker, "container_removed") if e["id"] == stale.id]
    assert [e["reason"] for e in removed] == ["dead owner"]


def test_an_untracked_leftover_of_this_process_is_replaced(
    make_worker: Any, foreign_containers: Any, events_of: Any, docker_client: Any
) -> None:
    worker = make_worker("gw811")
    name = worker.container_name("mqtt-broker")
    leftover = foreign_containers(name, labels=ownership.labels_for(worker.identity, "broker"))

    broker = worker.broker
    assert broker.backend.container.id != leftover.id
    with pytest.raises(NotFound):
        docker_client.containers.get(leftover.id)
    [event] = events_of(worker, "name_conflict")
    assert event["action"] == "removed own leftover"


def test_name_conflict_with_an_unlabelled_container_is_refused(
    make_worker: Any, foreign_containers: Any, events_of: Any
) -> None:
    worker = make_worker("gw805")
    name = worker.container_name("mqtt-broker")
    stranger = foreign_containers(name)

    with pytest.raises(NameConflictError, match=r"unlabelled: not ours"):
        _ = worker.broker
    stranger.reload()
    assert stranger.status == "running"
    [event] = events_of(worker, "name_conflict")
    assert event == {**event, "owner": "unlabelled: not ours", "action": "refused"}


def test_cleanup_removes_exactly_this_workers_objects(
    make_worker: Any,
    foreign_containers: Any,
    docker_client: Any,
    run_objects: Any,
    events_of: Any,
    run_id: str,
) -> None:
    mine = make_worker("gw806")
    sibling = make_worker("gw807")
    my_broker = mine.broker
    sibling_broker = sibling.broker
    extra = mine.containers.run(mine.containers.unique_name("helper"), MOSQUITTO, role="task")
    # Same name stem as my broker, no labels: a stranger's, must survive.
    lookalike = foreign_containers(f"{mine.container_name('mqtt-broker')}-copy")
    my_ids = {my_broker.backend.container.id, extra.id}
    my_network = docker_client.networks.get(mine.network_name()).id

    assert mine.close() == []

    containers, networks = run_objects(run_id)
    remaining = {c.id for c in containers}
    assert not my_ids & remaining
    assert sibling_broker.backend.container.id in remaining
    assert my_network not in {n.id for n in networks}
    assert sibling.network_name() in {n.name for n in networks}
    lookalike.reload()
    assert lookalike.status == "running"
    assert sibling_broker.is_running()
    # Logs of every removed container were saved before removal.
    logs = mine.artifacts.logs_dir
    assert "mosquitto version" in (logs / f"{mine.container_name('mqtt-broker')}.log").read_text()
    assert {e["id"] for e in events_of(mine, "container_removed")} == my_ids
    assert [e["name"] for e in events_of(mine, "network_removed")] == [mine.network_name()]


def test_port_already_allocated_is_retried_on_another_port(
    make_worker: Any,
    docker_client: Any,
    events_of: Any,
    tmp_path: Path,
    run_id: str,
) -> None:
    worker = make_worker("gw808")
    manager = worker.containers
    blocked = worker.allocator.allocate("blocked by a test container")
    blocker = manager.run(
        manager.unique_name("blocker"), MOSQUITTO, role="task", ports={1883: blocked}
    )
    name = manager.container_name("victim")

    with pytest.raises(APIError) as caught:
        manager.run(name, MOSQUITTO, role="task", ports={1883: blocked})
    assert is_port_conflict(caught.value)
    with pytest.raises(NotFound):
        docker_client.containers.get(name)  # the failed container was removed
    [retry] = events_of(worker, "container_port_retry")
    assert retry["ports"] == [blocked]
    assert "port is already allocated" in retry["error"]
    # It never ran: no log section (the event above is the record of it).
    log = worker.artifacts.log_path(f"{name}.log")
    assert not log.exists() or "=== " not in log.read_text(), log.read_text()

    # Through the allocator: a port taken behind its back is quarantined and the next one used.
    unprobed = PortAllocator(
        Identity.resolve(run_id=run_id, worker_id="master"),
        base=blocked,
        block_size=20,
        state_dir=tmp_path / "state",
        probe_host=None,
    )
    port, started = unprobed.with_port(
        "victim", lambda p: manager.run(name, MOSQUITTO, role="task", ports={1883: p})
    )
    assert port != blocked
    assert started.container.attrs["HostConfig"]["PortBindings"]["1883/tcp"][0]["HostPort"] == str(
        port
    )
    assert blocker.is_running()
    manager.remove(started)
    assert log.read_text().count(f"=== container {name} ") == 1  # the one that ran
    unprobed.release_all()


class RefusesRemovalOnce:
    """An SDK container whose first ``remove`` the engine refuses (a busy daemon)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.refused = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def remove(self, **options: Any) -> None:
        if not self.refused:
            self.refused = True
            raise APIError("removal refused by a busy engine")
        self.real.remove(**options)


def test_a_container_s_logs_are_saved_once_however_often_it_is_removed(
    make_worker: Any, events_of: Any
) -> None:
    worker = make_worker("gw813")
    manager = worker.containers
    managed = manager.run(manager.container_name("once"), MOSQUITTO, role="task")
    managed.container = RefusesRemovalOnce(managed.container)
    with pytest.raises(DaemonError, match="removal refused"):
        manager.remove(managed, grace=0.0)  # the logs are saved, the engine refuses
    assert not managed.removed
    # Retried, from several threads at once (a relaunch and the session end, say).
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: manager.remove(managed, grace=0.0), range(4)))
    assert managed.removed
    assert len(set(codes)) == 1
    text = managed.log_path.read_text()
    assert text.count(f"=== container {managed.name} ") == 1, text
    removed = [e for e in events_of(worker, "container_removed") if e["id"] == managed.id]
    assert len(removed) == 1, removed


def test_engine_missing_or_unreachable_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(
        EngineUnavailableError, match=r"no Docker engine: the socket .* does not exist"
    ):
        connect_engine(timeout=2)
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    with pytest.raises(EngineUnavailableError, match=r"not reachable.*systemctl start docker.*DOCKER_HOST"):
        connect_engine(timeout=2)


def test_missing_image_and_daemon_errors_are_clear(
    make_worker: Any, run_objects: Any, run_id: str
) -> None:
    manager = make_worker("gw809").containers
    with pytest.raises(ImageMissingError, match=r"parallel-isolation images build"):
        manager.run(
            manager.unique_name("ghost"), "parallel-isolation/no-such-image:latest", role="task"
        )
    with pytest.raises(DaemonError, match=r"docker create .* failed \(HTTP \d+\): .+"):
        manager.run(manager.unique_name("bad"), MOSQUITTO, role="task", ports={1883: 70000})
    assert run_objects(run_id)[0] == []


def test_manager_without_engine_use_closes_without_connecting(make_worker: Any) -> None:
    worker = make_worker("gw810")
    manager = DockerContainerManager(worker.identity, artifacts=worker.artifacts)
    assert manager.close() == []


def _sleeper(manager: Any, base: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": manager.container_name(base),
        "image": "parallel-isolation/wildfire-services:latest",
        "role": f"service:{base}",
        "command": ["python3", "-c", "import signal; signal.pause()"],
        **extra,
    }


def test_run_all_starts_a_stack_and_remove_all_takes_it_down(
    make_worker: Any, run_objects: Any, run_id: str
) -> None:
    manager = make_worker("gw811").containers
    stack = manager.run_all({base: _sleeper(manager, base) for base in ("alpha", "beta", "gamma")})
    assert sorted(stack) == ["alpha", "beta", "gamma"]
    assert all(container.is_running() for container in stack.values())
    names = {c.name for c in run_objects(run_id)[0]}
    assert names == {f"{base}-gw811-{run_id}" for base in stack}
    codes = manager.remove_all(stack.values(), grace=0.0)
    assert set(codes) == {container.name for container in stack.values()}
    assert all(container.removed for container in stack.values())
    assert run_objects(run_id)[0] == []
    assert manager.run_all({}) == {}
    assert manager.remove_all([]) == {}


def test_run_all_is_all_or_nothing(make_worker: Any, run_objects: Any, run_id: str) -> None:
    manager = make_worker("gw812").containers
    requests = {base: _sleeper(manager, base) for base in ("ok1", "ok2")}
    requests["bad"] = _sleeper(manager, "bad", image="parallel-isolation/no-such-image:latest")
    with pytest.raises(ImageMissingError, match="no-such-image"):
        manager.run_all(requests)
    assert run_objects(run_id)[0] == []
