"""The controller's hang watch (``--isolation-test-timeout``): a worker stuck in one test.

A worker that hangs (a deadlock, a test waiting forever, a process stopped
with SIGSTOP) cannot say so itself.  The controller hears from each worker
after every phase of every test (the reports xdist forwards).  When a worker
that still has work has been silent for longer than the limit, the watch

* names the test it is in, from the worker's own ``test_started`` event (its
  events file, which also gives the worker's pid), and the phase (setup,
  call or teardown) from the reports;
* looks at the worker process: running, sleeping or stopped;
* says so on standard error and records a ``test_hung`` event in the
  worker's events file;
* SIGKILLs the worker (only a process of this run: a descendant of the
  controller).  xdist then reports the test as failed by a crashed worker and
  starts a replacement; what the dead worker held is left to
  ``cleanup-orphans``, which ``invoke validate`` points at.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parallel_isolation.artifacts import EVENTS_FILE, append_record

__all__ = ["HangWatch", "Hung"]


@dataclass
class _Worker:
    """What the controller last heard from one worker."""

    worker_id: str
    pid: int | None
    since: float
    test: str | None = None
    phase: str = "setup"
    offset: int = 0
    started: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Hung:
    """A worker the watch found stuck, and what it did about it."""

    worker_id: str
    pid: int | None
    test: str
    phase: str
    seconds: float
    state: str
    action: str

    def message(self, limit: float) -> str:
        return (
            f"parallel-isolation: worker {self.worker_id} (pid {self.pid}, {self.state}) has been "
            f"in the {self.phase} of {self.test} for {self.seconds:.0f} s, over the "
            f"--isolation-test-timeout of {limit:g} s: {self.action}"
        )


class HangWatch:
    """A daemon thread in the controller; fed by the plugin's xdist hooks."""

    def __init__(self, *, timeout: float, run_dir: Path, busy: Any) -> None:
        """``busy(worker_id) -> bool`` says whether xdist still has work on that worker."""
        self.timeout = timeout
        self.run_dir = run_dir
        self.busy = busy
        self.found: list[Hung] = []
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="parallel-isolation-hang-watch", daemon=True
        )

    # -- fed by the hooks (controller's main thread) -----------------------------------

    def node_up(self, worker_id: str, pid: int | None) -> None:
        with self._lock:
            self._workers[worker_id] = _Worker(worker_id, pid, time.monotonic())
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def node_down(self, worker_id: str) -> None:
        with self._lock:
            self._workers.pop(worker_id, None)

    def report(self, worker_id: str, nodeid: str, when: str) -> None:
        """A worker finished ``when`` (setup/call/teardown) of ``nodeid``."""
        with self._lock:
            worker = self._workers.get(worker_id)
            if worker is None:
                return
            worker.since = time.monotonic()
            if when == "teardown":
                worker.test, worker.phase = None, "setup"
            else:
                worker.test, worker.phase = nodeid, "call" if when == "setup" else "teardown"

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    # -- the thread ---------------------------------------------------------------------

    def _watch(self) -> None:
        period = max(0.2, min(5.0, self.timeout / 5))
        while not self._stop.wait(period):
            try:
                self._check(time.monotonic())
            except Exception as error:  # noqa: BLE001 - the watch outlives one bad look
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write(f"parallel-isolation: hang watch: {error}\n")

    def _check(self, now: float) -> None:
        with self._lock:
            silent = [w for w in self._workers.values() if now - w.since > self.timeout]
        for worker in silent:
            if not self.busy(worker.worker_id):
                continue
            hung = self._handle(worker, now)
            self.found.append(hung)
            with self._lock:
                self._workers.pop(worker.worker_id, None)
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write("\n" + hung.message(self.timeout) + "\n")
                sys.stderr.flush()

    def _handle(self, worker: _Worker, now: float) -> Hung:
        current = self._current_test(worker)  # also learns the worker's pid from its events
        test = worker.test or current or "a test (none recorded as started)"
        state = _state(worker.pid)
        action = "left alone (not a process of this run)"
        if worker.pid is not None and _is_descendant(worker.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            action = "killed it; its resources are left to cleanup-orphans"
        hung = Hung(
            worker.worker_id, worker.pid, test, worker.phase, now - worker.since, state, action
        )
        with contextlib.suppress(OSError):
            append_record(
                self.run_dir / worker.worker_id / EVENTS_FILE,
                {
                    "ts": round(time.time(), 4),
                    "kind": "test_hung",
                    "worker": worker.worker_id,
                    "test": test,
                    "phase": worker.phase,
                    "seconds": round(hung.seconds, 1),
                    "pid": worker.pid,
                    "state": state,
                    "action": action,
                },
            )
        return hung

    def _current_test(self, worker: _Worker) -> str | None:
        """The last test the worker recorded as started and not finished (its events file)."""
        path = self.run_dir / worker.worker_id / EVENTS_FILE
        try:
            with path.open("rb") as handle:
                handle.seek(worker.offset)
                data = handle.read()
        except OSError:
            return None
        complete = data[: data.rfind(b"\n") + 1]
        worker.offset += len(complete)
        for line in complete.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("kind") == "worker_started" and worker.pid is None:
                worker.pid = int(event["pid"]) if isinstance(event.get("pid"), int) else None
            elif event.get("kind") == "test_started":
                worker.started[str(event.get("test"))] = float(event.get("ts", 0))
            elif event.get("kind") == "test_finished":
                worker.started.pop(str(event.get("test")), None)
        return max(worker.started, key=worker.started.__getitem__, default=None)


def _state(pid: int | None) -> str:
    """The process's state in words (from ``/proc``): stopped, sleeping, running, gone."""
    if pid is None:
        return "pid unknown"
    try:
        import psutil

        status = psutil.Process(pid).status()
    except Exception:  # noqa: BLE001 - gone, or not ours to look at
        return "gone"
    return {"stopped": "stopped (SIGSTOP?)", "tracing-stop": "stopped by a tracer"}.get(
        str(status), str(status)
    )


def _is_descendant(pid: int) -> bool:
    """True when ``pid`` is a descendant of this process (an xdist worker of this run)."""
    try:
        import psutil

        return any(parent.pid == os.getpid() for parent in psutil.Process(pid).parents())
    except Exception:  # noqa: BLE001 - gone: nothing to kill
        return False
