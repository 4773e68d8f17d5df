"""Host-wide port allocation: the one source of truth for every port we use.

Strategy (see ARCHITECTURE.md, "Ports"): worker ``N`` owns the block
``base + N * block_size`` .. ``+ block_size - 1``.  A port is handed out only
after

1. a reservation file ``<state>/ports/<port>.json`` was created atomically
   (``O_CREAT | O_EXCL``) holding the owner (pid, start time, host, run,
   worker, purpose), and
2. a bind probe on the probe host (127.0.0.1) succeeded.

A reservation whose owner is dead is reclaimed under a lock; a live owner's
reservation is never touched.  A released port cools down before anyone gets
it again (``release_cooldown``, 30 s): a client that a test forgot, still
reconnecting to the port, must not land in the next run's broker.  When the block is used up the other blocks are
tried; when every block is used up the error names the occupants seen.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import filelock
import psutil

from parallel_isolation.artifacts import EventLog
from parallel_isolation.identity import Identity, Owner
from parallel_isolation.settings import DEFAULT_BASE, DEFAULT_BLOCK_SIZE, default_state_dir

__all__ = [
    "PortAllocator",
    "PortExhaustedError",
    "Reservation",
    "is_port_conflict",
    "read_reservations",
]

MAX_PORT = 65535
# An empty or half-written reservation younger than this is someone's write in
# progress; older, it is debris of a process killed between create and write.
_TORN_GRACE_S = 10.0
DEFAULT_RELEASE_COOLDOWN = 30.0
T = TypeVar("T")


class PortExhaustedError(RuntimeError):
    """No port could be reserved in any block."""


@dataclass(frozen=True)
class Reservation:
    """A reservation file's content."""

    port: int
    owner: Owner
    run_id: str
    worker_id: str
    purpose: str
    created: float
    path: Path = field(compare=False)
    released: float | None = None

    def describe(self) -> str:
        if self.released is not None:
            return f"port {self.port} released {time.time() - self.released:.0f} s ago by run {self.run_id} (cooling down)"
        return (
            f"port {self.port} reserved for {self.purpose!r} by run {self.run_id} "
            f"worker {self.worker_id} ({self.owner.describe()})"
        )

    @classmethod
    def load(cls, path: Path) -> Reservation | None:
        """Parse a reservation file; None when it is empty or torn."""
        try:
            data = json.loads(path.read_text())
            return cls(
                port=int(data["port"]),
                owner=Owner.from_dict(data["owner"]),
                run_id=str(data["run_id"]),
                worker_id=str(data["worker_id"]),
                purpose=str(data["purpose"]),
                created=float(data["created"]),
                path=path,
                released=float(data["released"]) if data.get("released") is not None else None,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def read_reservations(
    state_dir: Path | None = None, *, include_released: bool = False
) -> list[Reservation]:
    """Every readable reservation on this host (for validation and reaping).

    Released ports that are only cooling down are not held by anyone and are
    left out unless ``include_released``.
    """
    ports_dir = (state_dir or default_state_dir()) / "ports"
    found = []
    for path in sorted(ports_dir.glob("*.json")):
        reservation = Reservation.load(path)
        if reservation is not None and (include_released or reservation.released is None):
            found.append(reservation)
    return found


def is_port_conflict(error: BaseException) -> bool:
    """True for the transient "someone else has this port" errors we retry.

    Covers the OS's ``Address already in use`` and Docker's
    ``port is already allocated`` / ``address already in use`` messages.
    """
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return True
    text = str(error).lower()
    return "port is already allocated" in text or "address already in use" in text


def _occupant_of(port: int) -> str | None:
    """Best effort: which process listens on ``port`` (needs privileges)."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    return "an unknown process"
                try:
                    name = psutil.Process(conn.pid).name()
                except psutil.Error:
                    name = "?"
                return f"{name} (pid {conn.pid})"
    except psutil.Error:
        return None
    return None


class PortAllocator:
    """Reserves ports for one worker; see the module docstring for the rules."""

    def __init__(
        self,
        identity: Identity,
        *,
        base: int = DEFAULT_BASE,
        block_size: int = DEFAULT_BLOCK_SIZE,
        state_dir: Path | None = None,
        events: EventLog | None = None,
        probe_host: str | None = "127.0.0.1",
        release_cooldown: float = DEFAULT_RELEASE_COOLDOWN,
    ) -> None:
        if block_size < 1:
            msg = f"port block size must be >= 1, got {block_size}"
            raise ValueError(msg)
        if not 1024 <= base <= MAX_PORT - block_size + 1:
            msg = f"port base must be within 1024..{MAX_PORT - block_size + 1}, got {base}"
            raise ValueError(msg)
        self.identity = identity
        self.base = base
        self.block_size = block_size
        self.state_dir = state_dir or default_state_dir()
        self.ports_dir = self.state_dir / "ports"
        self.ports_dir.mkdir(parents=True, exist_ok=True)
        self.events = events
        self.probe_host = probe_host
        self.release_cooldown = release_cooldown
        self._lock = filelock.FileLock(str(self.state_dir / "ports.lock"))
        self._held: dict[int, str] = {}
        self._quarantine: set[int] = set()

    # -- public API -----------------------------------------------------

    @property
    def block_start(self) -> int:
        return self.base + self.identity.worker_number * self.block_size

    @property
    def block_count(self) -> int:
        return (MAX_PORT - self.base + 1) // self.block_size

    @property
    def held(self) -> dict[int, str]:
        """Ports this allocator holds, with their purposes."""
        return dict(self._held)

    def candidates(self) -> Iterator[int]:
        """Own block first, then the following blocks, wrapping around."""
        own = self.identity.worker_number % self.block_count
        for step in range(self.block_count):
            start = self.base + ((own + step) % self.block_count) * self.block_size
            yield from range(start, start + self.block_size)

    def allocate(self, purpose: str) -> int:
        """Reserve and return a free port for ``purpose``."""
        occupants: list[str] = []
        tried = 0
        for port in self.candidates():
            if port in self._held or port in self._quarantine:
                continue
            tried += 1
            blocker = self._try_reserve(port, purpose)
            if blocker is None:
                if port < self.block_start or port >= self.block_start + self.block_size:
                    self._emit("port_fallback_block", port=port, purpose=purpose)
                return port
            if len(occupants) < 5:
                occupants.append(blocker)
        msg = (
            f"no free port for {purpose!r}: tried {tried} ports from base {self.base} "
            f"(blocks of {self.block_size}); occupants seen first: {'; '.join(occupants) or 'none'}. "
            f"Release ports or choose another base with --isolation-port-base."
        )
        self._emit("port_exhausted", purpose=purpose, tried=tried)
        raise PortExhaustedError(msg)

    def release(self, port: int) -> None:
        """Drop our reservation of ``port`` (no-op if we do not hold it)."""
        purpose = self._held.pop(port, None)
        if purpose is None:
            return
        path = self._path(port)
        current = Reservation.load(path)
        if (
            current is not None
            and current.owner == self.identity.owner
            and current.released is None
        ):
            if self.release_cooldown > 0:
                self._write_released(path, port, purpose)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        self._emit("port_released", port=port, purpose=purpose)

    def release_all(self) -> None:
        for port in list(self._held):
            self.release(port)

    def quarantine(self, port: int, reason: str) -> None:
        """Give back ``port`` and never hand it out again from this allocator."""
        self._quarantine.add(port)
        self._emit("port_conflict", port=port, reason=reason)
        self.release(port)

    def with_port(
        self, purpose: str, use: Callable[[int], T], *, attempts: int = 5
    ) -> tuple[int, T]:
        """Allocate a port and call ``use(port)``, retrying on port conflicts.

        A conflict (see :func:`is_port_conflict`) quarantines the port and
        tries the next one; any other error releases the port and propagates.
        """
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            port = self.allocate(purpose)
            try:
                return port, use(port)
            except Exception as error:
                if not is_port_conflict(error):
                    self.release(port)
                    raise
                last = error
                self._emit(
                    "port_retry", port=port, purpose=purpose, attempt=attempt, error=str(error)
                )
                self.quarantine(port, str(error))
        msg = f"{purpose}: {attempts} ports in a row were taken while starting; last error: {last}"
        raise PortExhaustedError(msg) from last

    # -- internals ------------------------------------------------------

    def _path(self, port: int) -> Path:
        return self.ports_dir / f"{port}.json"

    def _emit(self, kind: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(kind, **fields)

    def _write_released(self, path: Path, port: int, purpose: str) -> None:
        """Keep the file, marked released: the port cools down before reuse."""
        record = json.loads(self._record(port, purpose))
        record["released"] = time.time()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    def _record(self, port: int, purpose: str) -> bytes:
        return json.dumps(
            {
                "port": port,
                "owner": self.identity.owner.as_dict(),
                "run_id": self.identity.run_id,
                "worker_id": self.identity.worker_id,
                "purpose": purpose,
                "created": time.time(),
            }
        ).encode()

    def _create(self, port: int, purpose: str) -> bool:
        try:
            fd = os.open(self._path(port), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._record(port, purpose))
        finally:
            os.close(fd)
        return True

    def _try_reserve(self, port: int, purpose: str) -> str | None:
        """Reserve ``port``; None on success, else who blocks it."""
        if not self._create(port, purpose):
            blocker = self._reclaim_if_stale(port, purpose)
            if blocker is not None:
                return blocker
        self._held[port] = purpose
        occupied = self._probe(port)
        if occupied is not None:
            self._held.pop(port, None)
            with contextlib.suppress(FileNotFoundError):
                self._path(port).unlink()
            occupant = _occupant_of(port) or "a process we cannot see"
            self._emit("port_in_use", port=port, purpose=purpose, occupant=occupant, error=occupied)
            return f"port {port} in use by {occupant}"
        self._emit("port_reserved", port=port, purpose=purpose)
        return None

    def _reclaim_if_stale(self, port: int, purpose: str) -> str | None:
        """Take over a dead owner's reservation; None when we now hold it."""
        path = self._path(port)
        with self._lock:
            current = Reservation.load(path)
            if current is None:
                try:
                    age = time.time() - path.stat().st_mtime
                except FileNotFoundError:
                    return None if self._create(port, purpose) else f"port {port} just taken"
                if age < _TORN_GRACE_S:
                    return f"port {port} being reserved by another process"
                previous = "a torn reservation"
            elif current.released is not None:
                if time.time() - current.released < self.release_cooldown:
                    return current.describe()
                previous = ""  # cooled down: ordinary reuse, nobody's leftover
            elif current.owner.is_alive():
                return current.describe()
            else:
                previous = current.describe()
            path.unlink(missing_ok=True)
            if not self._create(port, purpose):
                return f"port {port} just taken"
        if previous:
            self._emit("port_reclaimed", port=port, purpose=purpose, previous=previous)
        return None

    def _probe(self, port: int) -> str | None:
        """Bind the probe host; None when free, else the OS error text."""
        if self.probe_host is None:
            return None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.probe_host, port))
            except OSError as error:
                return str(error)
        return None
