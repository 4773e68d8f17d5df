"""Reading this host's ``/proc``: cheap enough to run around every test.

Everything here reads files of ``/proc`` (or asks a socket about itself) and
returns plain values; nothing keeps state except :class:`ChildTracker`, which
remembers the descendants it has seen so that each look examines only the
processes started since the previous one that are still there.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterable

__all__ = [
    "ChildTracker",
    "cmdline",
    "count_fds",
    "environ",
    "fd_table",
    "is_process",
    "last_pid",
    "listening_inodes",
    "listening_ports",
    "memory",
    "own_listening_port",
    "pid_max",
    "pids",
    "read_bytes",
    "socket_fds",
    "socket_inodes",
    "stat_fields",
    "wait_exit",
]

_LISTEN = "0A"


def read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def stat_fields(pid: int) -> tuple[str, int, int] | None:
    """``(state, ppid, starttime)`` of ``/proc/<pid>/stat``, or None when gone."""
    data = read_bytes(f"/proc/{pid}/stat")
    if data is None:
        return None
    rest = data[data.rfind(b")") + 2 :].split(b" ", 20)
    try:
        return rest[0].decode(), int(rest[1]), int(rest[19])
    except (IndexError, ValueError):
        return None


def is_process(pid: int) -> bool:
    """True when ``pid`` is a thread-group leader (a process, not a thread)."""
    data = read_bytes(f"/proc/{pid}/status")
    if data is None:
        return False
    for line in data.splitlines():
        if line.startswith(b"Tgid:"):
            return int(line.split()[1]) == pid
    return False


def last_pid() -> int | None:
    """The pid the kernel allocated last (``/proc/loadavg``, field 5)."""
    data = read_bytes("/proc/loadavg")
    if data is None:
        return None
    try:
        return int(data.split()[4])
    except (IndexError, ValueError):
        return None


def pid_max() -> int:
    data = read_bytes("/proc/sys/kernel/pid_max")
    try:
        return int(data) if data else 32768
    except ValueError:
        return 32768


def environ(pid: int) -> dict[str, str]:
    data = read_bytes(f"/proc/{pid}/environ")
    if not data:
        return {}
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def cmdline(pid: int) -> str:
    data = read_bytes(f"/proc/{pid}/cmdline")
    return data.replace(b"\0", b" ").decode(errors="replace").strip()[:300] if data else ""


def socket_fds(pid: int) -> dict[int, int]:
    """Inode -> fd of the sockets ``pid`` holds open."""
    return fd_table(pid)[1]


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets ``pid`` holds open."""
    return set(socket_fds(pid))


def fd_table(pid: int) -> tuple[int, dict[int, int]]:
    """``(open descriptors, socket inode -> fd)`` of ``pid`` in one pass over its fd directory.

    ``(-1, {})`` when the directory cannot be read.
    """
    base = f"/proc/{pid}/fd"
    try:
        names = os.listdir(base)
    except OSError:
        return -1, {}
    sockets: dict[int, int] = {}
    for name in names:
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            sockets[int(target[8:-1])] = int(name)
    return len(names), sockets


def pids() -> list[int]:
    """The pids of every process visible in ``/proc`` now (one directory read)."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def own_listening_port(fd: int, inode: int) -> int | None:
    """The TCP port this process's socket ``fd`` listens on, or None.

    Asks the socket itself (``SO_ACCEPTCONN`` on a duplicate of the fd), which
    is far cheaper than parsing ``/proc/net/tcp`` on a busy host.
    """
    try:
        dup = os.dup(fd)
    except OSError:
        return None
    try:
        if os.fstat(dup).st_ino != inode:
            os.close(dup)
            return None  # the fd was closed and reused meanwhile
        sock = socket.socket(fileno=dup)
    except OSError:
        os.close(dup)
        return None
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return None
        port: int = sock.getsockname()[1]
        return port
    except OSError:
        return None
    finally:
        sock.close()


def count_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def listening_inodes() -> dict[int, int]:
    """Inode -> port of every listening TCP socket in this network namespace."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        data = read_bytes(table)
        if data is None:
            continue
        for line in data.decode(errors="replace").splitlines()[1:]:
            parts = line.split()
            if len(parts) < 10 or parts[3] != _LISTEN:
                continue
            try:
                found[int(parts[9])] = int(parts[1].rsplit(":", 1)[1], 16)
            except (IndexError, ValueError):
                continue
    return found


