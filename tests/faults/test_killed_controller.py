"""The controller (the main pytest process) SIGKILLed mid-run, while every worker holds things.

What must hold: every worker, broker, service process, container and network
of that run is gone within 10 s by itself (workers die with their controller,
brokers and services with their worker) or is removed by cleanup-orphans
(what carries a label or marker naming the dead controller); a run going on
at the same time is untouched and green.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from parallel_isolation import ownership
from parallel_isolation.containers.engine import engine_problem

from .conftest import RUN_TIMEOUT_S, SUITES, Project, cleanup, codes, validate

pytestmark = pytest.mark.slow

WORKERS = 4
SETTLE_S = 10.0  # what must be gone by itself is given this long


def _facts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _docker_objects(run_id: str) -> list[str]:
    import docker

    client = docker.from_env()
    try:
        labels = {"label": f"{ownership.RUN_LABEL}={run_id}"}
        return [f"container {c.name}" for c in client.containers.list(all=True, filters=labels)] + [
            f"network {n.name}" for n in client.networks.list(filters=labels)
        ]
    finally:
        client.close()


@pytest.mark.parametrize(
    "backend",
    ["process", pytest.param("docker", marks=pytest.mark.docker)],
)
def test_a_killed_controller_leaves_nothing_and_spares_a_concurrent_run(
    project_factory: Callable[[Path, str], Project], tmp_path: Path, backend: str
) -> None:
    if backend == "docker" and (problem := engine_problem()):
        pytest.skip(f"no Docker engine: {problem}")
    victim = project_factory(SUITES / "held", "victim")
    bystander = project_factory(SUITES / "realistic", "bystander")
    facts_file, go = tmp_path / "facts.jsonl", tmp_path / "go"
    env = {"FACTS_FILE": str(facts_file), "GO_FILE": str(go)}
    controller = victim.start(
        "-n", str(WORKERS), "--isolation-fork-workers", f"--isolation-backend={backend}", env=env
    )
    other = bystander.start("-n", "2", "-p", "isolation_record_always")
    processes: list[psutil.Process] = []
    run_id = ""
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S / 2
        while len(_facts(facts_file)) < WORKERS:
            assert controller.poll() is None, controller.communicate()[0]
            assert time.monotonic() < deadline, "the workers never all held their things"
            time.sleep(0.2)
        facts = _facts(facts_file)
        run_id = facts[0]["run"]
        processes = psutil.Process(controller.pid).children(recursive=True)
        held = {f[k] for f in facts for k in ("pid", "broker_pid", "service_pid") if f[k]}
        assert held <= {p.pid for p in processes}, "a worker's things are not the run's processes"

        controller.kill()  # SIGKILL, by pid: our own child
        controller.wait(60)
        killed_at = time.monotonic()
        while any(_alive(p) for p in processes) and time.monotonic() - killed_at < SETTLE_S:
            time.sleep(0.2)
        stayed = [f"{p.pid} {p.name()}" for p in processes if _alive(p)]
        print(f"after {SETTLE_S:.0f} s, still there of the killed run: {stayed or 'nothing'}")

        reaped = cleanup(victim, "--run", run_id)
        assert reaped.code == 0, reaped.output
        assert not [p.pid for p in processes if _alive(p)], "cleanup-orphans left processes"
        left = cleanup(victim, "--run", run_id, "--dry-run")
        assert left.data["decisions"] == [], left.output
        if backend == "docker":
            assert _docker_objects(run_id) == []
    finally:
        go.touch()
        for process in processes:  # whatever the assertions said: ours, by pid
            with contextlib.suppress(psutil.NoSuchProcess):
                if _alive(process):
                    process.kill()
        if run_id:
            cleanup(victim, "--run", run_id)

    output = other.communicate(timeout=RUN_TIMEOUT_S)[0]
    assert other.returncode == 0, output
    result = validate(bystander, bystander.run_id())
    assert result.code == 0, result.output
    assert not codes(result, "warning")
