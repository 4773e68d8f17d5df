"""Child processes we own: marked, tied to their owner, stopped within bounds."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from parallel_isolation.artifacts import FILE_MODE, make_private_dir

__all__ = ["ChildProcess", "RunAs", "die_with_parent", "poll_for_text", "tail"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask the kernel to SIGTERM this child when its parent thread dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def die_with_parent(signum: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies.

    Returns False when the parent was already gone (this process was
    reparented before the request took effect): the caller should end.
    Call it from the main thread, in a process whose parent forked it from
    its main thread (the signal follows the thread that forked).
    """
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signum)
    return os.getppid() == parent


def _stdin_from(text: bytes) -> None:  # pragma: no cover - runs in the child
    """Make standard input a pipe holding ``text``, created by the child itself.

    Created after the child took its user (``subprocess`` switches before it
    calls ``preexec_fn``), the pipe is that user's: it may open it again by
    name (``/dev/stdin``), which a pipe made by the parent would not allow.
    """
    read_end, write_end = os.pipe()
    os.write(write_end, text)  # small (a config file): fits in the pipe's buffer
    os.close(write_end)
    os.dup2(read_end, 0)
    os.close(read_end)


@dataclass(frozen=True)
class RunAs:
    """An unprivileged user for a child started by root (e.g. ``mosquitto``)."""

    name: str
    uid: int
    gid: int

    @classmethod
    def find(cls, *names: str) -> RunAs | None:
        """The first of ``names`` that exists on this host; None when none does."""
        import pwd

        for name in names:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            return cls(name, entry.pw_uid, entry.pw_gid)
        return None


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with path.open(errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except FileNotFoundError:
        return ""


def poll_for_text(
    read: Callable[[], str], needle: str, timeout: float, *, running: Callable[[], bool]
) -> str | None:
    """``read()`` once it contains ``needle``; None when time runs out first, or
    when the writer stopped running and its last output does not hold it.

    For outputs nothing announces (a log file): read again after 10 ms, the
    pause doubling up to 0.2 s.
    """
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        alive = running()
        text = read()
        if needle in text:
            return text
        remaining = deadline - time.monotonic()
        if not alive or remaining <= 0:
            return None
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.2)


class ChildProcess:
    """A child process writing stdout+stderr to ``log_path``.

    Started from the main thread, the child is tied to its parent with
    ``PR_SET_PDEATHSIG`` so a SIGKILLed worker does not leave it behind.
    (From another thread that would fire when the thread ends, so it is not
    used there; the reaper finds such children by their marker variables.)
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
        run_as: RunAs | None = None,
        stdin_text: bytes | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env)
        self.cwd = cwd
        self.run_as = run_as
        self.stdin_text = stdin_text
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        make_private_dir(self.log_path.parent)
        in_main = threading.current_thread() is threading.main_thread()
        text = self.stdin_text

        def prepare() -> None:  # pragma: no cover - runs in the child, after the user switch
            if in_main:
                _die_with_parent()
            if text is not None:
                _stdin_from(text)

        run_as = self.run_as
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        with os.fdopen(fd, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=prepare if in_main or text is not None else None,
                user=None if run_as is None else run_as.uid,
                group=None if run_as is None else run_as.gid,
                extra_groups=None if run_as is None else [],
            )

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def is_running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def stop(self, grace: float = 3.0, kill_wait: float = 2.0) -> int | None:
        """SIGTERM, wait ``grace`` seconds, then SIGKILL; returns the exit code.

        The signals go to the child's process group (it leads its own
        session), so the processes it started (a shell pipeline's) stop too.
        """
        popen = self.popen
        if popen is None:
            return None
        if popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                popen.wait(kill_wait)
        self._sweep_group(grace)
        return popen.returncode

    def _signal_group(self, signum: int) -> None:
        assert self.popen is not None
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            return
        except PermissionError:  # not our group after all: the child alone
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signum)

    def _sweep_group(self, grace: float) -> None:
        """After the leader ended: give what is left of its group ``grace``, then SIGKILL."""
        assert self.popen is not None
        deadline = time.monotonic() + grace
        while True:
            try:
                os.killpg(self.popen.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                return
            threading.Event().wait(0.05)

    def kill(self) -> None:
        """SIGKILL (tests of crash handling use this)."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
