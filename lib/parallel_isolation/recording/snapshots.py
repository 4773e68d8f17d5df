"""Resource snapshots of a worker process: memory, threads, descriptors, children.

One line per snapshot goes to ``<worker>/snapshots.jsonl`` (the recorder
writes them): at session start and end (``session_start`` / ``session_end``,
with the listening ports of the worker and its children and the thread
names) and before and after each test (``before`` / ``after``).  Each
snapshot measures its own cost (``cost_ms``).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from parallel_isolation.host import procfs
from parallel_isolation.host.procfs import ChildTracker

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

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["children"] = list(self.children)
        if self.listening is not None:
            record["listening"] = list(self.listening)
        if self.thread_names is not None:
            record["thread_names"] = list(self.thread_names)
        return record


def take_snapshot(
    phase: str,
    *,
    test: str | None = None,
    children: ChildTracker,
    full: bool = False,
) -> Snapshot:
    """Snapshot this process; ``full`` adds listening ports and thread names."""
    started = time.perf_counter()
    pid = os.getpid()
    rss, threads = procfs.memory(pid)
    alive = children.alive()
    py_threads = threading.enumerate()
    sockets = procfs.socket_inodes(pid)
    listening: tuple[int, ...] | None = None
    names: tuple[str, ...] | None = None
    if full:
        listening = tuple(procfs.listening_ports([pid, *alive]))
        names = tuple(sorted(thread.name for thread in py_threads))
    return Snapshot(
        ts=round(time.time(), 4),
        phase=phase,
        test=test,
        pid=pid,
        rss=rss,
        threads=threads,
        py_threads=len(py_threads),
        fds=procfs.count_fds(pid),
        sockets=len(sockets),
        children=tuple(sorted(alive)),
        listening=listening,
        thread_names=names,
        cost_ms=round((time.perf_counter() - started) * 1000, 3),
    )
