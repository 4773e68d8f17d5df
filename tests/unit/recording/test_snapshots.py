"""Snapshots, child tracking and leak detection, against real threads, processes and sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from parallel_isolation.host.procfs import ChildTracker, listening_ports
from parallel_isolation.ownership import MARKER_ENV, SESSION_THREAD_PREFIX
from parallel_isolation.recording.leaks import LeakTracker
from parallel_isolation.recording.snapshots import take_snapshot

WAIT_STDIN = [sys.executable, "-c", "import sys; sys.stdin.read()"]


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; each is ended by closing its stdin, then reaped."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(10)


def spawn(
    started: list[subprocess.Popen[bytes]], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(WAIT_STDIN, stdin=subprocess.PIPE, env=env)
    started.append(proc)
    return proc


def end(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(10)


def test_child_tracker_sees_new_children_incrementally(
    children: list[subprocess.Popen[bytes]],
) -> None:
    tracker = ChildTracker()
    full_scans = tracker.full_scans
    proc = spawn(children)
    assert proc.pid in tracker.alive()
    assert tracker.full_scans == full_scans, "found through the pid range, no full scan"
    end(proc)
    assert proc.pid not in tracker.alive()


def test_child_tracker_full_scan_finds_grandchildren(
    children: list[subprocess.Popen[bytes]],
) -> None:
    script = (
        "import subprocess, sys; "
        "child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], stdin=subprocess.PIPE); "
        "print(child.pid, flush=True); sys.stdin.read(); child.stdin.close(); child.wait()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    children.append(proc)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    assert {proc.pid, grandchild} <= set(ChildTracker().alive()), "full scan at creation"


def test_snapshot_fields(children: list[subprocess.Popen[bytes]]) -> None:
    tracker = ChildTracker()
    proc = spawn(children)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        snap = take_snapshot("session_start", children=tracker, full=True)
        assert port in (snap.listening or ())
        assert port in listening_ports([os.getpid()])
    assert snap.pid == os.getpid()
    assert snap.rss > 10_000_000
    assert snap.threads >= 1
    assert snap.fds > 3
    assert snap.sockets >= 1
    assert proc.pid in snap.children
    assert snap.thread_names is not None
    assert "MainThread" in snap.thread_names
    record = snap.as_record()
    assert record["phase"] == "session_start"
    assert isinstance(record["children"], list)


def test_thread_left_running_is_a_leak_but_a_stopping_one_is_not() -> None:
    leaks = LeakTracker(ChildTracker(), grace=0.3)
    stop_forgotten = threading.Event()
    stop_now = threading.Event()
    mark = leaks.begin()
    forgotten = threading.Thread(
        target=stop_forgotten.wait, name="fire_consensus-scheduler", daemon=True
    )
    stopping = threading.Thread(target=stop_now.wait, name="gpio_trigger-scheduler", daemon=True)
    forgotten.start()
    stopping.start()
    session = threading.Thread(
        target=stop_forgotten.wait, name=f"{SESSION_THREAD_PREFIX}-x", daemon=True
    )
    session.start()
    stop_now.set()  # teardown asked it to stop; it finishes within the grace
    try:
        found = leaks.end(mark)
        assert [(leak.what, leak.name) for leak in found] == [
            ("thread", "fire_consensus-scheduler")
        ]
        assert found[0].detail["daemon"] is True
    finally:
        stop_forgotten.set()
        for thread in (forgotten, stopping, session):
            thread.join(5)


def test_adopted_threads_are_not_leaks() -> None:
    leaks = LeakTracker(ChildTracker(), grace=0.05)
    stop = threading.Event()
    fixture_mark = leaks.begin()
    thread = threading.Thread(target=stop.wait, name="session-fixture-thread", daemon=True)
    thread.start()
    leaks.adopt(fixture_mark)
    try:
        assert leaks.end(leaks.begin()) == []
    finally:
        stop.set()
        thread.join(5)


def test_child_process_leak_and_broker_exemption(children: list[subprocess.Popen[bytes]]) -> None:
    leaks = LeakTracker(ChildTracker(), grace=0.2)
    mark = leaks.begin()
    leaked = spawn(children)
    broker = spawn(
        children, env={**os.environ, MARKER_ENV: "parallel-isolation", "ISOLATION_ROLE": "broker"}
    )
    finished = spawn(children)
    end(finished)
    found = leaks.end(mark)
    assert [(leak.what, leak.detail["pid"]) for leak in found] == [("process", leaked.pid)]
    assert broker.pid not in {leak.detail["pid"] for leak in found}


def test_process_exiting_within_the_grace_is_not_a_leak(
    children: list[subprocess.Popen[bytes]],
) -> None:
    leaks = LeakTracker(ChildTracker(), grace=5.0)
    mark = leaks.begin()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        assert leaks.end(mark) == []
    finally:
        proc.wait(10)


def test_listening_socket_leak() -> None:
    leaks = LeakTracker(ChildTracker(), grace=0.0)
    mark = leaks.begin()
    listener = socket.socket()
    client = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client.connect(listener.getsockname())
        found = leaks.end(mark)
        assert [leak.detail.get("port") for leak in found] == [listener.getsockname()[1]]
        assert found[0].what == "listening_socket"
    finally:
        client.close()
        listener.close()


CHURN_SCRIPT = """
import json, subprocess, sys
from parallel_isolation.host.procfs import ChildTracker

