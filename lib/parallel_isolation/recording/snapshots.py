"""Resource snapshots and per-test leak detection, cheap enough to run around every test.

What is recorded, per worker, into the run's artifacts directory:

``<worker>/snapshots.jsonl``
    one line per snapshot: at session start and end (``phase`` ``session_start``
    / ``session_end``, with the listening ports of the worker and its child
    processes) and before and after each test (``before`` / ``after``).
``<worker>/events.jsonl``
    ``test_started`` / ``test_finished`` (outcome, duration, failure excerpt,
    the recorder's own overhead) and ``leak`` events: a thread, a child
    process or a listening socket that a test left alive after its teardown.

A leak is something new since the test's setup began that is still alive
after its teardown ended.  Threads get a short bounded grace: each is joined
with a shared deadline (a thread that is already stopping finishes within
it).  Child processes get the same grace through a pidfd wait.  Not leaks:

* threads and processes created while a fixture of a wider scope than
  ``function`` was being set up (they belong to that scope),
* threads whose name starts with :data:`SESSION_THREAD_PREFIX` (the toolkit's
  own session threads, e.g. the cross-talk spy),
* child processes carrying the toolkit's marker with role ``broker`` (the
  worker's broker, started on first use inside some test).

Cost: the per-test path reads only this process's ``/proc`` entries; child
processes are found incrementally (only pids allocated since the last look
are examined, see :class:`ChildTracker`), and ``/proc/net/tcp`` is parsed only
when a test left new sockets open.  The recorder measures itself
(``overhead_ms`` in ``test_finished``); ``invoke validate`` reports the median.

Nothing is written until the run's artifacts directory exists (some fixture
of ours created it): a session that never used the toolkit leaves no trace.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from parallel_isolation.artifacts import RunArtifacts
from parallel_isolation.host.proc import MARKER_ENV
from parallel_isolation.identity import Identity

__all__ = [
    "EXPECT_MARKER",
    "EXPECT_MARKER_HELP",
    "SESSION_THREAD_PREFIX",
    "ChildTracker",
    "Leak",
    "LeakTracker",
    "SessionRecorder",
    "Snapshot",
    "listening_ports",
    "take_snapshot",
    "wait_exit",
]

SESSION_THREAD_PREFIX = "parallel-isolation"
"""Threads named with this prefix belong to the toolkit's session, never a test."""

SNAPSHOTS_FILE = "snapshots.jsonl"
EXPECT_MARKER = "isolation_expect"

# Cross-talk spies of this process register how to flush them (``spy`` imports
# this module, not the other way round).  A test that expects cross-talk is
# fenced by flushes, so a stray message of an earlier test, received late on a
# busy host, is not taken for this test's deliberate one.
_FLUSHERS: list[Callable[[float], bool]] = []


def register_flusher(flush: Callable[[float], bool]) -> None:
    _FLUSHERS.append(flush)


def unregister_flusher(flush: Callable[[float], bool]) -> None:
    with contextlib.suppress(ValueError):
        _FLUSHERS.remove(flush)


def _flush_spies(timeout: float = 2.0) -> None:
    for flush in list(_FLUSHERS):
        flush(timeout)


EXPECT_MARKER_HELP = (
    f"{EXPECT_MARKER}(*codes, reason=''): this test deliberately causes these validate "
    "findings (e.g. 'crosstalk', 'leak.thread'); invoke validate reports them as info"
)
DEFAULT_GRACE_S = 0.5
_MAX_EXCERPT = 1500
_MAX_BUFFERED = 20_000
_FULL_SCAN_LIMIT = 4096
_LISTEN = "0A"


# ---------------------------------------------------------------------------
# /proc readers


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _stat_fields(pid: int) -> tuple[str, int, int] | None:
    """``(state, ppid, starttime)`` of ``/proc/<pid>/stat``, or None when gone."""
    data = _read(f"/proc/{pid}/stat")
    if data is None:
        return None
    rest = data[data.rfind(b")") + 2 :].split(b" ", 20)
    try:
        return rest[0].decode(), int(rest[1]), int(rest[19])
    except (IndexError, ValueError):
        return None


