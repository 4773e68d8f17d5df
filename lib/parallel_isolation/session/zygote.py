"""Fork xdist workers from a process that has already imported pytest.

Every xdist worker is a fresh ``python -c`` that imports pytest, execnet and
the plugins before it can collect: about 0.2 s of CPU each.  Twelve workers
on two cores spend a second or more of wall time on that alone, before the
first test runs.  With ``--isolation-fork-workers`` the controller starts one
*zygote* that imports those modules once and then forks a worker per request.

The pieces, all in this file so that the launcher needs nothing but the
standard library (it runs with ``python -S -E``):

* the **zygote** (``serve``): single-threaded, listens on a Unix socket.  A
  request carries the launcher's stdin/stdout/stderr (as file descriptors),
  its environment, working directory and ``-c`` code.  The zygote forks; the
  child takes those descriptors as 0/1/2, adopts the environment and runs the
  code as ``__main__``, exactly what ``python -c`` would have done, then exits
  through the normal interpreter shutdown.  The zygote sends the child's pid,
  later its exit status, and SIGKILLs the child if the launcher goes away.
  It exits when its standard input (a pipe from the controller) closes.
* the **launcher** (``launch``): what execnet starts instead of the Python
  interpreter (``popen//python=...``).  It hands its descriptors to the
  zygote, forwards SIGTERM/SIGHUP to the child, and exits with the child's
  status (re-raising the same signal when the child was killed by one).

What is preloaded (:data:`PRELOAD`, plus what the caller adds, such as the
Docker SDK on the docker backend) is imported only: nothing in those modules
computes per-process state (pids, connections) at import.
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import os
import select
import signal
import socket
import struct
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["PRELOAD", "READY", "Zygote", "ZygoteError", "launch", "serve"]

# Imported by the zygote before it forks.  Not the plugins named with -p
# (parallel_isolation.plugin, xdist.plugin and xdist.remote, which imports it):
# pytest rewrites their asserts on import and warns if they are already loaded.
# This package's modules only define things at import; nothing in them
# depends on the process until it is called.
PRELOAD = ("pytest", "execnet", "paho.mqtt.client", "psutil", "filelock", "parallel_isolation")
READY = b"zygote-ready\n"
_INT = struct.Struct("!i")
_MAX_REQUEST = 1 << 20


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return data
        data += chunk
    return data


# --- the launcher ---------------------------------------------------------------------


def launch(socket_path: str, argv: list[str]) -> int:
    """Run ``python [-u] -c CODE`` as a fork of the zygote; returns the exit code."""
    if "-c" not in argv or argv.index("-c") + 1 >= len(argv):
        sys.stderr.write(f"parallel-isolation launcher: expected -c CODE, got {argv!r}\n")
        return 2
    code = argv[argv.index("-c") + 1]
    # Signals are taken from the start: one that arrives before the worker
    # exists is handed on as soon as it does (the default action would kill
    # the launcher, and through it the worker, with SIGKILL).
    child: list[int] = []
    pending: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        if not child:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child[0], signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    # Ctrl-C reaches the worker through the process group already.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    request = json.dumps({"code": code, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(socket_path)
        conn.sendall(_INT.pack(len(request)))
        fds = array.array("i", [0, 1, 2])
        conn.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        raw_pid = _recv_exact(conn, _INT.size)
    except OSError as error:
        sys.stderr.write(f"parallel-isolation launcher: zygote at {socket_path}: {error}\n")
        return 2
    if len(raw_pid) != _INT.size:
        sys.stderr.write("parallel-isolation launcher: the zygote closed without forking\n")
        return 2
    child.append(_INT.unpack(raw_pid)[0])
    for signum in pending:
        forward(signum, None)
    # The worker owns the pipes now; our copies would delay the peer's EOF.
    os.close(0)
    os.close(1)
    raw_status = _recv_exact(conn, _INT.size)
    if len(raw_status) != _INT.size:
        sys.stderr.write("parallel-isolation launcher: lost the zygote before the worker ended\n")
        return 2
    status: int = _INT.unpack(raw_status)[0]
    if status < 0:
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        return 128 - status
    return status


# --- the zygote -----------------------------------------------------------------------

# A launcher sends its request right after connecting; one that has not within
# this many seconds (stopped, or not a launcher at all) is dropped, so it
# cannot hold up the others.
_REQUEST_TIMEOUT = 60.0


class _Pending:
    """A launcher whose request is still arriving: the bytes and descriptors so far."""

    __slots__ = ("deadline", "fds", "header", "payload")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.header = b""
        self.payload = b""
        self.fds: list[int] = []

    def close_fds(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


def _say(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"parallel-isolation zygote: {message}\n")
        sys.stderr.flush()


def _read_request(
    conn: socket.socket, pending: _Pending
) -> tuple[dict[str, Any], list[int]] | None:
    """Read what has arrived; the request and its descriptors once complete, else None.

    Raises :class:`OSError` or :class:`ValueError` for a launcher that hung up
    or sent something that is not a request.
    """
    fds = array.array("i")
    if len(pending.header) < _INT.size:
        want = _INT.size - len(pending.header)
    else:
        want = _INT.unpack(pending.header)[0] - len(pending.payload)
    chunk, ancillary, _flags, _addr = conn.recvmsg(want, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    pending.fds.extend(fds)
    if not chunk:
        msg = "launcher hung up in the middle of its request"
        raise OSError(msg)
    if len(pending.header) < _INT.size:
        pending.header += chunk
        if len(pending.header) < _INT.size:
            return None
        size = _INT.unpack(pending.header)[0]
        if not 0 < size <= _MAX_REQUEST:
            msg = f"bad request size {size}"
            raise ValueError(msg)
        return None
    pending.payload += chunk
    if len(pending.payload) < _INT.unpack(pending.header)[0]:
        return None
    if len(pending.fds) != 3:
        msg = f"expected 3 file descriptors, got {len(pending.fds)}"
        raise ValueError(msg)
    request = json.loads(pending.payload)
    if not (
        isinstance(request, dict)
        and isinstance(request.get("code"), str)
        and isinstance(request.get("cwd"), str)
        and isinstance(request.get("env"), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in request["env"].items())
    ):
        msg = "the request is not an object with code, cwd and env strings"
        raise ValueError(msg)
    fds_taken, pending.fds = pending.fds, []
    return request, fds_taken


def _become_worker(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: take the launcher's place and run its code; never returns."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = ["-c"]
    sys.path[0] = ""
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    exec(compile(request["code"], "<string>", "exec"), main.__dict__)
    raise SystemExit(0)


def serve(socket_path: str, extra: tuple[str, ...] = ()) -> None:
    """The zygote: returns when standard input reaches EOF.

    In a forked worker the loop returns the launcher's request instead, and
    the worker's code runs here, outside the loop: whatever it raises (or how
    it exits) is the worker's own end, never the loop's business.
    """
    for name in (*PRELOAD, *extra):
        __import__(name)
    # Keep the collector off the preloaded objects, so the forked workers do
    # not copy every page of them on their first collection.
    gc.freeze()
    work = _Server(socket_path).run()
    if work is not None:
        _become_worker(*work)


class _Server:
    """The zygote's loop and what it tracks.

    One connection's trouble (a reset, a broken pipe, a bad or partial
    request, a launcher that dies before its worker exists) ends that
    connection only, and the worker of a launcher that went away is
    SIGKILLed whatever way it went.  Every other launcher and worker goes on.
    """

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.server_pid = os.getpid()
        # worker pid -> its launcher's connection (None once the launcher is gone)
        self.children: dict[int, socket.socket | None] = {}
        self.pending: dict[socket.socket, _Pending] = {}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.wake_r, self.wake_w = os.pipe()

    def run(self) -> tuple[dict[str, Any], list[int]] | None:
        """Serve until standard input closes (None); in a forked worker, its request."""
        import time

        old_umask = os.umask(0o177)  # the socket is born 0600: only this user connects
        try:
            self.listener.bind(self.socket_path)
        finally:
            os.umask(old_umask)
        self.listener.listen(64)
        self.listener.setblocking(False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        sys.stdout.buffer.write(READY)
        sys.stdout.flush()
        try:
            while True:
                launchers = [c for c in self.children.values() if c is not None]
                watched: list[Any] = [0, self.listener, self.wake_r, *self.pending, *launchers]
                now = time.monotonic()
                deadlines = [p.deadline for p in self.pending.values()]
                timeout = max(0.0, min(deadlines) - now) if deadlines else None
                readable, _, _ = select.select(watched, [], [], timeout)
                if self.wake_r in readable:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                self._reap()
                if 0 in readable and not os.read(0, 4096):
                    return None
                if self.listener in readable:
                    self._accept(time.monotonic() + _REQUEST_TIMEOUT)
                # Launchers of running workers first: a request completed below
                # moves its connection there, and it was readable for the request.
                for pid, conn in list(self.children.items()):
                    if conn is not None and conn in readable:
                        self._check_launcher(pid, conn)
                for conn in [c for c in self.pending if c in readable]:
                    work = self._advance(conn)
                    if work is not None:
                        return work  # only in the forked worker
                self._expire(time.monotonic())
        finally:
            if os.getpid() == self.server_pid:
                self.listener.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.socket_path)

    def _accept(self, deadline: float) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        except OSError as error:  # out of descriptors, say: the launcher will retry or fail
            _say(f"cannot accept a launcher: {error}")
            select.select([], [], [], 0.1)  # not a busy loop while the condition lasts
            return
        # Never wait on one launcher: reads follow select, and the few bytes we
        # send fit in any socket buffer.
        conn.setblocking(False)
        self.pending[conn] = _Pending(deadline)

    def _drop(self, conn: socket.socket, why: str) -> None:
        pending = self.pending.pop(conn, None)
        if pending is not None:
            pending.close_fds()
        _say(f"dropped a launcher: {why}")
        with contextlib.suppress(OSError):
            conn.close()

    def _expire(self, now: float) -> None:
        for conn, pending in list(self.pending.items()):
            if pending.deadline <= now:
                self._drop(conn, f"no complete request within {_REQUEST_TIMEOUT:.0f} s")

    def _advance(self, conn: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
        """Read more of a pending request; fork once it is complete."""
        try:
            done = _read_request(conn, self.pending[conn])
        except BlockingIOError:  # woken for nothing: wait for more
            return None
        except (OSError, ValueError) as error:
            self._drop(conn, f"bad request: {error}")
            return None
        if done is None:
            return None
        del self.pending[conn]
        request, fds = done
        try:
            pid = os.fork()
        except OSError as error:
            for fd in fds:
                os.close(fd)
            _say(f"cannot fork a worker: {error}")
            conn.close()  # the launcher reports that the zygote closed without forking
            return None
        if pid == 0:
            self._become_child(conn)
            return request, fds
        for fd in fds:
            os.close(fd)
        self.children[pid] = conn
        try:
            conn.sendall(_INT.pack(pid))
        except OSError as error:  # the launcher died before its worker existed
            self._launcher_gone(pid, conn, f"could not send the worker's pid: {error}")
        return None

    def _become_child(self, conn: socket.socket) -> None:
        """In the forked child: let go of everything the zygote holds."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)
        self.listener.close()
        for other in (*self.pending, *self.children.values()):
            if other is not None:
                other.close()
        for pending in self.pending.values():
            pending.close_fds()
        conn.close()

    def _check_launcher(self, pid: int, conn: socket.socket) -> None:
        """A launcher's socket is readable: it sends nothing after its request, so it is gone."""
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError as error:  # a reset: the launcher died with our bytes unread
            self._launcher_gone(pid, conn, str(error))
            return
        if not data:
            self._launcher_gone(pid, conn, "")
            return
        # Bytes a launcher never sends: the connection is not trusted any more,
        # but the worker is alive and its launcher may be too; keep waiting.
        _say(f"ignored unexpected bytes from the launcher of worker {pid}")

    def _launcher_gone(self, pid: int, conn: socket.socket, why: str) -> None:
        """The launcher died (killed by its controller, say): so does its worker."""
        if why:
            _say(f"the launcher of worker {pid} went away ({why}); killing the worker")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            conn.close()
        if pid in self.children:
            self.children[pid] = None

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.children:
                continue
            conn = self.children.pop(pid)
            if conn is None:
                continue
            with contextlib.suppress(OSError):
                conn.sendall(_INT.pack(os.waitstatus_to_exitcode(status)))
            with contextlib.suppress(OSError):
                conn.close()


