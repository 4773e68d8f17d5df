"""A worker stopped with SIGSTOP mid-test: the run names the hung test, kills the worker, goes on.

What must hold: with ``--isolation-test-timeout`` the controller reports which
test hung, in which phase and that the worker was stopped, kills the worker
(xdist fails that test as a crash and replaces the worker), the other tests
pass, and what the stopped worker held is gone: its broker and service
processes die with it, its port reservation goes with cleanup-orphans.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from .conftest import SUITES, Project, cleanup, findings, validate

pytestmark = pytest.mark.slow

# Generous: a test of this suite takes seconds when well, even on a loaded machine.
TIMEOUT_S = 45


def test_a_stopped_worker_is_reported_killed_and_reaped(
    project_factory: Callable[[Path], Project], tmp_path: Path
) -> None:
    project = project_factory(SUITES / "stopped_worker")
    facts_file = tmp_path / "facts.jsonl"
    run = project.run(
        "-n", "2", f"--isolation-test-timeout={TIMEOUT_S}", env={"FACTS_FILE": str(facts_file)}
    )
    run_id = project.run_id()
    [facts] = [json.loads(line) for line in facts_file.read_text().splitlines()]
    worker, pid = facts["worker"], facts["pid"]
    try:
        assert run.returncode == 1, run.stdout + run.stderr
        said = re.search(
            rf"worker {worker} \(pid {pid}, stopped \(SIGSTOP\?\)\) has been in the call of "
            rf"test_stopped_suite\.py::test_stops_itself for (\d+) s, over the "
            rf"--isolation-test-timeout of {TIMEOUT_S} s: killed it",
            run.stderr,
        )
        assert said, run.stderr
        assert f"worker '{worker}' crashed while running" in run.stdout, run.stdout
        assert "1 failed, 8 passed" in run.stdout, run.stdout
        for what in ("pid", "broker_pid", "service_pid"):
            assert facts[what] is not None
            assert not _alive(facts[what]), f"the stopped worker's {what} {facts[what]} lives on"
        [hung] = [e for e in project.events(run_id) if e["kind"] == "test_hung"]
        assert (hung["worker"], hung["test"], hung["phase"]) == (
            worker,
            "test_stopped_suite.py::test_stops_itself",
            "call",
        )

        result = validate(project, run_id)
        died = findings(result, "worker-died")
        assert [(f["worker"], f["test"]) for f in died] == [
            (worker, "test_stopped_suite.py::test_stops_itself")
        ], result.output
        reaped = cleanup(project, "--run", run_id)
        assert reaped.code == 0, reaped.output
        left = cleanup(project, "--run", run_id, "--dry-run")
        assert left.data["decisions"] == [], left.output
    finally:
        cleanup(project, "--run", run_id)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
