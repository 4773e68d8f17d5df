"""A process a test starts itself, with the guarantees of the toolkit's own.

:meth:`ParallelTestContext.popen <parallel_isolation.session.context.ParallelTestContext.popen>`
returns a :class:`TestProcess`: it carries the owner marker variables (so
``parallel-isolation validate`` reports it if it outlives its run and
``parallel-isolation cleanup-orphans`` removes it once its owner is dead),
dies with its worker (``PR_SET_PDEATHSIG`` when started from the main thread),
writes stdout and stderr into the run's logs, and is stopped at the end of
the test: SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from parallel_isolation.host.proc import ChildProcess, poll_for_text, tail

__all__ = ["ProcessStartError", "TestProcess", "resolve_executable", "wait_for_log"]


class ProcessStartError(RuntimeError):
    """A process could not be started; the message names it and what to change."""


class _Logging(Protocol):
    """What ``wait_for_log`` needs of a process, service or container."""

    def is_running(self) -> bool: ...

    def log_text(self) -> str: ...

    def log_tail(self, lines: int = 20) -> str: ...

    def describe(self) -> str: ...


def wait_for_log(
    owner: _Logging,
    text: str,
    timeout: float,
    wait: Callable[[], str | None] | None = None,
) -> str:
    """``owner``'s log once ``text`` is in it, else :class:`TimeoutError` naming it
    with its log's end.  ``wait`` (the log once it holds ``text``, or None) is how
    to wait; by default the log is read again until the deadline or the end."""
    if wait is None:
        found = poll_for_text(owner.log_text, text, timeout, running=owner.is_running)
    else:
        found = wait()
    if found is not None:
        return found
    why = f"not within {timeout:.1f} s" if owner.is_running() else "and it is no longer running"
    tail = owner.log_tail() or "(empty)"
    msg = f"{owner.describe()}: {text!r} is not in its log ({why}); its log ends:\n{tail}"
    raise TimeoutError(msg)


def resolve_executable(
    program: str, *, cwd: Path | None, env: Mapping[str, str], owner: str
) -> str:
    """The path of ``program``: relative to ``cwd`` when it has a slash, else from ``PATH``.

    ``owner`` names who wants it ("service 'x'", "process 'y'") in the error.
    """
    if not program:
        msg = f"{owner}: the command is empty; give the program to run as its first element"
        raise ProcessStartError(msg)
    if "/" in program:
        path = Path(program)
        if not path.is_absolute():
            path = (cwd or Path.cwd()) / path
        if not path.is_file():
            msg = f"{owner}: command {program!r} does not exist (looked for {path})"
            raise ProcessStartError(msg)
        if not os.access(path, os.X_OK):
            msg = f"{owner}: command {path} is not executable (chmod +x it, or run it through its interpreter)"
            raise ProcessStartError(msg)
        return str(path)
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        msg = (
            f"{owner}: command {program!r} is not on PATH ({env.get('PATH', os.defpath)}); "
            "install it, or give its full path"
        )
        raise ProcessStartError(msg)
    return found


class TestProcess:
    """A child process of a test: marked, logged, stopped at teardown.

    ``argv`` is what was run; :attr:`log_path` holds its stdout and stderr.
    """

    __test__ = False

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
        grace: float = 5.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.grace = grace
        self._child = ChildProcess(self.argv, log_path=log_path, env=env, cwd=cwd)

    def start(self) -> TestProcess:
        try:
            self._child.start()
        except OSError as error:
            msg = f"process {self.name!r}: cannot start {self.argv[0]!r}: {error}"
            raise ProcessStartError(msg) from None
        return self

    @property
    def pid(self) -> int | None:
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once it has ended (negative: killed by that signal), else None."""
        return self._child.returncode()

    def is_running(self) -> bool:
        return self._child.is_running()

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for it to end; its exit status.

        Raises :class:`TimeoutError` naming the process and its log tail.
        """
        popen = self._child.popen
        assert popen is not None, "wait() before start()"
        try:
            return popen.wait(timeout)
        except subprocess.TimeoutExpired:
            msg = f"{self.describe()} still running after {timeout:.1f} s; its log:\n{self.log_tail()}"
            raise TimeoutError(msg) from None

    def stop(self, grace: float | None = None) -> int | None:
        """SIGTERM, ``grace`` seconds (default: the one given at start), then SIGKILL."""
        return self._child.stop(grace=self.grace if grace is None else grace)

    def kill(self) -> None:
        self._child.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log_path, lines) or "(empty)"

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Its log once ``text`` is in it; :class:`TimeoutError` with the log's end
        when it is not within ``timeout`` seconds (or the process ended without it)."""
        return wait_for_log(self, text, timeout)

    def describe(self) -> str:
        return f"process {self.name!r} (pid {self.pid}, log {self.log_path})"
