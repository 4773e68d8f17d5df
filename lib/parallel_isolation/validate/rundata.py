"""Loading one run's artifacts: run record, per-worker events, snapshots, cross-talk, logs."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parallel_isolation.artifacts import (
    CLEANUP_FILE,
    CROSSTALK_FILE,
    EVENTS_FILE,
    LATEST_FILE,
    RUN_FILE,
    SNAPSHOTS_FILE,
    read_jsonl_lines,
)
from parallel_isolation.console import natural_key, natural_sorted
from parallel_isolation.identity import Owner
from parallel_isolation.project import artifacts_root, explain_artifacts_root
from parallel_isolation.validate.discover import owner_alive

__all__ = [
    "EvidenceIssue",
    "Record",
    "RunData",
    "TestSpan",
    "ValidationError",
    "WorkerData",
    "default_artifacts_root",
    "load_run",
    "resolve_run_dir",
]

# Broker restarts: health publishes may fail until the services reconnect
# (their backoff is at most 10 s by default).
RECONNECT_MARGIN_S = 15.0


class ValidationError(RuntimeError):
    """The run cannot be validated (missing, unreadable); the message says why."""


def default_artifacts_root(cwd: Path | None = None) -> Path:
    """The plugin's artifacts root for the project ``cwd`` is in (pytest rootdir + ini/env)."""
    return artifacts_root(cwd)