def _is_process(pid: int) -> bool:
    """True when ``pid`` is a thread-group leader (a process, not a thread)."""
    data = _read(f"/proc/{pid}/status")
    if data is None:
        return False
    for line in data.splitlines():
        if line.startswith(b"Tgid:"):
            return int(line.split()[1]) == pid
    return False


def _last_pid() -> int | None:
    """The pid the kernel allocated last (``/proc/loadavg``, field 5)."""
    data = _read("/proc/loadavg")
    if data is None:
        return None
    try:
        return int(data.split()[4])
    except (IndexError, ValueError):
        return None


def _pid_max() -> int:
    data = _read("/proc/sys/kernel/pid_max")
    try:
        return int(data) if data else 32768
    except ValueError:
        return 32768


def _environ(pid: int) -> dict[str, str]:
    data = _read(f"/proc/{pid}/environ")
    if not data:
        return {}
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _cmdline(pid: int) -> str:
    data = _read(f"/proc/{pid}/cmdline")
    return data.replace(b"\0", b" ").decode(errors="replace").strip()[:300] if data else ""


def _socket_fds(pid: int) -> dict[int, int]:
    """Inode -> fd of the sockets ``pid`` holds open."""
    base = f"/proc/{pid}/fd"
    found: dict[int, int] = {}
    try:
        names = os.listdir(base)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found[int(target[8:-1])] = int(name)
    return found


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets ``pid`` holds open."""
    return set(_socket_fds(pid))


def _own_listening_port(fd: int, inode: int) -> int | None:
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


def _count_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def _listening_inodes() -> dict[int, int]:
    """Inode -> port of every listening TCP socket in this network namespace."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        data = _read(table)
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
    table = _listening_inodes()
    ports: set[int] = set()
    for pid in pids:
        ports.update(table[inode] for inode in _socket_inodes(pid) if inode in table)
    return sorted(ports)


def _memory(pid: int) -> tuple[int, int]:
    """``(rss bytes, OS threads)`` from ``/proc/<pid>/stat``."""
    data = _read(f"/proc/{pid}/stat")
    if data is None:
        return -1, -1
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return int(rest[21]) * os.sysconf("SC_PAGE_SIZE"), int(rest[17])
    except (IndexError, ValueError):
        return -1, -1


# ---------------------------------------------------------------------------
# child processes


