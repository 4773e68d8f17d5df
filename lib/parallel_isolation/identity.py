"""Who is running: run id, worker id and number, and the owning process.

Identity is resolved once per process (in the pytest plugin, or by the caller
outside pytest) and then passed around as a frozen value.  Nothing else in the
library guesses a worker id or defaults to ``master``.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import uuid
from dataclasses import dataclass

import psutil

__all__ = [
    "Identity",
    "Owner",
    "new_run_id",
    "normalize_run_id",
    "owner_is_alive",
    "parse_worker_number",
]

_WORKER_RE = re.compile(r"^gw(\d+)$")
_HEX8_RE = re.compile(r"^[0-9a-f]{8,}$")
MASTER = "master"


def new_run_id() -> str:
    """A fresh 8-hex-digit run id."""
    return uuid.uuid4().hex[:8]


def normalize_run_id(raw: str) -> str:
    """Shorten xdist's ``testrun_uid`` (or any user-given id) to 8 hex chars.

    A hex id keeps its first 8 characters so that the id printed by xdist can
    be recognised; anything else is hashed so the result is always a valid
    name and label component.
    """
    value = raw.strip().lower()
    if not value:
        msg = "run id must not be empty"
        raise ValueError(msg)
    if _HEX8_RE.match(value):
        return value[:8]
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def parse_worker_number(worker_id: str) -> int:
    """``gw7`` -> 7, ``master`` -> 0; anything else is an error.

    A replacement worker gets a new, higher id (``gw12`` under ``-n 12``), so
    the number is not bounded by the worker count.
    """
    if worker_id == MASTER:
        return 0
    match = _WORKER_RE.match(worker_id)
    if match is None:
        msg = f"worker id {worker_id!r} is neither 'master' nor 'gw<N>'"
        raise ValueError(msg)
    return int(match.group(1))


def _process_start_time(pid: int) -> float:
    created: float = psutil.Process(pid).create_time()
    return round(created, 2)


@dataclass(frozen=True)
class Owner:
    """The process that owns a resource: pid plus start time plus host.

    The start time defeats pid reuse: a recycled pid has a different start
    time, so the old owner still counts as dead.
    """

    pid: int
    start_time: float
    host: str

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(pid=pid, start_time=_process_start_time(pid), host=socket.gethostname())

    @classmethod
    def of_pid(cls, pid: int) -> Owner:
        return cls(pid=pid, start_time=_process_start_time(pid), host=socket.gethostname())

    def as_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "start_time": self.start_time, "host": self.host}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Owner:
        pid = data.get("pid")
        start = data.get("start_time")
        host = data.get("host")
        if (
            not isinstance(pid, int)
            or not isinstance(start, int | float)
            or not isinstance(host, str)
        ):
            msg = f"malformed owner record: {data!r}"
            raise ValueError(msg)
        return cls(pid=pid, start_time=float(start), host=host)

    def is_alive(self) -> bool:
        return owner_is_alive(self.pid, self.start_time, self.host)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (started {self.start_time:.2f})"


def owner_is_alive(pid: int, start_time: float, host: str) -> bool:
    """True when ``pid`` runs on this host and was started at ``start_time``.

    An owner on another host cannot be checked from here and is treated as
    alive: we never reap what we cannot prove dead.
    """
    if host != socket.gethostname():
        return True
    try:
        process = psutil.Process(pid)
        actual = round(process.create_time(), 2)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # dead, only not reaped yet (a parent or pid 1 that never waits)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True
    return abs(actual - start_time) < 0.05


@dataclass(frozen=True)
class Identity:
    """Run, worker and owner of this process, derived once."""

    run_id: str
    worker_id: str
    worker_number: int
    owner: Owner

    @classmethod
    def resolve(cls, *, run_id: str, worker_id: str) -> Identity:
        return cls(
            run_id=normalize_run_id(run_id),
            worker_id=worker_id,
            worker_number=parse_worker_number(worker_id),
            owner=Owner.current(),
        )

    @property
    def is_worker(self) -> bool:
        return self.worker_id != MASTER

    def describe(self) -> str:
        return f"run {self.run_id} worker {self.worker_id} ({self.owner.describe()})"
