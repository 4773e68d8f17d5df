"""The worker zygote: fork-started workers behave like ``python -c`` ones.

The launcher is what execnet starts; these tests start it the same way
(stdin/stdout pipes, an environment, a working directory) and check what a
worker would see, how its end is reported, and that nothing outlives its
owner.  Plus the plugin end to end: ``-n 2 --isolation-fork-workers``.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from parallel_isolation.session import zygote as zygote_module
from parallel_isolation.session.context import WorkerContext
from parallel_isolation.session.zygote import Zygote, ZygoteError


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    handle = Zygote(env=dict(os.environ))
    handle.start()
    yield handle
    handle.stop()


def _launch(
    zygote: Zygote, code: str, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    argv = [*shlex.split(zygote.python_spec()), "-u", "-c", code]
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env if env is not None else dict(os.environ),
        cwd=cwd,
    )


def _child_pid(launcher: subprocess.Popen[bytes]) -> int:
    assert launcher.stdout is not None
    return int(launcher.stdout.readline())


def test_worker_gets_the_launchers_pipes_env_and_cwd(zygote: Zygote, tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import os, sys
        line = sys.stdin.readline()
        sys.stdout.write(line.upper())
        sys.stderr.write(f"{os.getcwd()}|{os.environ['ZYGOTE_PROBE']}|{sys.argv}|{sys.path[0]!r}\\n")
        """
    )
    env = {**os.environ, "ZYGOTE_PROBE": "from-the-launcher"}
    launcher = _launch(zygote, code, env=env, cwd=tmp_path)
    out, err = launcher.communicate(b"hello worker\n", timeout=30)
    assert launcher.returncode == 0, err.decode()
    assert out == b"HELLO WORKER\n"
    assert err.decode().strip() == f"{tmp_path}|from-the-launcher|['-c']|''"


def test_worker_is_a_fork_of_the_zygote_with_pytest_loaded(zygote: Zygote) -> None:
    code = "import os, sys; print(os.getpid(), os.getppid(), 'pytest' in sys.modules)"
    launcher = _launch(zygote, code)
    out, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, err.decode()
    pid, parent, preloaded = out.decode().split()
    assert zygote.process is not None
    assert int(parent) == zygote.process.pid
    assert int(pid) != launcher.pid
    assert preloaded == "True"


@pytest.mark.parametrize(
    ("code", "expected", "stderr_has"),
    [
        ("raise SystemExit(3)", 3, ""),
        ("import sys; sys.exit('bye')", 1, "bye"),
        ("raise ValueError('boom')", 1, "ValueError: boom"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL, ""),
    ],
    ids=["exit-3", "exit-message", "exception", "sigkill"],
)
def test_the_workers_end_is_the_launchers(
    zygote: Zygote, code: str, expected: int, stderr_has: str
) -> None:
    launcher = _launch(zygote, code)
    _out, err = launcher.communicate(timeout=30)
    assert launcher.returncode == expected
    assert stderr_has in err.decode()


def test_atexit_handlers_run_as_in_a_normal_interpreter(zygote: Zygote) -> None:
    code = "import atexit, sys; atexit.register(lambda: sys.stdout.write('atexit ran\\n'))"
    launcher = _launch(zygote, code)
    out, _err = launcher.communicate(timeout=30)
    assert launcher.returncode == 0
    assert out == b"atexit ran\n"


def test_sigterm_to_the_launcher_reaches_the_worker(zygote: Zygote) -> None:
    code = textwrap.dedent(
        """
        import os, signal, sys
        def bye(signum, frame):
            sys.stdout.write("got SIGTERM\\n"); sys.stdout.flush(); raise SystemExit(7)
        signal.signal(signal.SIGTERM, bye)
        print(os.getpid(), flush=True)
        while True:  # not stdin: communicate() closes it, which would end us first
            signal.pause()
        """
    )
    launcher = _launch(zygote, code)
    _child_pid(launcher)
    launcher.send_signal(signal.SIGTERM)
    out, err = launcher.communicate(timeout=30)
    assert (out, launcher.returncode) == (b"got SIGTERM\n", 7), err.decode()