def listening_ports(pids: Iterable[int]) -> list[int]:
    """TCP ports on which any of ``pids`` listens (sorted, unique)."""
    table = listening_inodes()
    ports: set[int] = set()
    for pid in pids:
        ports.update(table[inode] for inode in socket_inodes(pid) if inode in table)
    return sorted(ports)


def memory(pid: int) -> tuple[int, int]:
    """``(rss bytes, OS threads)`` from ``/proc/<pid>/stat``."""
    data = read_bytes(f"/proc/{pid}/stat")
    if data is None:
        return -1, -1
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return int(rest[21]) * os.sysconf("SC_PAGE_SIZE"), int(rest[17])
    except (IndexError, ValueError):
        return -1, -1


class ChildTracker:
    """This process's descendants, found incrementally.

    Pids are allocated in increasing order (modulo ``pid_max``), so a process
    created since the last look has a pid between the last allocated pid seen
    then and the one the kernel reports now (``/proc/loadavg``).  When this
    process has no child at all, there is nothing to look for.  Otherwise one
    read of the ``/proc`` directory lists the processes alive now; only those
    in that range are examined (their ``stat``).  The whole host allocates pids, and a
    Docker run allocates hundreds per test (runtimes, shims, the containers'
    processes) that are gone a moment later: examining every pid of the range,
    as this class once did, cost a failed ``open`` each, tens of milliseconds
    per look.  Processes are keyed by pid *and* start time, so a reused pid is
    a different process.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.known: dict[int, int] = {}
        self._last_pid: int | None = None
        self._pid_max = pid_max()
        self.full_scans = 0
        self.examined = 0
        """Processes whose ``stat`` was read to find new descendants (a cost figure)."""
        self.scan()

    def alive(self) -> dict[int, int]:
        """pid -> start time of the descendants alive now."""
        self.scan()
        return dict(self.known)

    def scan(self) -> None:
        # Drop the dead (or reused) first, then add the new.
        for pid, start in list(self.known.items()):
            fields = stat_fields(pid)
            if fields is None or fields[2] != start or fields[0] in {"Z", "X"}:
                del self.known[pid]
        now = last_pid()
        previous = self._last_pid
        self._last_pid = now
        if now is None or previous is None:
            self._full_scan()
            return
        if now == previous:
            return  # no process was created anywhere since the last look
        if not self._may_have_new_descendants():
            return
        present = pids()
        if now > previous:
            new = sorted(pid for pid in present if previous < pid <= now)
        else:  # the pids wrapped around pid_max
            new = sorted(pid for pid in present if pid > previous)
            new += sorted(pid for pid in present if pid <= now)
        for pid in new:  # parents before their children (lower pids first)
            self._consider(pid)

    def _may_have_new_descendants(self) -> bool:
        """False when this process has no child at all (so no descendant either).

        One ``waitid`` without reaping (``WNOWAIT``) answers ECHILD when there
        is no child, alive or exited: a Docker-backend worker, whose broker
        and services are containers, then skips the look at ``/proc``.
        """
        if self.known or self.pid != os.getpid():
            return True
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        except OSError:
            return True
        return True

    def _consider(self, pid: int) -> None:
        self.examined += 1
        fields = stat_fields(pid)
        if fields is None or fields[0] in {"Z", "X"}:
            return
        parents = {self.pid, *self.known}
        if fields[1] in parents and pid != self.pid and is_process(pid):
            self.known[pid] = fields[2]

    def _full_scan(self) -> None:
        self.full_scans += 1
        table: dict[int, tuple[int, int]] = {}
        for pid in pids():
            fields = stat_fields(pid)
            if fields is not None and fields[0] not in {"Z", "X"}:
                table[pid] = (fields[1], fields[2])
        found: dict[int, int] = {}
        frontier = [self.pid]
        while frontier:
            parent = frontier.pop()
            for pid, (ppid, start) in table.items():
                if ppid == parent and pid not in found:
                    found[pid] = start
                    frontier.append(pid)
        self.known = found


def wait_exit(pids: Iterable[int], deadline: float) -> set[int]:
    """Wait (without reaping) until each of ``pids`` exits or the deadline passes.

    Returns the pids still running.  Uses a pidfd per process, which becomes
    readable when the process exits; where pidfds are unavailable the state
    is read once.
    """
    running: set[int] = set()
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            fields = stat_fields(pid)
            if fields is not None and fields[0] not in {"Z", "X"}:
                running.add(pid)
            continue
        try:
            remaining = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                running.add(pid)
        finally:
            os.close(fd)
    return running
