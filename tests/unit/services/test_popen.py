"""``parallel_test_context.popen``: a test's own process with the toolkit's guarantees."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from parallel_isolation.artifacts import read_events
from parallel_isolation.identity import Identity
from parallel_isolation.reap.orphans import cleanup_orphans
from parallel_isolation.services.process import ProcessStartError
from parallel_isolation.session.context import ParallelTestContext, WorkerContext
from parallel_isolation.settings import Settings
from parallel_isolation.validate.discover import find_marked_processes

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ignoring TERM', flush=True); time.sleep(600)",
]


@pytest.fixture
def context(tmp_path: Path) -> Iterator[ParallelTestContext]:
    identity = Identity.resolve(run_id=uuid.uuid4().hex[:8], worker_id="gw870")
    settings = Settings(backend="process", artifacts=str(tmp_path / "runs"))
    worker = WorkerContext(identity, settings)
    ctx = ParallelTestContext(worker, "tests/test_x.py::test_popen")
    yield ctx
    ctx.close()
    worker.close()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s (machine slow?)")
        time.sleep(0.05)


def _environ(pid: int) -> dict[str, str]:
    return psutil.Process(pid).environ()


def test_marked_logged_and_stopped_at_teardown(context: ParallelTestContext) -> None:
    process = context.popen(SLEEPER, name="sleeper", env={"EXTRA": "1"})
    assert process.pid is not None
    process.wait_for_log("up", timeout=30)
    env = _environ(process.pid)
    assert env["ISOLATION_RUN_ID"] == context.run_id
    assert env["ISOLATION_ROLE"] == "process:sleeper"
    assert env["EXTRA"] == "1"
    assert process.log_path.parent == context.logs_dir
    assert context.close() == []
    assert process.returncode == -15, "stopped with SIGTERM at teardown"
    kinds = [(e["kind"], e.get("name")) for e in read_events(context.worker.artifacts.events_path)]
    assert ("process_started", "sleeper") in kinds
    assert ("process_stopped", "sleeper") in kinds


# Says "first", then "second" once the file named by its argument exists.
GATED = [
    sys.executable,
    "-c",
    "import os, sys, time\n"
    "print('first', flush=True)\n"
    "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
    "print('second', flush=True)\n"
    "time.sleep(600)\n",
]


def test_wait_for_log_returns_once_the_text_is_there(
    context: ParallelTestContext, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    process = context.popen([*GATED, str(gate)], name="gated")
    assert process.wait_for_log("first", timeout=30).splitlines() == ["first"]
    with pytest.raises(TimeoutError) as missing:
        process.wait_for_log("second", timeout=0.2)  # the child waits for the gate
    message = str(missing.value)
    assert message.startswith(
        f"{process.describe()}: 'second' is not in its log (not within 0.2 s)"
    )
    assert message.endswith("its log ends:\nfirst\n")
    gate.touch()
    assert process.wait_for_log("second", timeout=30).splitlines() == ["first", "second"]


def test_wait_for_log_gives_up_when_the_process_ended_without_the_text(
    context: ParallelTestContext,
) -> None:
    process = context.popen([sys.executable, "-c", "print('bye', flush=True)"], name="brief")
    with pytest.raises(
        TimeoutError, match=r"'hello' is not in its log \(and it is no longer running\)"
    ) as ended:
        process.wait_for_log("hello", timeout=600)  # returns when the process ends
    assert str(ended.value).endswith("its log ends:\nbye\n")
    assert process.returncode == 0


def test_grace_then_kill(context: ParallelTestContext) -> None:
    process = context.popen(STUBBORN, name="stubborn", grace=0.5)
    process.wait_for_log("ignoring TERM", timeout=30)
    context.close()
    assert process.returncode == -9, "SIGKILLed after the grace period"


def test_markers_cannot_be_overridden(context: ParallelTestContext) -> None:
    process = context.popen(SLEEPER, env={"ISOLATION_RUN_ID": "ffffffff"})
    assert process.pid is not None
    assert _environ(process.pid)["ISOLATION_RUN_ID"] == context.run_id


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["no-such-program-xyz"], "'no-such-program-xyz' is not on PATH", id="path"),
        pytest.param(["./missing.sh"], "does not exist", id="relative"),
        pytest.param([], "argv is empty", id="empty"),
    ],
)
def test_bad_command_is_a_clear_error(
    context: ParallelTestContext, argv: list[str], message: str
) -> None:
    with pytest.raises(ProcessStartError, match=message):
        context.popen(argv)
    assert not list(context.logs_dir.glob("*.log")), "nothing was started"


DIES_WITH_OWNER = """
import os, signal, sys, threading, uuid
from parallel_isolation.identity import Identity
from parallel_isolation.session.context import ParallelTestContext, WorkerContext
from parallel_isolation.settings import Settings

identity = Identity.resolve(run_id=sys.argv[1], worker_id="gw871")
worker = WorkerContext(identity, Settings(backend="process", artifacts=sys.argv[2]))
context = ParallelTestContext(worker, "t.py::t")
sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
tied = context.popen(sleeper, name="tied")
# Started from another thread, a process cannot be tied to its owner's death:
# it stays behind, and the validator and the reaper must find it.
left = []
thread = threading.Thread(target=lambda: left.append(context.popen(sleeper, name="left")))
thread.start()
thread.join()
print(tied.pid, left[0].pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_dies_with_its_worker_or_is_found_and_reaped(tmp_path: Path) -> None:
    run_id = uuid.uuid4().hex[:8]
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DIES_WITH_OWNER), run_id, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    tied, left = (int(pid) for pid in done.stdout.split())
    _wait_for(lambda: not psutil.pid_exists(tied) or _zombie(tied), "the tied process's end")
    try:
        found = {p.pid: p.role for p in find_marked_processes(run_id)}
        assert found == {left: "process:left"}
        report = cleanup_orphans(run=run_id, artifacts_root=tmp_path / "runs", grace=1.0)
        _wait_for(lambda: not psutil.pid_exists(left) or _zombie(left), "the reaper's kill")
        assert report.exit_code() == 0
    finally:
        if psutil.pid_exists(left) and not _zombie(left):
            os.kill(left, 9)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
