"""The reaper's rules, and reaping real processes, reservations and temp dirs of a test-only run."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from parallel_isolation.identity import Identity, Owner
from parallel_isolation.ownership import marker_env
from parallel_isolation.reap.orphans import (
    KEEP,
    REMOVE,
    Criteria,
    cleanup_orphans,
    decide,
    main,
    owned_tempdir,
    parse_duration,
)
from parallel_isolation.validate.discover import find_marked_processes

from ..conftest import make_dead_owner

WAIT_STDIN = [sys.executable, "-c", "import sys; sys.stdin.read()"]
LAUNCHER = """
import os, subprocess, sys
from parallel_isolation.ownership import marker_env
from parallel_isolation.identity import Identity
identity = Identity.resolve(run_id=sys.argv[1], worker_id=sys.argv[2])
child = subprocess.Popen([sys.executable, "-c", sys.argv[4]], env={**os.environ, **marker_env(identity, sys.argv[3])})
print(child.pid, flush=True)
"""
CHILD = "import signal, sys; {ignore}print('ready', flush=True); sys.stdin.read()"


class Orphan:
    """A marked process whose owner (the launcher) exited: what a killed worker leaves."""

    def __init__(self, run_id: str, worker: str, role: str, *, ignore_term: bool = False) -> None:
        ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_term else ""
        read, self._write = os.pipe()
        launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, run_id, worker, role, CHILD.format(ignore=ignore)],
            stdin=read,
            stdout=subprocess.PIPE,
        )
        os.close(read)
        assert launcher.stdout is not None
        self.pid = int(launcher.stdout.readline())
        assert launcher.stdout.readline().strip() == b"ready"
        assert launcher.wait(10) == 0
        launcher.stdout.close()
        self.process = psutil.Process(self.pid)

    def running(self) -> bool:
        return self.process.is_running() and self.process.status() != psutil.STATUS_ZOMBIE

    def end(self) -> None:
        """Let it exit by itself (close its stdin); SIGKILL it by pid if it does not."""
        os.close(self._write)
        with contextlib.suppress(psutil.NoSuchProcess):
            try:
                self.process.wait(5)
            except psutil.TimeoutExpired:
                self.process.kill()


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("90", 90),
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("2w", 1209600),
    ],
)
def test_parse_duration(raw: str, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["", "ten minutes", "10x", "m10", "-5s"])
def test_parse_duration_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(raw)


def _owner(kind: str) -> Owner | None:
    if kind == "dead":
        return make_dead_owner()
    if kind == "alive":
        return Owner.current()
    if kind == "reused":
        current = Owner.current()  # a live pid with another start time
        return Owner(current.pid, current.start_time - 1000, current.host)
    if kind == "remote":
        return Owner(1, 1.0, "some-other-host.example")
    return None


@pytest.mark.parametrize(
    ("owner", "explicit", "age", "older_than", "action", "because"),
    [
        ("dead", False, 10, None, REMOVE, "is gone"),
        ("reused", False, 10, None, REMOVE, "start time differs"),
        ("alive", False, 10, None, KEEP, "is alive"),
        ("alive", True, 10, None, KEEP, "is alive"),
        ("remote", False, 10, None, KEEP, "pass --run"),
        ("remote", True, 10, None, REMOVE, "given explicitly"),
        ("unknown", False, 10, None, KEEP, "incomplete"),
        ("unknown", True, 10, None, REMOVE, "incomplete"),
        ("dead", False, 10, 60, KEEP, "younger"),
        ("dead", False, 120, 60, REMOVE, "is gone"),
    ],
)
def test_decide(
    owner: str, explicit: bool, age: float, older_than: float | None, action: str, because: str
) -> None:
    now = time.time()
    criteria = Criteria(run="r1" if explicit else None, older_than=older_than, now=now)
    got, reason = decide(_owner(owner), run="r1", created=now - age, criteria=criteria)
    assert (got, because in reason) == (action, True), reason


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None and proc.stdin is not None:
            proc.stdin.close()
        proc.wait(10)


def _marked(
    identity: Identity, started: list[subprocess.Popen[bytes]], role: str
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        WAIT_STDIN, stdin=subprocess.PIPE, env={**os.environ, **marker_env(identity, role)}
    )
    started.append(proc)
    return proc


def _reservation(
    state: Path, port: int, owner: Owner, run_id: str, purpose: str = "mqtt-broker"
) -> Path:
    ports = state / "ports"
    ports.mkdir(parents=True, exist_ok=True)
    path = ports / f"{port}.json"
    path.write_text(
        json.dumps(
            {"port": port, "owner": owner.as_dict(), "run_id": run_id, "worker_id": "gw0",
             "purpose": purpose, "created": time.time() - 5}
        )
    )  # fmt: skip
    return path


@pytest.fixture
def orphans() -> Iterator[list[Orphan]]:
    made: list[Orphan] = []
    yield made
    for orphan in made:
        orphan.end()


def test_reaps_dead_owners_and_keeps_the_living(
    run_id: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]], orphans: list[Orphan]
) -> None:
    state = tmp_path / "state"
    dead = Identity(run_id, "gw1", 1, make_dead_owner())
    alive = Identity(run_id, "gw2", 2, Owner.current())
    orphan = Orphan(run_id, "gw1", "broker")
    orphans.append(orphan)
    kept = _marked(alive, processes, "service:fire_consensus")
    unmarked = subprocess.Popen(WAIT_STDIN, stdin=subprocess.PIPE)
    processes.append(unmarked)
    dead_port = _reservation(state, 29901, dead.owner, run_id)
    live_port = _reservation(state, 29902, alive.owner, run_id)
    dead_dir = owned_tempdir(dead, "compose files", state)
    live_dir = owned_tempdir(alive, "scratch", state)
    artifacts = tmp_path / "runs"
    (artifacts / run_id).mkdir(parents=True)

    dry = cleanup_orphans(dry_run=True, run=run_id, state_dir=state, include_docker=False)
    assert {d.kind for d in dry.decisions if d.action == REMOVE} == {
        "process",
        "reservation",
        "tempdir",
    }
    assert orphan.running(), "dry run removes nothing"
    assert dead_port.exists()
    assert dead_dir.exists()

    report = cleanup_orphans(
        run=run_id, state_dir=state, artifacts_root=artifacts, include_docker=False, grace=5
    )
    assert report.errors == []
    assert not orphan.running()
    assert not dead_port.exists()
    assert not dead_dir.exists()
    assert kept.poll() is None
    assert live_port.exists()
    assert live_dir.exists()
    assert unmarked.poll() is None
    removed = {(d.kind, d.worker, d.result) for d in report.removed}
    assert removed == {
        ("process", "gw1", "removed (SIGTERM)"),
        ("reservation", "gw0", "removed"),
        ("tempdir", "gw1", "removed"),
    }
    reasons = {d.kind: d.reason for d in report.kept}
    assert "is alive" in reasons["process"]
    lines = (artifacts / run_id / "cleanup.jsonl").read_text().splitlines()
    assert {json.loads(line)["kind"] for line in lines} == {"process", "reservation", "tempdir"}
    (live_dir / ".isolation-owner.json").unlink()
    live_dir.rmdir()


def test_processes_ignoring_sigterm_are_killed(run_id: str, orphans: list[Orphan]) -> None:
    stubborn = Orphan(run_id, "gw3", "broker", ignore_term=True)
    orphans.append(stubborn)
    report = cleanup_orphans(
        run=run_id, include_docker=False, grace=0.5, state_dir=Path("/nonexistent")
    )
    assert not stubborn.running()
    assert [d.result for d in report.decisions] == ["removed (SIGKILL)"], report.decisions


def test_marked_processes_exclude_ourselves(run_id: str) -> None:
    assert all(p.pid != os.getpid() for p in find_marked_processes())


def test_cli(run_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    dead = make_dead_owner()
    _reservation(state, 29903, dead, run_id)
    assert main(["--dry-run", "--run", run_id, "--state-dir", str(state), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["result"] for d in data["decisions"] if d["kind"] == "reservation"] == [
        "dry run: would remove"
    ]
    assert main(["--run", run_id, "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "removed" in out
    assert "29903" in out
    assert main(["--older-than", "soon"]) == 2
    assert socket.gethostname()  # owner host used in the records above


def test_no_engine_means_the_sweep_could_not_look(
    run_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    state = tmp_path / "state"
    assert main(["--dry-run", "--run", run_id, "--state-dir", str(state)]) == 2
    captured = capsys.readouterr()
    assert "could not: containers, networks and volumes were not checked" in captured.err
    assert "no Docker engine" in captured.err
    assert "--no-docker" in captured.err
    assert "could not" not in captured.out, "diagnostics on stderr, results on stdout"
    assert main(["--dry-run", "--run", run_id, "--state-dir", str(state), "--no-docker"]) == 0
    capsys.readouterr()
    assert main(["--run", run_id, "--state-dir", str(state), "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["exit_code"] == 2


def test_table_is_literal_and_plain_in_a_pipe(
    run_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    purpose = "[red]mqtt[/red] :100: broker"
    _reservation(state, 29904, make_dead_owner(), run_id, purpose=purpose)
    argv = ["--dry-run", "--run", run_id, "--state-dir", str(state), "--no-docker"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"port 29904 ({purpose})" in out, "user data is printed as it is"
    assert "\x1b[" not in out, "no colours when stdout is not a terminal"
    assert not any(ch in out for ch in "┃━│─"), "no box drawing in a pipe"
    row = next(line for line in out.splitlines() if "29904" in line)
    assert row.startswith("would remove")
