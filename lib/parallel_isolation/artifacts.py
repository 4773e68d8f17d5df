"""A run's artifacts directory: its layout, every file name, one JSON-lines reader and writer.

Layout (one directory per run id)::

    <root>/latest                          text file naming the newest run id
    <root>/<run8>/run.json                 who started the run, when, options, exit status
    <root>/<run8>/cleanup.jsonl            what cleanup-orphans removed for this run
    <root>/<run8>/<worker>/events.jsonl    allocations, retries, conflicts, tests, leaks
    <root>/<run8>/<worker>/snapshots.jsonl resource snapshots (session start/end, per test)
    <root>/<run8>/<worker>/crosstalk.jsonl messages the broker spy saw outside the namespaces
    <root>/<run8>/<worker>/logs/...        broker, service and container logs

Every JSON-lines file is written a whole line per ``write`` call on an
``O_APPEND`` descriptor, so lines of concurrent writers never interleave and
a killed writer leaves at most one partial *last* line.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parallel_isolation.identity import Identity

__all__ = [
    "CLEANUP_FILE",
    "CROSSTALK_FILE",
    "EVENTS_FILE",
    "IMAGES_CHECKED_FILE",
    "LATEST_FILE",
    "LOGS_DIR",
    "RUN_FILE",
    "SNAPSHOTS_FILE",
    "DeferredWriter",
    "EventLog",
    "RunArtifacts",
    "append_record",
    "read_events",
    "read_jsonl",
    "read_jsonl_lines",
]

RUN_FILE = "run.json"
LATEST_FILE = "latest"
CLEANUP_FILE = "cleanup.jsonl"
EVENTS_FILE = "events.jsonl"
SNAPSHOTS_FILE = "snapshots.jsonl"
CROSSTALK_FILE = "crosstalk.jsonl"
# In the run directory: the first worker that found the container images current says so.
IMAGES_CHECKED_FILE = "images-checked.json"
LOGS_DIR = "logs"

# A bad line, for readers that want to report it: (line number, raw text, partial?), where
# partial means the file's last line, cut before its newline (its writer was killed).
BadLine = Callable[[int, str, bool], None]


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to a JSON-lines file as one whole line (one ``write``)."""
    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_jsonl_lines(
    path: Path, on_bad: BadLine | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each JSON object in a JSON-lines file; none if it is missing.

    A line that is not a JSON object is skipped and, when ``on_bad`` is given,
    reported with its number, its text and whether it is *partial*: the last
    line of a file that does not end with a newline (every writer writes whole
    lines, so only a writer killed mid-line leaves one).  Other errors than a
    missing file (permissions, ...) are raised.
    """
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return
    lines = text.splitlines()
    unterminated = bool(text) and not text.endswith("\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            yield number, record
        elif on_bad is not None:
            on_bad(number, raw, unterminated and number == len(lines))


def read_jsonl(path: Path, on_bad: BadLine | None = None) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, in order (see :func:`read_jsonl_lines`)."""
    for _number, record in read_jsonl_lines(path, on_bad):
        yield record


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of one worker's log (bad lines skipped)."""
    return list(read_jsonl(path))


class EventLog:
    """Append-only JSON-lines log of what this worker did.

    Each line is one event: ``{"ts", "kind", "worker", ...fields}``, written
    with :func:`append_record` under a lock.
    """

    def __init__(self, path: Path, worker_id: str) -> None:
        self.path = path
        self.worker_id = worker_id
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, kind: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 4), "kind": kind, "worker": self.worker_id, **fields}
        with self._lock:
            append_record(self.path, record)


class DeferredWriter:
    """Appends JSON lines under a worker's directory once the run directory exists.

    Until some fixture of the toolkit creates the run directory, records are
    buffered (up to ``limit``, then counted as dropped): a session that never
    used the toolkit leaves no trace.
    """

    def __init__(self, artifacts: RunArtifacts, *, limit: int = 20_000) -> None:
        self.artifacts = artifacts
        self.limit = limit
        self.dropped = 0
        self._pending: list[tuple[Path, dict[str, Any]]] = []
        self._ready = False
        self._lock = threading.Lock()

    def write(self, name: str, record: dict[str, Any]) -> None:
        path = self.artifacts.worker_dir / name
        with self._lock:
            if not self._open():
                if len(self._pending) < self.limit:
                    self._pending.append((path, record))
                else:
                    self.dropped += 1
                return
            append_record(path, record)

    def flush(self) -> None:
        """Write what is buffered if the run directory exists by now."""
        with self._lock:
            self._open()

    @property
    def wrote(self) -> bool:
        """True once records went to disk (the run directory existed)."""
        return self._ready

    def _open(self) -> bool:
        if self._ready:
            return True
        if not self.artifacts.run_dir.exists():
            return False
        self._ready = True
        self.artifacts.worker_dir.mkdir(parents=True, exist_ok=True)
        pending, self._pending = self._pending, []
        for path, record in pending:
            append_record(path, record)
        return True


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
        return self.worker_dir / LOGS_DIR

    @property
    def events_path(self) -> Path:
        return self.worker_dir / EVENTS_FILE

    @property
    def crosstalk_path(self) -> Path:
        return self.worker_dir / CROSSTALK_FILE

    @property
    def images_checked_path(self) -> Path:
        return self.run_dir / IMAGES_CHECKED_FILE

    def log_path(self, name: str) -> Path:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        return self.logs_dir / name

    def event_log(self) -> EventLog:
        return EventLog(self.events_path, self.identity.worker_id)

    def write_run_record(self, data: dict[str, Any]) -> None:
        """Controller side: describe the run and point ``latest`` at it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / RUN_FILE).write_text(json.dumps(data, indent=2, default=str) + "\n")
        tmp = self.root / f".{LATEST_FILE}.{os.getpid()}"
        tmp.write_text(self.identity.run_id + "\n")
        tmp.replace(self.root / LATEST_FILE)
