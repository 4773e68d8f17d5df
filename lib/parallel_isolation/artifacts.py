"""The run's artifacts directory and its event log.

Layout (one directory per run id)::

    <root>/<run8>/run.json              who started the run, when, options
    <root>/<run8>/<worker>/events.jsonl allocations, retries, conflicts, restarts
    <root>/<run8>/<worker>/logs/...     broker and service logs
    <root>/latest                       text file naming the newest run id
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parallel_isolation.identity import Identity

__all__ = ["EventLog", "RunArtifacts", "read_events"]


class EventLog:
    """Append-only JSON-lines log of what this worker did.

    Each line is one event: ``{"ts", "kind", "worker", ...fields}``.  Writes are
    serialised within the process and each line is written with one ``write``
    call on an ``O_APPEND`` file, so lines never interleave.
    """

    def __init__(self, path: Path, worker_id: str) -> None:
        self.path = path
        self.worker_id = worker_id
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, kind: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 4), "kind": kind, "worker": self.worker_id, **fields}
        line = json.dumps(record, default=str, sort_keys=False) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Events of one log; a torn last line (killed worker) is skipped."""
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events
    for raw in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            events.append(record)
    return events


@dataclass(frozen=True)
class RunArtifacts:
    """Paths of one run's artifacts, for one worker."""

    root: Path
    identity: Identity

    @property
    def run_dir(self) -> Path:
        return self.root / self.identity.run_id

    @property
    def worker_dir(self) -> Path:
        return self.run_dir / self.identity.worker_id

    @property
    def logs_dir(self) -> Path:
        return self.worker_dir / "logs"

    @property
    def events_path(self) -> Path:
        return self.worker_dir / "events.jsonl"

    def log_path(self, name: str) -> Path:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        return self.logs_dir / name

    def event_log(self) -> EventLog:
        return EventLog(self.events_path, self.identity.worker_id)

    def write_run_record(self, data: dict[str, Any]) -> None:
        """Controller side: describe the run and point ``latest`` at it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "run.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        tmp = self.root / f".latest.{os.getpid()}"
        tmp.write_text(self.identity.run_id + "\n")
        tmp.replace(self.root / "latest")