# --- the controller's handle -----------------------------------------------------------


class ZygoteError(RuntimeError):
    """The zygote did not come up; the message says why (and the run falls back)."""


class Zygote:
    """The controller's zygote: ``start()``, hand :meth:`python_spec` to execnet, ``stop()``."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        preload: tuple[str, ...] = (),
        start_timeout: float = 30.0,
        log_path: Path | None = None,
    ) -> None:
        self.env = dict(env)
        self.preload = preload
        self.start_timeout = start_timeout
        # Where the zygote's own diagnostics go (dropped launchers, say);
        # None: the caller's standard error.
        self.log_path = log_path
        self.directory: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> str:
        """Where the zygote listens (a fresh private directory per zygote)."""
        if self.directory is None:
            msg = "the zygote is not started"
            raise ZygoteError(msg)
        return str(self.directory / "zygote.sock")

    def python_spec(self) -> str:
        """The ``python=`` value of an execnet popen spec that forks from this zygote."""
        import shlex

        # execnet splits this with shlex: quote, in case a path has spaces.
        return shlex.join([sys.executable, "-S", "-E", __file__, "launch", self.socket_path])

    def start(self) -> None:
        """Start the zygote and wait until it listens; :class:`ZygoteError` otherwise."""
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the zygote without waiting (it imports while the caller goes on)."""
        import subprocess
        import tempfile
        from pathlib import Path

        from parallel_isolation.host.proc import _die_with_parent

        self.directory = Path(tempfile.mkdtemp(prefix="isolation-zygote-"))  # mode 0700
        log = None if self.log_path is None else self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-u", __file__, "serve", self.socket_path, *self.preload],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=self.env,
                preexec_fn=_die_with_parent,
            )
        finally:
            if log is not None:
                log.close()

    def wait_ready(self) -> None:
        """Wait until the zygote listens; :class:`ZygoteError` (and stopped) otherwise."""
        if self.process is None or self.process.stdout is None:
            msg = "the zygote was not spawned"
            raise ZygoteError(msg)
        ready, _, _ = select.select([self.process.stdout], [], [], self.start_timeout)
        line = self.process.stdout.readline() if ready else b""
        if line != READY:
            self.stop()
            why = "exited" if line == b"" else f"said {line!r}"
            msg = f"the worker zygote {why} instead of getting ready within {self.start_timeout:.0f} s"
            raise ZygoteError(msg)

    def stop(self, timeout: float = 10.0) -> None:
        """Close the zygote's input (it exits), wait ``timeout`` s, then kill it."""
        import shutil
        import subprocess

        process, self.process = self.process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
            if process.stdout is not None:
                process.stdout.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


if __name__ == "__main__":
    # Run as a file, Python put this package's directory first on sys.path,
    # where its modules would shadow top-level names: make it what
    # ``python -c`` has, the current directory.
    sys.path[0] = ""
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2], tuple(sys.argv[3:]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "launch":
        sys.exit(launch(sys.argv[2], sys.argv[3:]))
    else:
        sys.stderr.write("usage: zygote.py serve SOCKET [MODULE...] | launch SOCKET [-u] -c CODE\n")
        sys.exit(2)
