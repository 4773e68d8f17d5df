"""A worker SIGKILLed mid-run under -n 4: the run finishes, validate sees the leftovers, the reaper removes them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from parallel_isolation.containers.engine import engine_problem
from parallel_isolation.host.ports import read_reservations

from .conftest import SUITES, Project, cleanup, codes, findings, html_report, validate

# Fault tests run one at a time (`-p no:xdist`; an xdist_group would do once loadgroup
# works again on pytest 9, pytest-xdist#1386): a fault test's deliberate leaks must not
# reach another fault test's run through a reused port.
pytestmark = [pytest.mark.slow, pytest.mark.docker]

IMAGES = ("parallel-isolation/base:bookworm", "parallel-isolation/mosquitto:latest")


def _image() -> str:
    import docker

    client = docker.from_env()
    try:
        for name in IMAGES:
            try:
                client.images.get(name)
                return name
            except docker.errors.ImageNotFound:
                continue
    finally:
        client.close()
    pytest.skip(f"none of the images {IMAGES} is built (run `invoke images`)")


def _facts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "start", [[], ["--isolation-fork-workers"]], ids=["popen-workers", "forked-workers"]
)
def test_killed_worker_is_replaced_reported_and_reaped(
    project_factory: Callable[[Path], Project], tmp_path: Path, start: list[str]
) -> None:
    problem = engine_problem()
    if problem:
        pytest.skip(f"no Docker engine: {problem}")
    image = _image()
    project = project_factory(SUITES / "killed_worker")
    facts_file = tmp_path / "facts.jsonl"
    run = project.run("-n", "4", *start, env={"FACTS_FILE": str(facts_file), "VICTIM_IMAGE": image})
    run_id = project.run_id()
    facts = _facts(facts_file)
    victim = next(f for f in facts if f.get("victim"))
    try:
        # The run finished: the victim's test failed with the crash, the rest passed.
        assert run.returncode == 1, run.stdout
        assert "crashed" in run.stdout
        assert "1 failed, 36 passed" in run.stdout, run.stdout
        dead = victim["worker"]
        replacements = {f["worker"] for f in facts} - {"gw0", "gw1", "gw2", "gw3"}
        assert replacements, f"no replacement worker ran tests:\n{run.stdout}"
        live_ports: dict[str, set[int]] = {}
        for fact in facts:
            live_ports.setdefault(fact["worker"], set()).add(fact["broker_port"])
        assert all(len(ports) == 1 for ports in live_ports.values())
        ports = [next(iter(p)) for p in live_ports.values()]
        assert len(ports) == len(set(ports)), f"broker ports collide: {live_ports}"
        assert victim["port"] not in ports
        names = {f["worker"]: f["container_name"] for f in facts}
        assert len(set(names.values())) == len(names), names
        for replacement in replacements:
            assert names[replacement].endswith(f"-{replacement}-{run_id}")

        # validate: the dead worker's container, helper process and reservations remain.
        first = validate(project, run_id)
        html_report(project, run_id)
        assert first.code == 1, first.output
        leftover = findings(first, "docker.leftover-container")
        assert [f["worker"] for f in leftover] == [dead]
        processes = findings(first, "resources.marked-process")
        assert {f["worker"] for f in processes} == {dead}
        assert any(f"pid {victim['helper_pid']}," in f["message"] for f in processes)
        # (The dead worker's mosquitto shows up here too while mosquitto, started
        # as root, drops privileges and so loses its parent-death signal.)
        reserved = {f["message"].split()[1] for f in findings(first, "resources.port-reservation")}
        for port in (victim["port"], victim["broker_port"]):
            # Reported, unless another run's allocator reclaimed the stale reservation meanwhile.
            assert str(port) in reserved or _reserved_by_other_run(port, run_id)
        died = findings(first, "worker-died")
        assert [(f["worker"], f["test"], f["severity"]) for f in died] == [
            (dead, "test_killed_worker_suite.py::test_victim", "warning")
        ]

        # cleanup-orphans removes exactly those.
        reaped = cleanup(project, "--run", run_id)
        assert reaped.code == 0, reaped.output
        removed = {
            (d["kind"], d["worker"])
            for d in reaped.data["decisions"]
            if d["result"].startswith("removed")
        }
        assert ("container", dead) in removed
        assert ("process", dead) in removed
        assert {k for k, _ in removed} <= {"container", "process", "reservation"}
        assert all(w == dead for _, w in removed), removed

        second = validate(project, run_id)
        assert second.code == 0, second.output
        assert [f["severity"] for f in findings(second, "worker-died")] == ["info"]
        assert "docker.leftover-container" not in codes(second)
    finally:
        _remove_exactly(victim)
        cleanup(project, "--run", run_id)  # whatever else this run left (idempotent)


def _reserved_by_other_run(port: int, run_id: str) -> bool:
    found = [r for r in read_reservations() if r.port == port]
    return not found or all(r.run_id != run_id for r in found)


def _remove_exactly(victim: dict[str, Any]) -> None:
    """Whatever the assertions said, remove the victim's container and helper by id/pid."""
    import contextlib

    import docker
    import psutil

    client = docker.from_env()
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(victim["container_id"], force=True)
    client.close()
    with contextlib.suppress(psutil.NoSuchProcess):
        helper = psutil.Process(victim["helper_pid"])
        if "time.sleep(3600)" in " ".join(helper.cmdline()):
            helper.kill()