class ChildTracker:
    """This process's descendants, found incrementally.

    Pids are allocated in increasing order (modulo ``pid_max``), so a process
    created since the last look has a pid between the last allocated pid seen
    then and the one the kernel reports now (``/proc/loadavg``).  Only those
    pids are examined; a wrap-around or a very long range falls back to a
    full ``/proc`` scan.  Processes are keyed by pid *and* start time, so a
    reused pid is a different process.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.known: dict[int, int] = {}
        self._last_pid: int | None = None
        self._pid_max = _pid_max()
        self.full_scans = 0
        self.scan()

    def alive(self) -> dict[int, int]:
        """pid -> start time of the descendants alive now."""
        self.scan()
        return dict(self.known)

    def scan(self) -> None:
        # Drop the dead (or reused) first, then add the new.
        for pid, start in list(self.known.items()):
            fields = _stat_fields(pid)
            if fields is None or fields[2] != start or fields[0] in {"Z", "X"}:
                del self.known[pid]
        now = _last_pid()
        previous = self._last_pid
        self._last_pid = now
        if now is None or previous is None or now < previous or now - previous > _FULL_SCAN_LIMIT:
            self._full_scan()
            return
        for pid in range(previous + 1, now + 1):
            self._consider(pid)

    def _consider(self, pid: int) -> None:
        fields = _stat_fields(pid)
        if fields is None or fields[0] in {"Z", "X"}:
            return
        parents = {self.pid, *self.known}
        if fields[1] in parents and pid != self.pid and _is_process(pid):
            self.known[pid] = fields[2]

    def _full_scan(self) -> None:
        self.full_scans += 1
        table: dict[int, tuple[int, int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            fields = _stat_fields(int(name))
            if fields is not None and fields[0] not in {"Z", "X"}:
                table[int(name)] = (fields[1], fields[2])
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
            fields = _stat_fields(pid)
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


# ---------------------------------------------------------------------------
# snapshots


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
    rss, threads = _memory(pid)
    alive = children.alive()
    py_threads = threading.enumerate()
    sockets = _socket_inodes(pid)
    listening: tuple[int, ...] | None = None
    names: tuple[str, ...] | None = None
    if full:
        listening = tuple(listening_ports([pid, *alive]))
        names = tuple(sorted(thread.name for thread in py_threads))
    return Snapshot(
        ts=round(time.time(), 4),
        phase=phase,
        test=test,
        pid=pid,
        rss=rss,
        threads=threads,
        py_threads=len(py_threads),
        fds=_count_fds(pid),
        sockets=len(sockets),
        children=tuple(sorted(alive)),
        listening=listening,
        thread_names=names,
        cost_ms=round((time.perf_counter() - started) * 1000, 3),
    )


# ---------------------------------------------------------------------------
# leaks


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
class _Mark:
    threads: set[threading.Thread]
    children: dict[int, int]
    sockets: set[int]


class LeakTracker:
    """Compares threads, child processes and sockets before setup and after teardown."""

    def __init__(self, children: ChildTracker, *, grace: float = DEFAULT_GRACE_S) -> None:
        self.children = children
        self.grace = grace
        self._adopted_threads: set[threading.Thread] = set()
        self._adopted_pids: set[int] = set()

    def begin(self) -> _Mark:
        return _Mark(
            threads=set(threading.enumerate()),
            children=self.children.alive(),
            sockets=_socket_inodes(os.getpid()),
        )

    def adopt(self, mark: _Mark) -> None:
        """Everything new since ``mark`` belongs to a wider scope than one test."""
        self._adopted_threads.update(set(threading.enumerate()) - mark.threads)
        self._adopted_pids.update(set(self.children.alive()) - set(mark.children))

    def end(self, mark: _Mark) -> list[Leak]:
        deadline = time.monotonic() + self.grace
        leaks = self._thread_leaks(mark, deadline)
        leaks.extend(self._process_leaks(mark, deadline))
        leaks.extend(self._socket_leaks(mark))
        self._adopted_threads = {t for t in self._adopted_threads if t.is_alive()}
        return leaks

    def _thread_leaks(self, mark: _Mark, deadline: float) -> list[Leak]:
        fresh = [
            thread
            for thread in threading.enumerate()
            if thread not in mark.threads
            and thread not in self._adopted_threads
            and not thread.name.startswith(SESSION_THREAD_PREFIX)
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

    def _process_leaks(self, mark: _Mark, deadline: float) -> list[Leak]:
        alive = self.children.alive()
        fresh = [
            pid
            for pid, start in alive.items()
            if mark.children.get(pid) != start and pid not in self._adopted_pids
        ]
        candidates = []
        for pid in fresh:
            env = _environ(pid)
            if env.get(MARKER_ENV) and env.get("ISOLATION_ROLE") == "broker":
                self._adopted_pids.add(pid)
                continue
            candidates.append(pid)
        leaks = []
        for pid in sorted(wait_exit(candidates, deadline)):
            env = _environ(pid)
            detail: dict[str, Any] = {"pid": pid, "cmdline": _cmdline(pid)}
            if env.get(MARKER_ENV):
                detail["role"] = env.get("ISOLATION_ROLE", "")
            name = detail["cmdline"].split(" ", 1)[0].rsplit("/", 1)[-1] or str(pid)
            leaks.append(Leak("process", name, detail))
        self._adopted_pids &= set(alive)
        return leaks

    def _socket_leaks(self, mark: _Mark) -> list[Leak]:
        leaks = []
        for inode, fd in sorted(_socket_fds(os.getpid()).items()):
            if inode in mark.sockets:
                continue
            port = _own_listening_port(fd, inode)
            if port is not None:
                leaks.append(
                    Leak("listening_socket", f"port {port}", {"port": port, "inode": inode})
                )
        return leaks


# ---------------------------------------------------------------------------
# the recorder behind the pytest hooks


class _Writer:
    """Appends JSON lines under the run directory once it exists; buffers until then."""

    def __init__(self, artifacts: RunArtifacts) -> None:
        self.artifacts = artifacts
        self._pending: list[tuple[Path, str]] = []
        self._ready = False
        self._lock = threading.Lock()
        self.dropped = 0

    def write(self, name: str, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str) + "\n"
        path = self.artifacts.worker_dir / name
        with self._lock:
            if not self._open():
                if len(self._pending) < _MAX_BUFFERED:
                    self._pending.append((path, line))
                else:
                    self.dropped += 1
                return
            _append(path, line)

    def flush(self) -> None:
        """Write what is buffered if the run directory exists by now."""
        with self._lock:
            self._open()

    def _open(self) -> bool:
        if self._ready:
            return True
        if not self.artifacts.run_dir.exists():
            return False
        self._ready = True
        self.artifacts.worker_dir.mkdir(parents=True, exist_ok=True)
        pending, self._pending = self._pending, []
        for old_path, old_line in pending:
            _append(old_path, old_line)
        return True


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


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
        self, identity: Identity, artifacts: RunArtifacts, *, grace: float = DEFAULT_GRACE_S
    ) -> None:
        self.identity = identity
        self.writer = _Writer(artifacts)
        self.children = ChildTracker()
        self.leaks = LeakTracker(self.children, grace=grace)
        self._outcomes: dict[str, str] = {}
        self._failures: dict[str, str] = {}

    @classmethod
    def for_run(cls, identity: Identity, artifacts_root: Path) -> SessionRecorder:
        return cls(identity, RunArtifacts(artifacts_root, identity))

    # -- records -------------------------------------------------------

    def emit(self, kind: str, **fields: Any) -> None:
        record = {
            "ts": round(time.time(), 4),
            "kind": kind,
            "worker": self.identity.worker_id,
            **fields,
        }
        self.writer.write("events.jsonl", record)

    def snapshot(self, phase: str, test: str | None = None, *, full: bool = False) -> Snapshot:
        snap = take_snapshot(phase, test=test, children=self.children, full=full)
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

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        if fixturedef.scope == "function":
            return (yield)
        mark = self.leaks.begin()
        try:
            return (yield)
        finally:
            self.leaks.adopt(mark)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, Any, Any]:
        started = time.perf_counter()
        nodeid = item.nodeid
        mark = self.leaks.begin()
        self.snapshot("before", nodeid)
        expect = item.get_closest_marker(EXPECT_MARKER)
        fenced = expect is not None and "crosstalk" in expect.args
        if fenced:
            _flush_spies()
        if expect is None:
            self.emit("test_started", test=nodeid)
        else:
            self.emit("test_started", test=nodeid, expect=[str(code) for code in expect.args])
        began = time.time()
        overhead = time.perf_counter() - started
        try:
            return (yield)
        finally:
            if fenced:
                _flush_spies()
            ended = time.time()
            checked = time.perf_counter()
            leaks = self.leaks.end(mark)
            if not leaks:  # waiting out a leaking thread's grace is the test's cost
                overhead += time.perf_counter() - checked
            resumed = time.perf_counter()
            self.snapshot("after", nodeid)
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
            fields["overhead_ms"] = round(overhead * 1000, 3)
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


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """JSON-lines records of ``path``; torn or foreign lines are skipped."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return
    for raw in text.splitlines():
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record
