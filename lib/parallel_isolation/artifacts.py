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
a killed writer leaves at most one partial *last* line.  A write the
filesystem cuts short (it is full) leaves a fragment; the next line that gets
through starts on a line of its own, so the fragment is the only unreadable
line.  Writers never raise: a record the filesystem refused is counted as
lost, the first such error is said once on standard error (naming the file),
and :meth:`JsonlWriter.problems` reports it at the end.

Directories are created ``0700`` and files ``0600``: a run's evidence is
neither readable nor writable by other local users.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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
    "JsonlWriter",
    "RunArtifacts",
    "UnsafeDirectoryError",
    "append_record",
    "encode_line",
    "ensure_private_dir",
    "make_private_dir",
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


DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> Path:
    """``mkdir -p`` giving mode 0700 to every directory it creates; returns ``path``.

    (``Path.mkdir(parents=True)`` gives the parents it creates the default mode.)
    """
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=DIR_MODE)
    return path


class UnsafeDirectoryError(RuntimeError):
    """A directory the toolkit keeps state in is not this user's private directory."""


def ensure_private_dir(path: Path, what: str, *, fix: str = "") -> Path:
    """Make ``path`` (0700) if missing; refuse it unless it is this user's and private.

    Refused: a symbolic link, something that is not a directory, a directory
    of another user (planted in a shared temp directory, say), one that group
    or others may write to.  The error names the directory, what is wrong and
    ``fix``.
    """
    make_private_dir(path)
    info = path.lstat()
    me = os.geteuid()
    problem = ""
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != me:
        problem = f"belongs to uid {info.st_uid}, not to this user (uid {me})"
    elif info.st_mode & 0o022:
        problem = f"is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    if problem:
        msg = f"the {what} {path} {problem}; not using it" + (f": {fix}" if fix else "")
        raise UnsafeDirectoryError(msg)
    return path


def encode_line(record: Mapping[str, Any]) -> bytes:
    """``record`` as one JSON line; a record JSON cannot hold is kept as text, not lost."""
    try:
        text = json.dumps(record, default=str)
    except (TypeError, ValueError) as error:  # a reference cycle, a key that is not a string
        plain = (str, int, float, bool, type(None))
        text = json.dumps(
            {
                **{str(k): v if isinstance(v, plain) else repr(v) for k, v in record.items()},
                "unencodable": str(error),
            }
        )
    return (text + "\n").encode()


def _append(path: Path, data: bytes) -> int:
    """One ``write`` of ``data`` at the end of ``path``; the number of bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append ``record`` to a JSON-lines file as one whole line (one ``write``).

    Raises :class:`OSError` when the file cannot take the whole line.
    """
    line = encode_line(record)
    written = _append(path, line)
    if written < len(line):
        raise OSError(errno.ENOSPC, f"wrote {written} of {len(line)} bytes", str(path))


class JsonlWriter:
    """Appends records to one JSON-lines file; never raises (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        self.lost = 0
        self.error: str | None = None
        self._fragment = False
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> bool:
        """Append ``record``; False when the filesystem refused it (counted in :attr:`lost`)."""
        line = encode_line(record)
        with self._lock:
            data = b"\n" + line if self._fragment else line
            try:
                written = _append(self.path, data)
            except OSError as error:
                self._lost(error.strerror or str(error))
                return False
            if written < len(data):
                self._fragment = True
                self._lost(f"only {written} of {len(data)} bytes written (full filesystem?)")
                return False
            self._fragment = False
            self.written += 1
            return True

    def _lost(self, why: str) -> None:
        self.lost += 1
        if self.error is None:
            self.error = why
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(
                    f"parallel-isolation: cannot write {self.path}: {why}; "
                    "the records that do not fit are lost (counted)\n"
                )
                sys.stderr.flush()

    def problems(self) -> list[str]:
        """One line per file that lost records, naming it and the first error."""
        if not self.lost:
            return []
        return [f"{self.lost} record(s) could not be written to {self.path}: {self.error}"]


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

    Each line is one event: ``{"ts", "kind", "worker", ...fields}``.  Emitting
    never raises (an event the disk refused is counted, see
    :class:`JsonlWriter`): whatever emits it, a teardown say, goes on.
    """

    def __init__(self, path: Path, worker_id: str) -> None:
        self.path = path
        self.worker_id = worker_id
        make_private_dir(path.parent)
        self.writer = JsonlWriter(path)

    def emit(self, kind: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 4), "kind": kind, "worker": self.worker_id, **fields}
        self.writer.append(record)

    def problems(self) -> list[str]:
        return self.writer.problems()


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
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._writers: dict[str, JsonlWriter] = {}
        self._ready = False
        self._lock = threading.Lock()

    def write(self, name: str, record: dict[str, Any]) -> None:
        """Write (or buffer) ``record``; never raises (see :class:`JsonlWriter`)."""
        with self._lock:
            if not self._open():
                if len(self._pending) < self.limit:
                    self._pending.append((name, record))
                else:
                    self.dropped += 1
                return
            self._writer(name).append(record)

    def problems(self) -> list[str]:
        with self._lock:
            found = [line for writer in self._writers.values() for line in writer.problems()]
        if self.dropped:
            found.append(f"{self.dropped} record(s) dropped before the run directory existed")
        return found

    def _writer(self, name: str) -> JsonlWriter:
        writer = self._writers.get(name)
        if writer is None:
            writer = self._writers[name] = JsonlWriter(self.artifacts.worker_dir / name)
        return writer

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
        try:
            make_private_dir(self.artifacts.worker_dir)
        except OSError as error:
            if not self._writers:  # said once, through the writer of the first file
                self._writer(EVENTS_FILE)._lost(f"cannot create the directory: {error}")
            return False
        self._ready = True
        pending, self._pending = self._pending, []
        for name, record in pending:
            self._writer(name).append(record)
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
        make_private_dir(self.logs_dir)
        return self.logs_dir / name

    def event_log(self) -> EventLog:
        return EventLog(self.events_path, self.identity.worker_id)

    def write_run_record(self, data: dict[str, Any]) -> None:
        """Controller side: describe the run and point ``latest`` at it."""
        make_private_dir(self.run_dir)
        _write_file(self.run_dir / RUN_FILE, json.dumps(data, indent=2, default=str) + "\n")
        tmp = self.root / f".{LATEST_FILE}.{os.getpid()}"
        _write_file(tmp, self.identity.run_id + "\n")
        tmp.replace(self.root / LATEST_FILE)


def _write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600), replacing what was there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
