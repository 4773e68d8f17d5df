"""Per-test leak detection: what a test left alive after its teardown.

A leak is something new since the test's setup began that is still alive
after its teardown ended: a thread, a child process or a listening socket.
Threads and processes get a short bounded grace (a thread that is already
stopping finishes within it).  Not leaks:

* what appeared while a fixture of a wider scope than ``function`` was set
  up (it belongs to that scope: :meth:`LeakTracker.adopt`),
* threads named with :data:`~parallel_isolation.ownership.SESSION_THREAD_PREFIX`
  (the toolkit's own session threads, e.g. the cross-talk spy),
* child processes marked with role ``broker`` (the worker's broker, started
  on first use inside some test).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from parallel_isolation import ownership
from parallel_isolation.host import procfs
from parallel_isolation.host.procfs import ChildTracker

__all__ = ["DEFAULT_GRACE_S", "Leak", "LeakMark", "LeakTracker", "look"]

DEFAULT_GRACE_S = 0.5


@dataclass(frozen=True)
class Leak:
    """Something a test left alive after its teardown."""

    what: str  # "thread", "process" or "listening_socket"
    name: str
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = ", ".join(f"{key}={value}" for key, value in self.detail.items())
        return f"{self.what} {self.name!r}" + (f" ({extra})" if extra else "")


@dataclass
class LeakMark:
    """One look at the process: its threads, children, socket inodes and descriptor count.

    Taken before a test's setup and after its teardown; the recorder's
    snapshots at those moments reuse it instead of looking again.
    """

    threads: set[threading.Thread]
    children: dict[int, int]
    sockets: dict[int, int]
    """Socket inode -> descriptor."""
    fds: int = -1


def look(children: dict[int, int]) -> LeakMark:
    """This process now, with ``children`` already known."""
    fds, sockets = procfs.fd_table(os.getpid())
    return LeakMark(set(threading.enumerate()), children, sockets, fds)


class LeakTracker:
    """Compares threads, child processes and sockets before setup and after teardown."""

    def __init__(self, children: ChildTracker, *, grace: float = DEFAULT_GRACE_S) -> None:
        self.children = children
        self.grace = grace
        self._adopted_threads: set[threading.Thread] = set()
        self._adopted_pids: set[int] = set()
        self.after: LeakMark | None = None
        """The look :meth:`end` took after the test (for the recorder's snapshot)."""

    def begin(self) -> LeakMark:
        return look(self.children.alive())

    def adopt(self, mark: LeakMark) -> None:
        """Everything new since ``mark`` belongs to a wider scope than one test."""
        self._adopted_threads.update(set(threading.enumerate()) - mark.threads)
        self._adopted_pids.update(set(self.children.alive()) - set(mark.children))

    def end(self, mark: LeakMark) -> list[Leak]:
        deadline = time.monotonic() + self.grace
        leaks = self._thread_leaks(mark, deadline)
        process_leaks, children = self._process_leaks(mark, deadline)
        leaks.extend(process_leaks)
        after = look(children)
        leaks.extend(self._socket_leaks(mark, after))
        self.after = after
        self._adopted_threads = {t for t in self._adopted_threads if t.is_alive()}
        return leaks

    def _thread_leaks(self, mark: LeakMark, deadline: float) -> list[Leak]:
        fresh = [
            thread
            for thread in threading.enumerate()
            if thread not in mark.threads
            and thread not in self._adopted_threads
            and not thread.name.startswith(ownership.SESSION_THREAD_PREFIX)
        ]
        leaks: list[Leak] = []
        for thread in fresh:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                leaks.append(
                    Leak(
                        "thread",
                        thread.name,
                        {
                            "ident": thread.ident,
                            "native_id": thread.native_id,
                            "daemon": thread.daemon,
                        },
                    )
                )
        return leaks

    def _process_leaks(self, mark: LeakMark, deadline: float) -> tuple[list[Leak], dict[int, int]]:
        """The leaked processes, and the children alive after the wait."""
        alive = self.children.alive()
        fresh = [
            pid
            for pid, start in alive.items()
            if mark.children.get(pid) != start and pid not in self._adopted_pids
        ]
        candidates = []
        for pid in fresh:
            markers = ownership.read_markers(procfs.environ(pid))
            if markers is not None and markers.role == "broker":
                self._adopted_pids.add(pid)
                continue
            candidates.append(pid)
        leaks = []
        running = procfs.wait_exit(candidates, deadline)
        for pid in sorted(running):
            markers = ownership.read_markers(procfs.environ(pid))
            detail: dict[str, Any] = {"pid": pid, "cmdline": procfs.cmdline(pid)}
            if markers is not None:
                detail["role"] = markers.role
            name = detail["cmdline"].split(" ", 1)[0].rsplit("/", 1)[-1] or str(pid)
            leaks.append(Leak("process", name, detail))
        self._adopted_pids &= set(alive)
        exited = set(candidates) - running
        return leaks, {pid: start for pid, start in alive.items() if pid not in exited}

    def _socket_leaks(self, mark: LeakMark, after: LeakMark) -> list[Leak]:
        leaks = []
        for inode, fd in sorted(after.sockets.items()):
            if inode in mark.sockets:
                continue
            port = procfs.own_listening_port(fd, inode)
            if port is not None:
                leaks.append(
                    Leak("listening_socket", f"port {port}", {"port": port, "inode": inode})
                )
        return leaks
