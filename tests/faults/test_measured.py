"""At scale: validate on a 12-worker run, per-test overhead recorded, reaping 50 orphaned containers.

These tests assert behaviour only.  How long it takes (validate <= 5 s,
recorder overhead <= 5 ms a test, reaping <= 30 s) are benchmark figures:
``nox -s bench-tools`` measures them, prints them with their targets and the
load average, and records them in JSON.  The figures seen here go into the
JUnit XML as properties, for the record, and are never compared to a budget.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from parallel_isolation import naming, ownership
from parallel_isolation.containers.engine import engine_problem
from parallel_isolation.identity import Identity

from .conftest import SUITES, Project, cleanup, validate
from .test_cleanup_scope import _dead_owner
from .test_killed_worker import _image

# Fault tests run one at a time (`-p no:xdist`; an xdist_group would do once loadgroup
# works again on pytest 9, pytest-xdist#1386): a fault test's deliberate leaks must not
# reach another fault test's run through a reused port.
pytestmark = pytest.mark.slow

CONTAINERS = 50


def test_validate_a_12_worker_run_and_snapshot_overhead(
    project_factory: Callable[[Path], Project],
) -> None:
    project = project_factory(SUITES / "realistic")
    run = project.run("-n", "12")
    assert run.returncode == 0, run.stdout
    run_id = project.run_id()
    started = time.perf_counter()
    result = validate(project, run_id)
    elapsed = time.perf_counter() - started
    assert result.code == 0, result.output
    assert len(result.data["sections"]["run"]["workers"]) == 12
    finished = [e for e in project.events(run_id) if e["kind"] == "test_finished"]
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed is not None, run.stdout
    collected = int(passed.group(1))
    assert len(finished) == collected, "a test's end was not recorded"
    overhead = [e["overhead_ms"] for e in finished]
    assert all(isinstance(cost, float | int) and cost >= 0 for cost in overhead), overhead
    median = statistics.median(overhead)
    print(
        f"for the record (budgets: nox -s bench-tools): validate {elapsed:.2f} s; recorder "
        f"overhead median {median:.2f} ms over {len(overhead)} tests; load {os.getloadavg()[0]:.1f}"
    )


@pytest.mark.docker
def test_reap_50_orphaned_containers(
    tmp_path: Path,
) -> None:
    problem = engine_problem()
    if problem:
        pytest.skip(f"no Docker engine: {problem}")
    import docker

    image = _image()
    client = docker.from_env()
    run_id = uuid.uuid4().hex[:8]
    ids: list[str] = []
    try:
        owner = _dead_owner()
        for index in range(CONTAINERS):
            dead = Identity(run_id, f"gw{index}", index, owner)
            made: dict[str, Any] = client.api.create_container(
                image,
                ["true"],
                name=naming.resource_name("orphan", dead),
                labels=ownership.labels_for(dead, "service"),
            )
            ids.append(made["Id"])
        started = time.perf_counter()
        result = cleanup(Project(tmp_path), "--run", run_id)
        elapsed = time.perf_counter() - started
        removed = [d for d in result.data["decisions"] if d["result"].startswith("removed")]
        print(f"for the record: cleanup-orphans on {CONTAINERS} containers: {elapsed:.2f} s")
        assert result.code == 0, result.output
        assert len(removed) == CONTAINERS
        left = client.api.containers(all=True, filters={"label": f"{ownership.RUN_LABEL}={run_id}"})
        assert left == []
    finally:
        for ident in ids:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(ident, force=True)
        client.close()
