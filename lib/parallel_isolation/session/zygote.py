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


def _receive_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    header = _recv_exact(conn, _INT.size)
    if len(header) != _INT.size:
        msg = "launcher hung up before its request"
        raise OSError(msg)
    size = _INT.unpack(header)[0]
    if not 0 < size <= _MAX_REQUEST:
        msg = f"bad request size {size}"
        raise OSError(msg)
    fds = array.array("i")
    payload = b""
    while len(payload) < size:
        chunk, ancillary, _flags, _addr = conn.recvmsg(
            size - len(payload), socket.CMSG_LEN(3 * fds.itemsize)
        )
        if not chunk:
            msg = "launcher hung up in the middle of its request"
            raise OSError(msg)
        payload += chunk
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        msg = f"expected 3 file descriptors, got {len(fds)}"
        raise OSError(msg)
    return json.loads(payload), list(fds)


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
    """The zygote's loop; returns when standard input reaches EOF."""
    for name in (*PRELOAD, *extra):
        __import__(name)
    # Keep the collector off the preloaded objects, so the forked workers do
    # not copy every page of them on their first collection.
    gc.freeze()
    server_pid = os.getpid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    children: dict[int, socket.socket] = {}
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    try:
        while True:
            watched: list[Any] = [0, listener, wake_r, *children.values()]
            readable, _, _ = select.select(watched, [], [])
            if wake_r in readable:
                os.read(wake_r, 4096)
            _reap(children)
            if 0 in readable and not os.read(0, 4096):
                return
            if listener in readable:
                conn, _ = listener.accept()
                try:
                    request, fds = _receive_request(conn)
                except (OSError, ValueError) as error:
                    sys.stderr.write(f"parallel-isolation zygote: bad request: {error}\n")
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    for fd in (wake_r, wake_w):
                        os.close(fd)
                    listener.close()
                    for other in children.values():
                        other.close()
                    conn.close()
                    _become_worker(request, fds)
                for fd in fds:
                    os.close(fd)
                conn.sendall(_INT.pack(pid))
                children[pid] = conn
            for pid, conn in list(children.items()):
                if conn in readable and not conn.recv(1):
                    # The launcher died (killed by its controller): so does the worker.
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
    finally:
        if os.getpid() == server_pid:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is None:
            continue
        with contextlib.suppress(OSError):
            conn.sendall(_INT.pack(os.waitstatus_to_exitcode(status)))
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
    ) -> None:
        self.env = dict(env)
        self.preload = preload
        self.start_timeout = start_timeout
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

        self.directory = Path(tempfile.mkdtemp(prefix="isolation-zygote-"))
        self.process = subprocess.Popen(
            [sys.executable, "-u", __file__, "serve", self.socket_path, *self.preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
            preexec_fn=_die_with_parent,
        )

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