child = subprocess.Popen(["/bin/sleep", "60"]) if sys.argv[1] == "a-child" else None
tracker = ChildTracker()
tracker.alive()
examined = tracker.examined
for _ in range(200):
    subprocess.run(["/bin/true"], check=True)
alive = sorted(tracker.alive())
print(json.dumps({"alive": alive, "child": child and child.pid,
                  "examined": tracker.examined - examined}))
if child is not None:
    child.kill()
    child.wait()
"""


@pytest.mark.parametrize("mode", ["no-child", "a-child"])
def test_processes_gone_before_the_next_look_are_never_examined(mode: str) -> None:
    """The per-test cost does not grow with the pids the host allocated meanwhile.

    A Docker run starts and ends hundreds of processes per test (runtimes,
    shims, health checks).  The tracker reads the ``stat`` of the processes
    started since its last look that still exist, not of every pid allocated;
    with no child at all it looks at nothing.  Run in a fresh process, whose
    children are only the script's.  (The time it takes is a benchmark
    figure: ``nox -s bench-recorder``.)
    """
    done = subprocess.run(
        [sys.executable, "-c", CHURN_SCRIPT, mode],
        capture_output=True,
        text=True,
        timeout=120,  # 200 short processes; slow on a loaded host
        check=True,
    )
    facts = json.loads(done.stdout)
    if mode == "no-child":
        assert facts["alive"] == []
        assert facts["examined"] == 0, "no child, no descendant: nothing to examine"
    else:
        assert facts["alive"] == [facts["child"]]
        # Other processes of the host that started meanwhile and still run are
        # examined; the 200 that came and went are not.
        assert facts["examined"] < 100, facts


def test_child_tracker_finds_a_grandchild_started_between_looks(
    children: list[subprocess.Popen[bytes]],
) -> None:
    tracker = ChildTracker()
    full_scans = tracker.full_scans
    script = (
        "import subprocess, sys; "
        "child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], "
        "stdin=subprocess.PIPE); "
        "print(child.pid, flush=True); sys.stdin.read(); child.stdin.close(); child.wait()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    children.append(proc)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    assert {proc.pid, grandchild} <= set(tracker.alive())
    assert tracker.full_scans == full_scans


def test_a_snapshot_reuses_the_leak_trackers_look(children: list[subprocess.Popen[bytes]]) -> None:
    tracker = ChildTracker()
    leaks = LeakTracker(tracker, grace=0.0)
    others = set(tracker.alive())  # e.g. this worker's broker
    proc = spawn(children)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        mark = leaks.begin()
        snap = take_snapshot("before", test="t", children=tracker, look=mark)
        assert set(snap.children) - others == {proc.pid}
        assert set(snap.children) == set(mark.children)
        assert snap.sockets == len(mark.sockets) >= 1
        assert snap.fds == mark.fds > snap.sockets
        assert snap.py_threads == len(mark.threads)
        assert leaks.end(mark) == []
        after = leaks.after
        assert after is not None
        again = take_snapshot("after", test="t", children=tracker, look=after)
        assert set(again.children) - others == {proc.pid}