def test_a_killed_launcher_takes_its_worker_along(zygote: Zygote) -> None:
    code = "import os, signal; print(os.getpid(), flush=True)\nwhile True: signal.pause()"
    launcher = _launch(zygote, code)
    child = psutil.Process(_child_pid(launcher))
    launcher.kill()
    launcher.wait(30)
    child.wait(timeout=30)  # raises psutil.TimeoutExpired if the worker lived on


def test_stop_ends_the_zygote_and_removes_its_socket() -> None:
    handle = Zygote(env=dict(os.environ))
    handle.start()
    assert handle.process is not None
    process = psutil.Process(handle.process.pid)
    socket_path = Path(handle.socket_path)
    assert socket_path.exists()
    spec = handle.python_spec()
    handle.stop()
    assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    assert not socket_path.parent.exists()
    late = subprocess.run(
        [*shlex.split(spec), "-u", "-c", "pass"], capture_output=True, timeout=30, check=False
    )
    assert late.returncode == 2
    assert b"zygote at" in late.stderr


def test_a_zygote_that_cannot_start_says_so(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "execnet.py").write_text("raise ImportError('execnet is broken here')\n")
    handle = Zygote(env={**os.environ, "PYTHONPATH": str(broken)}, start_timeout=30)
    with pytest.raises(ZygoteError, match="exited instead of getting ready"):
        handle.start()
    assert handle.process is None
    assert handle.directory is None


def test_launcher_refuses_a_command_without_code() -> None:
    done = subprocess.run(
        [sys.executable, "-S", "-E", zygote_module.__file__, "launch", "/nonexistent", "-u"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert b"expected -c CODE" in done.stderr


INNER = """
import os

def _cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().decode()

def test_where_am_i(worker_id, mqtt_client):
    assert worker_id in {"gw0", "gw1"}
    assert ("session/zygote.py" in _cmdline(os.getpid())) == (os.environ["EXPECT_FORKED"] == "1")
    mqtt_client.subscribe("probe", qos=1)
    mqtt_client.publish("probe", b"round trip", qos=1)
    assert mqtt_client.wait_for("probe", timeout=10).payload == b"round trip"
    with open(os.environ["PARENT_FILE"], "w") as handle:
        handle.write(str(os.getppid()))
"""


@pytest.mark.parametrize("forked", [True, False], ids=["fork-workers", "plain-popen"])
def test_plugin_forks_the_workers_only_when_asked(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    isolation_worker: WorkerContext,
    forked: bool,
) -> None:
    pytester.makepyfile(test_inner=INNER)
    parent_file = pytester.path / "parent.txt"
    monkeypatch.setenv("EXPECT_FORKED", "1" if forked else "0")
    monkeypatch.setenv("PARENT_FILE", str(parent_file))
    base = 50000 + isolation_worker.identity.worker_number * 1000  # 200 ports of our own
    args = ["-n", "2", "-p", "no:randomly", f"--isolation-port-base={base}"]
    if forked:
        args.append("--isolation-fork-workers")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*without the zygote*")
    if forked:
        # The worker's parent was the zygote; it ended with the run.
        assert not psutil.pid_exists(int(parent_file.read_text()))


def test_fork_workers_fall_back_when_the_zygote_cannot_start(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, isolation_worker: WorkerContext
) -> None:
    pytester.makepyfile(test_x="def test_x(worker_id): assert worker_id.startswith('gw')")
    # A Unix socket path has at most 107 bytes: under this TMPDIR the zygote
    # cannot listen, exits, and the workers start the usual way.
    deep = pytester.path / ("t" * 120)
    deep.mkdir()
    monkeypatch.setenv("TMPDIR", str(deep))
    base = 50200 + isolation_worker.identity.worker_number * 1000
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:randomly", f"--isolation-port-base={base}", "--isolation-fork-workers"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*workers start without the zygote*exited*"])
