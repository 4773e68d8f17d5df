"""Resource snapshots of a worker process: memory, threads, descriptors, children.

One line per snapshot goes to ``<worker>/snapshots.jsonl`` (the recorder
writes them): at session start and end (``session_start`` / ``session_end``,
with the listening ports of the worker and its children and the thread
names) and before and after each test (``before`` / ``after``).  Each
snapshot measures its own cost (``cost_ms``).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from parallel_isolation.host import procfs
from parallel_isolation.host.procfs import ChildTracker
from parallel_isolation.recording import leaks
from parallel_isolation.recording.leaks import LeakMark

__all__ = ["Snapshot", "take_snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """One look at this process's resources."""

    ts: float
    phase: str
    test: str | None
    pid: int
    rss: int
    threads: int
    py_threads: int
    fds: int
    sockets: int
    children: tuple[int, ...]
    listening: tuple[int, ...] | None = None
    thread_names: tuple[str, ...] | None = None
    cost_ms: float = 0.0
    load: tuple[float, float, float] | None = None
    """The host's load average (1, 5, 15 min) at session start and end."""
    cpus: int | None = None

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["children"] = list(self.children)
        if self.listening is not None:
            record["listening"] = list(self.listening)
        if self.thread_names is not None:
            record["thread_names"] = list(self.thread_names)
        if self.load is None:
            del record["load"], record["cpus"]
        else:
            record["load"] = [round(value, 2) for value in self.load]
        return record


def take_snapshot(
    phase: str,
    *,
    test: str | None = None,
    children: ChildTracker,
    full: bool = False,
    look: LeakMark | None = None,
) -> Snapshot:
    """Snapshot this process; ``full`` adds listening ports and thread names.

    ``look`` is a look the leak tracker took at this very moment (threads,
    children, sockets, descriptors): reused rather than taken again.
    """
    started = time.perf_counter()
    pid = os.getpid()
    rss, threads = procfs.memory(pid)
    if look is None:
        look = leaks.look(children.alive())
    py_threads = look.threads
    listening: tuple[int, ...] | None = None
    names: tuple[str, ...] | None = None
    load: tuple[float, float, float] | None = None
    if full:
        listening = tuple(procfs.listening_ports([pid, *look.children]))
        names = tuple(sorted(thread.name for thread in py_threads))
        load = os.getloadavg()
    return Snapshot(
        ts=round(time.time(), 4),
        phase=phase,
        test=test,
        pid=pid,
        rss=rss,
        threads=threads,
        py_threads=len(py_threads),
        fds=look.fds,
        sockets=len(look.sockets),
        children=tuple(sorted(look.children)),
        listening=listening,
        thread_names=names,
        cost_ms=round((time.perf_counter() - started) * 1000, 3),
        load=load,
        cpus=os.cpu_count() if full else None,
    )
