"""The recorder: pytest hooks that snapshot a worker and find leaks per test.

What it writes, per worker, into the run's artifacts directory:

``<worker>/snapshots.jsonl``
    a :class:`~parallel_isolation.recording.snapshots.Snapshot` at session
    start and end and before and after each test;
``<worker>/events.jsonl``
    ``test_started`` / ``test_finished`` (outcome, duration, failure excerpt,
    the recorder's own overhead) and ``leak`` events
    (:mod:`parallel_isolation.recording.leaks`).

A test marked ``isolation_expect("crosstalk")`` is fenced by flushes of the
worker's cross-talk spy (``flush_crosstalk``, handed in by the plugin): a
stray message of an earlier test, received late on a busy host, is not taken
for this test's deliberate one.

Nothing is written until the run's artifacts directory exists (some fixture
of ours created it): a session that never used the toolkit leaves no trace.

The recorder never ends a session: a snapshot, leak check or fence that
fails (a ``/proc`` read refused, say) is recorded as a ``recorder_error``
event (the first few of each kind) and the tests go on; a record the disk
refuses is counted by the writer (:class:`~parallel_isolation.artifacts.JsonlWriter`).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from parallel_isolation.artifacts import EVENTS_FILE, SNAPSHOTS_FILE, DeferredWriter, RunArtifacts
from parallel_isolation.host.procfs import ChildTracker
from parallel_isolation.identity import Identity
from parallel_isolation.recording.leaks import DEFAULT_GRACE_S, Leak, LeakMark, LeakTracker
from parallel_isolation.recording.snapshots import Snapshot, take_snapshot

__all__ = ["EXPECT_MARKER", "EXPECT_MARKER_HELP", "RECORDED_KEY", "SessionRecorder"]

EXPECT_MARKER = "isolation_expect"
EXPECT_MARKER_HELP = (
    f"{EXPECT_MARKER}(*codes, reason=''): this test deliberately causes these validate "
    "findings (e.g. 'crosstalk', 'leak.thread'); parallel-isolation validate reports them as info"
)
_MAX_EXCERPT = 1500
_MAX_ERROR_EVENTS = 5  # per step: a step failing for every test says so five times
T = TypeVar("T")
RECORDED_KEY = "parallel_isolation_recorded"
"""Key of the worker's ``workeroutput``: did the recorder write the worker's directory?"""


def _excerpt(report: pytest.TestReport) -> str:
    text = report.longreprtext or ""
    if len(text) <= _MAX_EXCERPT:
        return text
    return "...\n" + text[-_MAX_EXCERPT:]


class SessionRecorder:
    """pytest hooks that snapshot a worker and find leaks per test.

    Registered by the plugin in every process that runs tests (an xdist
    worker or a run without xdist), never in the xdist controller.
    """

    def __init__(
        self,
        identity: Identity,
        artifacts: RunArtifacts,
        *,
        grace: float = DEFAULT_GRACE_S,
        flush_crosstalk: Callable[[float], object] | None = None,
    ) -> None:
        self.identity = identity
        self.flush_crosstalk = flush_crosstalk
        self.writer = DeferredWriter(artifacts)
        self.children = ChildTracker()
        self.leaks = LeakTracker(self.children, grace=grace)
        self._outcomes: dict[str, str] = {}
        self._failures: dict[str, str] = {}
        self.errors: dict[str, int] = {}

    @classmethod
    def for_run(
        cls,
        identity: Identity,
        artifacts_root: Path,
        *,
        flush_crosstalk: Callable[[float], object] | None = None,
    ) -> SessionRecorder:
        return cls(
            identity, RunArtifacts(artifacts_root, identity), flush_crosstalk=flush_crosstalk
        )

    def _fence(self) -> None:
        if self.flush_crosstalk is not None:
            flush = self.flush_crosstalk
            self._guarded("crosstalk fence", lambda: flush(2.0), None)

    def _guarded(self, step: str, call: Callable[[], T], fallback: T) -> T:
        """``call()``, or ``fallback`` when it fails: one bad step must not end the session."""
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - recorded; the tests go on
            count = self.errors[step] = self.errors.get(step, 0) + 1
            if count <= _MAX_ERROR_EVENTS:
                self.emit(
                    "recorder_error",
                    step=step,
                    error=f"{type(error).__name__}: {error}",
                    count=count,
                )
            return fallback

    # -- records -------------------------------------------------------

    def emit(self, kind: str, **fields: Any) -> None:
        record = {
            "ts": round(time.time(), 4),
            "kind": kind,
            "worker": self.identity.worker_id,
            **fields,
        }
        self.writer.write(EVENTS_FILE, record)

    def snapshot(
        self,
        phase: str,
        test: str | None = None,
        *,
        full: bool = False,
        look: LeakMark | None = None,
    ) -> Snapshot | None:
        """Take and write a snapshot; None (and a ``recorder_error`` event) if it fails."""
        return self._guarded(
            f"{phase} snapshot", lambda: self._snapshot(phase, test, full, look), None
        )

    def _snapshot(
        self, phase: str, test: str | None, full: bool, look: LeakMark | None
    ) -> Snapshot:
        snap = take_snapshot(phase, test=test, children=self.children, full=full, look=look)
        record = {"worker": self.identity.worker_id, **snap.as_record()}
        if full:
            record["run"] = self.identity.run_id
            record["owner"] = self.identity.owner.as_dict()
        self.writer.write(SNAPSHOTS_FILE, record)
        return snap

    # -- hooks -----------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.snapshot("session_start", full=True)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # Objects in reference cycles (paho clients, with their socket pairs)
        # hold descriptors until the cyclic collector runs: collect first, so
        # that what the end snapshot shows is really still referenced.
        gc.collect()
        self.snapshot("session_end", full=True)
        # An xdist worker tells the controller whether it left a directory
        # (validate then knows a missing one is evidence lost, not "unused").
        output = getattr(session.config, "workeroutput", None)
        if isinstance(output, dict):
            output[RECORDED_KEY] = self.writer.wrote

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        if fixturedef.scope == "function":
            return (yield)
        mark = self._guarded("leak mark", self.leaks.begin, None)
        try:
            return (yield)
        finally:
            if mark is not None:
                self._guarded("leak adopt", lambda: self.leaks.adopt(mark), None)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, Any, Any]:
        started = time.perf_counter()
        cpu_started = time.thread_time()
        nodeid = item.nodeid
        mark = self._guarded("leak mark", self.leaks.begin, None)
        self.snapshot("before", nodeid, look=mark)
        expect = item.get_closest_marker(EXPECT_MARKER)
        fenced = expect is not None and "crosstalk" in expect.args
        if fenced:
            self._fence()
        if expect is None:
            self.emit("test_started", test=nodeid)
        else:
            self.emit("test_started", test=nodeid, expect=[str(code) for code in expect.args])
        began = time.time()
        overhead = time.perf_counter() - started
        cpu = time.thread_time() - cpu_started
        try:
            return (yield)
        finally:
            if fenced:
                self._fence()
            ended = time.time()
            checked = time.perf_counter()
            cpu_checked = time.thread_time()
            found: list[Leak] | None = None
            if mark is not None:
                found = self._guarded("leak check", lambda: self.leaks.end(mark), None)
            leaks = found or []
            if not leaks:  # waiting out a leaking thread's grace is the test's cost
                overhead += time.perf_counter() - checked
            cpu += time.thread_time() - cpu_checked
            resumed = time.perf_counter()
            cpu_resumed = time.thread_time()
            # The look the leak check took after the test, unless that check failed.
            self.snapshot("after", nodeid, look=self.leaks.after if found is not None else None)
            for leak in leaks:
                self.emit("leak", test=nodeid, what=leak.what, name=leak.name, **leak.detail)
            fields: dict[str, Any] = {
                "test": nodeid,
                "outcome": self._outcomes.pop(nodeid, "unknown"),
                "duration": round(ended - began, 4),
                "leaks": len(leaks),
            }
            failure = self._failures.pop(nodeid, None)
            if failure:
                fields["failure"] = failure
            overhead += time.perf_counter() - resumed
            cpu += time.thread_time() - cpu_resumed
            # Wall time is what the test waits; CPU time is what the work
            # costs (on a loaded host the wall time also holds the waits for
            # a CPU).
            fields["overhead_ms"] = round(overhead * 1000, 3)
            fields["overhead_cpu_ms"] = round(cpu * 1000, 3)
            self.emit("test_finished", **fields)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        # The fixtures are set up: if one of ours created the run directory,
        # make ``test_started`` durable before the body runs (it may kill us).
        self.writer.flush()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        previous = self._outcomes.get(report.nodeid)
        if report.failed:
            if previous not in {"failed", "error"}:
                self._outcomes[report.nodeid] = "failed" if report.when == "call" else "error"
                self._failures[report.nodeid] = _excerpt(report)
        elif report.skipped:
            if previous in {None, "passed"}:
                self._outcomes[report.nodeid] = (
                    "xfailed" if hasattr(report, "wasxfail") else "skipped"
                )
        elif report.when == "call" and previous is None:
            self._outcomes[report.nodeid] = "xpassed" if hasattr(report, "wasxfail") else "passed"
