"""The Docker engine restarted while a docker-backend run holds its broker containers.

Opt-in: restarting the engine stops every container on it, other people's
runs' too.  Set ``ISOLATION_FAULTS_RESTART_ENGINE=1`` to run it (CI's serial
faults step does); it runs after every other fault test.

What must hold: the affected tests fail with a clear error within their own
timeouts (the run does not hang), nothing else of the run is lost (every test's
start and end are in the events, validate reads the run), and the next run on
the restarted engine is green.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from parallel_isolation.containers.engine import engine_problem

from .conftest import RUN_TIMEOUT_S, SUITES, Project, cleanup, codes, validate

OPT_IN = "ISOLATION_FAULTS_RESTART_ENGINE"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.engine_restart,
    pytest.mark.skipif(
        os.environ.get(OPT_IN) != "1",
        reason=f"restarts the shared Docker engine: set {OPT_IN}=1 to run it (CI's faults step does)",
    ),
]
ENGINE_DEADLINE_S = 180  # generous: a loaded machine restarts dockerd slowly


def _wait_for_engine() -> None:
    deadline = time.monotonic() + ENGINE_DEADLINE_S
    while (problem := engine_problem()) is not None:
        assert time.monotonic() < deadline, (
            f"the engine is not back after {ENGINE_DEADLINE_S} s: {problem}"
        )
        time.sleep(1)


def restart_engine() -> str:
    """Restart the local Docker engine the way it runs here; says how."""
    if (
        shutil.which("systemctl")
        and subprocess.run(
            ["systemctl", "is-active", "--quiet", "docker"], check=False, timeout=30
        ).returncode
        == 0
    ):
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=ENGINE_DEADLINE_S)
        _wait_for_engine()
        return "systemctl restart docker"
    pidfile = Path("/var/run/docker.pid")
    if not pidfile.exists():
        pytest.skip("no systemd unit and no /var/run/docker.pid: cannot restart this engine")
    daemon = psutil.Process(int(pidfile.read_text()))
    assert daemon.name() == "dockerd", f"{pidfile} names {daemon.name()}, not dockerd"
    argv, cwd, env = daemon.cmdline(), daemon.cwd(), daemon.environ()
    daemon.terminate()
    daemon.wait(ENGINE_DEADLINE_S)
    # Started through a short-lived intermediate process, so that the new engine is
    # not a child of this test (the run's own leak check would rightly report it).
    detach = "import subprocess, sys; subprocess.Popen(sys.argv[1:], start_new_session=True)"
    with Path("/var/log/dockerd.log").open("ab") as log:
        subprocess.run(
            [sys.executable, "-c", detach, *argv],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=log,
            check=True,
            timeout=60,
        )
    _wait_for_engine()
    return f"SIGTERM to dockerd, then {' '.join(argv)}"


def test_an_engine_restart_fails_the_affected_tests_clearly_and_the_next_run_is_green(
    project_factory: Callable[[Path, str], Project], tmp_path: Path
) -> None:
    if (problem := engine_problem()) is not None:
        pytest.skip(f"no Docker engine: {problem}")
    victim = project_factory(SUITES / "engine_restart", "victim")
    facts, go = tmp_path / "facts.jsonl", tmp_path / "go"
    started = victim.start(
        "-n", "2", "--isolation-backend=docker", env={"FACTS_FILE": str(facts), "GO_FILE": str(go)}
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S / 2
        while not facts.exists() or len(facts.read_text().splitlines()) < 2:
            assert started.poll() is None, started.communicate()[0]
            assert time.monotonic() < deadline, "the tests never got to hold their brokers"
            time.sleep(0.2)
        how = restart_engine()
        print(f"engine restarted: {how}")
    finally:
        go.touch()
    output = started.communicate(timeout=RUN_TIMEOUT_S)[0]
    run_id = json.loads(facts.read_text().splitlines()[0])["run"]
    try:
        assert started.returncode == 1, output
        assert "INTERNALERROR" not in output, output
        assert "2 failed" in output, output
        # Clear errors, whichever the test met first: its client saw the broker go
        # (ConnectionError), its wait ran out (MessageTimeout), or its teardown
        # found the broker container gone ("the worker's broker crashed").
        clear = ("MessageTimeout", "ConnectionError", "Docker engine", "broker crashed")
        assert sum(output.count(marker) for marker in clear) >= 2, output
        finished = [e["test"] for e in victim.events(run_id) if e["kind"] == "test_finished"]
        assert len(finished) == 2, finished
        first = validate(victim, run_id)
        assert first.code in (0, 1), first.output  # read it all: no "could not fully validate"
    finally:
        cleanup(victim, "--run", run_id)

    again = project_factory(SUITES / "realistic", "after-restart")
    run = again.run("-n", "2", "--isolation-backend=docker", "-p", "isolation_record_always")
    assert run.returncode == 0, run.stdout
    result = validate(again, again.run_id())
    assert result.code == 0, result.output
    assert not codes(result, "warning")
