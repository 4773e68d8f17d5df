"""A host-wide bound on concurrent heavy Docker API calls.

Many workers bringing up their stacks at once would pile up in the daemon;
heavy calls (container create and start, network create and remove) hold one
of ``count`` slots, each a kernel file lock under the state directory, so they
queue instead.  The kernel drops a dead holder's lock.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import filelock

from parallel_isolation.artifacts import EventLog, make_private_dir
from parallel_isolation.containers.engine import ContainerError, poll_pause

__all__ = ["API_SLOTS_ENV", "DEFAULT_API_SLOTS", "ApiSlots", "api_slot_count"]

API_SLOTS_ENV = "ISOLATION_DOCKER_API_SLOTS"
DEFAULT_API_SLOTS = 8


class ApiSlots:
    """A host-wide counting semaphore of ``count`` file locks.

    Heavy engine calls (container create and start, network create and
    remove) hold one slot, so many workers bringing up their stacks at once
    queue instead of piling up in the daemon; stopping does not hold one (it
    is mostly waiting).  The kernel drops a dead holder's lock.  ``count`` 0
    disables the limit.
    """

    def __init__(
        self,
        directory: Path,
        count: int,
        *,
        timeout: float = 120.0,
        events: EventLog | None = None,
        first: int = 0,
    ) -> None:
        if count < 0:
            msg = f"API slot count must be >= 0, got {count}"
            raise ValueError(msg)
        self.directory = directory
        self.count = count
        self.timeout = timeout
        self.events = events
        self.first = first
        self._locks: dict[int, filelock.FileLock] = {}
        if count:
            make_private_dir(directory)

    @classmethod
    def from_env(
        cls, state_dir: Path, *, events: EventLog | None = None, first: int = 0
    ) -> ApiSlots:
        return cls(state_dir / "docker-api", api_slot_count(), events=events, first=first)

    @contextlib.contextmanager
    def hold(self, what: str) -> Iterator[float]:
        """Hold one slot while the block runs; yields the seconds waited."""
        if self.count == 0:
            yield 0.0
            return
        started = time.monotonic()
        deadline = started + self.timeout
        order = [(self.first + i) % self.count for i in range(self.count)]
        problem = ""
        pause = 0.005
        while True:
            if not self.directory.is_dir():  # removed under us (someone's cleanup): again
                with contextlib.suppress(OSError):
                    make_private_dir(self.directory)
            for index in order:
                lock = self._slot(index)
                try:
                    lock.acquire(timeout=0)
                except filelock.Timeout:
                    continue
                except OSError as error:  # a slot that cannot be opened is skipped, not fatal
                    problem = f"; slot-{index}.lock: {error}"
                    continue
                waited = time.monotonic() - started
                if waited > 1.0 and self.events is not None:
                    self.events.emit("docker_api_wait", what=what, waited_s=round(waited, 3))
                try:
                    yield waited
                finally:
                    lock.release()
                return
            if time.monotonic() > deadline:
                msg = (
                    f"{what}: all {self.count} Docker API slots in {self.directory} stayed busy "
                    f"for {self.timeout:.0f} s; raise {API_SLOTS_ENV} or look for a stuck engine"
                    f"{problem}"
                )
                raise ContainerError(msg)
            # Back off while all are busy (a slot is held for a create or a start, often
            # seconds under load): polling every 5 ms cost the waiting workers CPU.
            poll_pause(pause)
            pause = min(pause * 1.5, 0.05)

    def _slot(self, index: int) -> filelock.FileLock:
        lock = self._locks.get(index)
        if lock is None:
            lock = filelock.FileLock(str(self.directory / f"slot-{index}.lock"))
            self._locks[index] = lock
        return lock


def api_slot_count() -> int:
    """The slot count from ``ISOLATION_DOCKER_API_SLOTS`` (default 8); ValueError naming it."""
    raw = os.environ.get(API_SLOTS_ENV, "").strip()
    if not raw:
        return DEFAULT_API_SLOTS
    try:
        count = int(raw)
    except ValueError:
        count = -1
    if count < 0:
        msg = f"environment variable {API_SLOTS_ENV} must be an integer >= 0, got {raw!r}"
        raise ValueError(msg)
    return count
