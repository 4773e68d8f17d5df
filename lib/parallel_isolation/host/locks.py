"""Exclusive locks for single resources (a GPIO bank, one accelerator) across workers.

A resource is a name; holding it means holding an OS file lock on
``<state>/locks/<name>.lock``.  The kernel drops the lock when the holder
dies, so a killed worker never leaves a resource locked.  Beside the lock an
owner record says who holds it, so a waiter that gives up can say whom it
waited for.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import filelock

from parallel_isolation.artifacts import EventLog
from parallel_isolation.identity import Identity
from parallel_isolation.settings import default_state_dir

__all__ = ["ResourceBusyError", "ResourceLocks"]

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")


class ResourceBusyError(TimeoutError):
    """The resource stayed held by someone else until the deadline."""


class ResourceLocks:
    """Hands out exclusive resources for one worker."""

    def __init__(
        self,
        identity: Identity,
        *,
        state_dir: Path | None = None,
        events: EventLog | None = None,
    ) -> None:
        self.identity = identity
        self.dir = (state_dir or default_state_dir()) / "locks"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events = events

    def _paths(self, name: str) -> tuple[Path, Path]:
        if not _NAME_RE.match(name):
            msg = f"resource name {name!r} must be 1-64 characters of [a-zA-Z0-9_.-], starting alphanumeric"
            raise ValueError(msg)
        return self.dir / f"{name}.lock", self.dir / f"{name}.owner.json"

    def holder(self, name: str) -> str:
        """Who holds ``name`` right now, as far as its owner record says."""
        _, owner_path = self._paths(name)
        try:
            data = json.loads(owner_path.read_text())
        except (OSError, ValueError):
            return "unknown"
        return (
            f"run {data.get('run')} worker {data.get('worker')} pid {data.get('pid')} "
            f"for {data.get('test', '?')}"
        )

    @contextlib.contextmanager
    def hold(self, name: str, *, timeout: float = 120.0, holder: str = "") -> Iterator[float]:
        """Hold ``name`` exclusively; yields how long the wait was (seconds)."""
        lock_path, owner_path = self._paths(name)
        lock = filelock.FileLock(str(lock_path), thread_local=False, is_singleton=False)
        asked = time.monotonic()
        try:
            lock.acquire(timeout=timeout, poll_interval=0.01)
        except filelock.Timeout:
            msg = f"resource {name!r} still held after {timeout:.1f} s by {self.holder(name)}"
            self._emit("lock_timeout", resource=name, waited_s=timeout)
            raise ResourceBusyError(msg) from None
        waited = time.monotonic() - asked
        acquired = time.time()
        try:
            owner_path.write_text(
                json.dumps(
                    {
                        "run": self.identity.run_id,
                        "worker": self.identity.worker_id,
                        "pid": self.identity.owner.pid,
                        "test": holder,
                        "since": acquired,
                    }
                )
            )
            self._emit("lock_acquired", resource=name, waited_s=round(waited, 4), test=holder)
            yield waited
        finally:
            with contextlib.suppress(FileNotFoundError):
                owner_path.unlink()
            lock.release()
            self._emit(
                "lock_released", resource=name, held_s=round(time.time() - acquired, 4), test=holder
            )

    def _emit(self, kind: str, **fields: object) -> None:
        if self.events is not None:
            self.events.emit(kind, **fields)