def _run_dirs(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def resolve_run_dir(root: Path, run: str = "latest") -> Path:
    """The directory of ``run`` (an id, a unique id prefix, or ``latest``) under ``root``."""
    if not root.is_dir():
        msg = (
            f"no artifacts directory at {root}: run the tests with the plugin first; "
            f"{explain_artifacts_root(root)}"
        )
        raise ValidationError(msg)
    if run == "latest":
        marker = root / LATEST_FILE
        if not marker.exists():
            msg = f"no finished run recorded under {root} ({marker} is missing); pass --run ID"
            raise ValidationError(msg)
        run = marker.read_text().strip()
    direct = root / run
    if direct.is_dir():
        return direct
    matches = natural_sorted(p.name for p in _run_dirs(root) if p.name.startswith(run))
    if len(matches) == 1:
        return root / matches[0]
    if matches:
        msg = f"run {run!r} is ambiguous under {root}: it matches {', '.join(matches)}"
        raise ValidationError(msg)
    count = len(_run_dirs(root))
    msg = f"run {run!r} was not found under {root} ({count} runs there; `parallel-isolation runs` lists them)"
    raise ValidationError(msg)


@dataclass(frozen=True)
class Record:
    """One JSON line with where it came from."""

    data: dict[str, Any]
    file: str
    line: int

    @property
    def ts(self) -> float:
        value = self.data.get("ts")
        return float(value) if isinstance(value, int | float) else 0.0

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@dataclass(frozen=True)
class EvidenceIssue:
    """Something of the run's evidence that could not be read, or is missing.

    ``kind``: ``garbage`` (a line that is not a JSON object), ``partial-line``
    (the last line cut before its newline: its writer was killed),
    ``unreadable`` (a file that cannot be read or parsed), ``missing-worker``
    (a worker the controller saw record something left no directory),
    ``crashed-unrecorded`` (a crashed worker left no directory),
    ``missing-events`` (a worker recorded tests in its snapshots but has no
    event log).
    """

    kind: str
    file: str
    line: int | None
    detail: str
    worker: str | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


def iter_jsonl(
    path: Path, relative_to: Path, issues: list[EvidenceIssue] | None = None
) -> Iterator[Record]:
    """Records of a JSON-lines file; bad lines are skipped and, given ``issues``, noted there."""
    name = str(path.relative_to(relative_to))
    worker = name.split("/", 1)[0] if "/" in name else None

    def bad(number: int, raw: str, partial: bool) -> None:
        if issues is not None:
            excerpt = raw if len(raw) <= 60 else raw[:57] + "..."
            kind = "partial-line" if partial else "garbage"
            issues.append(EvidenceIssue(kind, name, number, excerpt, worker))

    try:
        for number, data in read_jsonl_lines(path, bad):
            yield Record(data, name, number)
    except OSError as error:
        if issues is None:
            raise
        issues.append(EvidenceIssue("unreadable", name, None, error.strerror or str(error), worker))


@dataclass
class TestSpan:
    """When one test ran on one worker."""

    __test__ = False

    worker: str
    test: str
    start: float
    end: float | None = None
    outcome: str = "unknown"
    overhead_ms: float | None = None
    leaks: int = 0
    failure: str = ""
    file: str | None = None
    line: int | None = None
    """Where the test's ``test_finished`` event is (relative to the run directory)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "test": self.test,
            "start": self.start,
            "end": self.end,
            "outcome": self.outcome,
            "overhead_ms": self.overhead_ms,
            "leaks": self.leaks,
        }


@dataclass
class WorkerData:
    """One worker's artifacts."""

    worker_id: str
    path: Path
    events: list[Record] = field(default_factory=list)
    snapshots: list[Record] = field(default_factory=list)
    crosstalk: list[Record] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    spans: list[TestSpan] = field(default_factory=list)
    owner: Owner | None = None
    _starts: list[float] = field(default_factory=list)
    _down: list[tuple[float, float]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """The worker's session ended normally (it wrote its session-end snapshot)."""
        return any(s.get("phase") == "session_end" for s in self.snapshots) or any(
            e.kind == "worker_finished" for e in self.events
        )

    def alive(self) -> bool:
        return self.owner is not None and owner_alive(self.owner)

    def last_ts(self) -> float:
        stamps = [r.ts for r in (*self.events[-1:], *self.snapshots[-1:], *self.crosstalk[-1:])]
        return max(stamps, default=0.0)

    def test_at(self, ts: float | None) -> str | None:
        """The test running on this worker at ``ts`` (None between tests or unknown)."""
        if ts is None or not self.spans:
            return None
        index = bisect.bisect_right(self._starts, ts) - 1
        if index < 0:
            return None
        span = self.spans[index]
        end = span.end if span.end is not None else float("inf")
        return span.test if ts <= end else None

    def tests_during(self, start: float, end: float) -> list[tuple[str, float]]:
        """``(test, seconds of overlap)`` for every test that ran within ``[start, end]``."""
        found = []
        for span in self.spans:
            span_end = span.end if span.end is not None else float("inf")
            overlap = min(end, span_end) - max(start, span.start)
            if overlap >= 0 and span.start <= end:
                found.append((span.test, overlap))
        return found

    def test_near(self, ts: float | None, lag: float) -> tuple[str | None, str | None]:
        """``(test, alternative)`` for an observation stamped up to ``lag`` seconds late.

        The spy stamps a message when it receives it, which on a busy host can
        be a little after the publishing test ended and the next one began.
        The test running at the stamp is named; when it had begun less than
        ``lag`` before and another ended just before it, that one is the
        alternative.  Between tests, the one that ended within ``lag`` is named.
        """
        if ts is None or not self.spans:
            return None, None
        index = bisect.bisect_right(self._starts, ts) - 1
        current = None
        if index >= 0:
            span = self.spans[index]
            if span.end is None or ts <= span.end:
                current = span
        recent: list[
            TestSpan
        ] = []  # tests that ended within ``lag`` before the stamp, newest first
        for span in reversed(self.spans[: index + 1]):
            if span is current or span.end is None:
                continue
            if not 0 <= ts - span.end <= lag or len(recent) == 2:
                break
            recent.append(span)
        if current is not None and recent and ts - current.start <= lag:
            return current.test, recent[0].test
        if current is not None:
            return current.test, None
        if not recent:
            return None, None
        # Between tests: the one that just ended, or (a very short test in
        # between) the one before it.
        return recent[0].test, (recent[1].test if len(recent) > 1 else None)

    def broker_down_at(self, ts: float | None) -> bool:
        """True when the worker's broker was paused, crashed or restarting at ``ts``."""
        if ts is None:
            return bool(self._down)
        return any(start <= ts <= end for start, end in self._down)

    def events_near(self, kinds: set[str], ts: float | None, window: float) -> bool:
        if ts is None:
            return any(e.kind in kinds for e in self.events)
        return any(e.kind in kinds and abs(e.ts - ts) <= window for e in self.events)

    def index(self) -> None:
        """Derive test spans, broker outages and the owner from the events."""
        self.events.sort(key=lambda r: r.ts)
        self.snapshots.sort(key=lambda r: r.ts)
        open_spans: dict[str, TestSpan] = {}
        spans: list[TestSpan] = []
        down_since: float | None = None
        for event in self.events:
            kind = event.kind
            if kind == "worker_started" and self.owner is None:
                self.owner = _owner_of(event.data)
            elif kind == "test_started":
                span = TestSpan(self.worker_id, str(event.get("test")), event.ts)
                span.file, span.line = event.file, event.line
                open_spans[span.test] = span
                spans.append(span)
            elif kind == "test_finished":
                test = str(event.get("test"))
                found = open_spans.pop(test, None)
                if found is None:
                    found = TestSpan(
                        self.worker_id, test, event.ts - float(event.get("duration", 0))
                    )
                    spans.append(found)
                found.end = event.ts
                found.outcome = str(event.get("outcome", "unknown"))
                overhead = event.get("overhead_ms")
                found.overhead_ms = float(overhead) if isinstance(overhead, int | float) else None
                found.leaks = int(event.get("leaks", 0) or 0)
                found.failure = str(event.get("failure") or "")
                found.file, found.line = event.file, event.line
            elif kind in {"broker_paused", "broker_crashed"} and down_since is None:
                down_since = event.ts
            elif kind in {"broker_restarted", "broker_started"} and down_since is not None:
                self._down.append((down_since, event.ts + RECONNECT_MARGIN_S))
                down_since = None
        if down_since is not None:
            self._down.append((down_since, float("inf")))
        if self.owner is None:
            self.owner = _owner_from_snapshots(self.snapshots)
        if not self.finished and not self.alive():
            for span in open_spans.values():
                span.outcome = "crashed"
                span.end = self.last_ts()
        spans.sort(key=lambda s: s.start)
        self.spans = spans
        self._starts = [s.start for s in spans]


def _owner_of(data: dict[str, Any]) -> Owner | None:
    try:
        return Owner(
            pid=int(data["pid"]), start_time=float(data["owner_start"]), host=str(data["host"])
        )
    except (KeyError, TypeError, ValueError):
        return None


def _owner_from_snapshots(snapshots: list[Record]) -> Owner | None:
    for snapshot in snapshots:
        owner = snapshot.get("owner")
        if isinstance(owner, dict):
            try:
                return Owner.from_dict(owner)
            except ValueError:
                return None
    return None


@dataclass
class RunData:
    """One run's artifacts, loaded and indexed."""

    run_id: str
    path: Path
    record: dict[str, Any] | None
    workers: dict[str, WorkerData]
    cleanup: list[Record] = field(default_factory=list)
    issues: list[EvidenceIssue] = field(default_factory=list)
    """Evidence that could not be read or is missing (see :class:`EvidenceIssue`)."""
    recorded: bool = False
    """``run.json`` exists (readable or not): the controller finished."""

    @property
    def settings(self) -> dict[str, Any]:
        if self.record is None:
            return {}
        settings = self.record.get("settings")
        return settings if isinstance(settings, dict) else {}

    def all_events(self) -> Iterator[tuple[WorkerData, Record]]:
        for worker in self.workers.values():
            for event in worker.events:
                yield worker, event

    def spans(self) -> list[TestSpan]:
        return sorted(
            (s for w in self.workers.values() for s in w.spans),
            key=lambda s: (s.start, natural_key(s.worker)),
        )

    def reaped(self) -> list[Record]:
        return [r for r in self.cleanup if r.get("action") == "removed"]


def _listed_workers(record: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The workers ``run.json`` names, with what the controller knew of them."""
    listed = (record or {}).get("workers")
    if not isinstance(listed, dict):
        return {}
    return {str(k): v if isinstance(v, dict) else {"status": str(v)} for k, v in listed.items()}


def _read_record(run_dir: Path, issues: list[EvidenceIssue]) -> dict[str, Any] | None:
    run_json = run_dir / RUN_FILE
    try:
        text = run_json.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        issues.append(EvidenceIssue("unreadable", RUN_FILE, None, error.strerror or str(error)))
        return None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        issues.append(EvidenceIssue("unreadable", RUN_FILE, error.lineno, f"not JSON: {error.msg}"))
        return None
    if not isinstance(loaded, dict):
        issues.append(EvidenceIssue("unreadable", RUN_FILE, None, "not a JSON object"))
        return None
    return loaded


def load_run(run_dir: Path) -> RunData:
    """Read every artifact of the run in ``run_dir``; what cannot be read is noted in ``issues``."""
    if not run_dir.is_dir():
        msg = f"run directory {run_dir} does not exist"
        raise ValidationError(msg)
    issues: list[EvidenceIssue] = []
    record = _read_record(run_dir, issues)
    workers: dict[str, WorkerData] = {}
    for path in natural_sorted((p for p in run_dir.iterdir() if p.is_dir()), key=lambda p: p.name):
        worker = WorkerData(path.name, path)
        worker.events = list(iter_jsonl(path / EVENTS_FILE, run_dir, issues))
        worker.snapshots = list(iter_jsonl(path / SNAPSHOTS_FILE, run_dir, issues))
        worker.crosstalk = list(iter_jsonl(path / CROSSTALK_FILE, run_dir, issues))
        logs_dir = path / "logs"
        worker.logs = sorted(logs_dir.glob("*.log")) if logs_dir.is_dir() else []
        if worker.events or worker.snapshots or worker.logs:
            worker.index()
            workers[worker.worker_id] = worker
        tested = any(s.get("phase") in {"before", "after"} for s in worker.snapshots)
        if tested and not (path / EVENTS_FILE).exists():
            issues.append(
                EvidenceIssue(
                    "missing-events",
                    f"{path.name}/{EVENTS_FILE}",
                    None,
                    f"{path.name}/{SNAPSHOTS_FILE} records tests but the event log is missing",
                    path.name,
                )
            )
    for worker_id, known in _listed_workers(record).items():
        if worker_id in workers:
            continue
        if known.get("status") == "crashed":
            issues.append(
                EvidenceIssue(
                    "crashed-unrecorded",
                    f"{worker_id}/",
                    None,
                    f"worker {worker_id} crashed before it recorded anything",
                    worker_id,
                )
            )
        elif known.get("recorded"):
            issues.append(
                EvidenceIssue(
                    "missing-worker",
                    f"{worker_id}/",
                    None,
                    f"worker {worker_id} recorded its session (says {RUN_FILE}) but its "
                    "directory is missing or empty",
                    worker_id,
                )
            )
    cleanup = list(iter_jsonl(run_dir / CLEANUP_FILE, run_dir, issues))
    return RunData(
        run_dir.name,
        run_dir,
        record,
        workers,
        cleanup,
        issues=issues,
        recorded=(run_dir / RUN_FILE).exists(),
    )
