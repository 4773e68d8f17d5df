"""A run tells its own isolation verdict, and a missing prerequisite is one usage error.

A deliberately bad project (cross-talk, a leaked thread, a leaked listening
socket) run through pytester in a subprocess, with and without xdist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from parallel_isolation.session.context import WorkerContext

BAD = """
import socket, threading
import paho.mqtt.client as mqtt

KEEP = []

def test_clean(mqtt_client):
    mqtt_client.publish("fine", b"1").wait_for_publish(5)

def test_bare_topic_publish(mqtt_broker):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bad-demo-bare")
    client.connect("127.0.0.1", mqtt_broker.port)
    client.loop_start()
    client.publish("bare/alarm", b"fire", qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()

def test_leaks_a_thread(parallel_test_context):
    stop = threading.Event()
    KEEP.append(stop)
    threading.Thread(target=stop.wait, name="forgotten-timer", daemon=True).start()

def test_leaks_a_listening_socket(parallel_test_context):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    KEEP.append(server)
"""

CLEAN = """
def test_one(mqtt_client):
    mqtt_client.publish("a", b"1").wait_for_publish(5)

def test_two(topic_namespace):
    assert topic_namespace.prefix
"""


@pytest.fixture
def base(isolation_worker: WorkerContext) -> int:
    return 38000 + isolation_worker.identity.worker_number * 400  # no other test uses these


def _summary(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(
        i for i, line in enumerate(lines) if "parallel-isolation" in line and "===" in line
    )
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("==="))
    return lines[start + 1 : end]


@pytest.mark.parametrize("mode", [["-n", "2"], ["-p", "no:xdist"]], ids=["xdist", "no-xdist"])
def test_findings_are_in_pytests_summary_and_fail_the_session(
    pytester: pytest.Pytester, base: int, mode: list[str]
) -> None:
    pytester.makepyfile(test_bad=BAD)
    result = pytester.runpytest_subprocess(
        *mode, "-p", "no:randomly", f"--isolation-port-base={base}"
    )
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, "isolation errors fail a green session"
    summary = _summary(result)
    text = "\n".join(summary)
    run_id = (pytester.path / ".isolation" / "runs" / "latest").read_text().strip()
    assert summary[0].startswith(f"run {run_id} · ")
    assert "isolation: FINDINGS" in summary[0]
    assert re.search(r"^[3-9] errors, \d+ warnings, \d+ info \(judged in [\d.]+ s\)$", summary[1])
    for code, test in [
        ("crosstalk", "test_bad.py::test_bare_topic_publish"),
        ("leak.thread", "test_bad.py::test_leaks_a_thread"),
        ("leak.listening_socket", "test_bad.py::test_leaks_a_listening_socket"),
    ]:
        head = next(i for i, line in enumerate(summary) if f"ERROR   {code}" in line)
        assert test in summary[head + 1], f"{code} names its test and place"
    assert "'bare/alarm'" in text
    assert "'forgotten-timer'" in text
    assert f"artifacts: {pytester.path / '.isolation' / 'runs' / run_id}" in text
    assert f"full report: parallel-isolation validate --run {run_id}" in text
    assert "the session fails on these findings (--isolation-fail-on error;" in text


def test_fail_on_never_keeps_pytests_exit_code(pytester: pytest.Pytester, base: int) -> None:
    pytester.makepyfile(test_bad=BAD)
    result = pytester.runpytest_subprocess(
        "-n", "2", f"--isolation-port-base={base}", "--isolation-fail-on", "never"
    )
    assert result.ret == pytest.ExitCode.OK
    assert "isolation: FINDINGS" in "\n".join(_summary(result))
    assert "the session fails" not in result.stdout.str()


def test_a_clean_run_says_so_and_passes(pytester: pytest.Pytester, base: int) -> None:
    pytester.makepyfile(test_clean=CLEAN)
    result = pytester.runpytest_subprocess(
        "-n", "2", f"--isolation-port-base={base}", "--isolation-fail-on", "warning"
    )
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    summary = _summary(result)
    assert "isolation: CLEAN" in summary[0]
    assert summary[1].startswith("0 errors, 0 warnings")
    run_dir = pytester.path / ".isolation" / "runs"
    record = json.loads(
        (run_dir / (run_dir / "latest").read_text().strip() / "run.json").read_text()
    )
    assert set(record["workers"]) == {"gw0", "gw1"}
    assert {w["status"] for w in record["workers"].values()} == {"finished"}
    assert any(w["recorded"] for w in record["workers"].values())


def test_a_bad_fail_on_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_clean=CLEAN)
    result = pytester.runpytest_subprocess("-p", "no:xdist", "--isolation-fail-on", "sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected one of never, error, warning, got 'sometimes'*"])


DOCKER_TESTS = """
import pytest

@pytest.mark.docker
@pytest.mark.parametrize("n", range(3))
def test_needs_docker(n, parallel_test_context):
    pass

def test_plain(mqtt_client):
    pass
"""


def test_no_engine_for_the_docker_backend_is_one_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    pytester.makepyfile(test_docker=DOCKER_TESTS)
    result = pytester.runpytest_subprocess("-n", "3", "--isolation-backend", "docker")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    assert errors.count("no Docker engine") == 1, errors
    assert "the docker backend cannot run: no Docker engine: the socket" in errors
    assert "start one with" in errors, "the message carries the fix"
    assert "Traceback" not in errors + result.stdout.str()
    assert "created: " not in result.stdout.str(), "no worker was started"


def test_docker_tests_on_another_backend_skip_with_one_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, base: int
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    pytester.makepyfile(test_docker=DOCKER_TESTS)
    result = pytester.runpytest_subprocess(
        "-n", "2", "-rs", "--isolation-backend", "embedded", f"--isolation-port-base={base}"
    )
    result.assert_outcomes(passed=1, skipped=3)
    skipped = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert len(skipped) <= 2, f"one reason per worker at most: {skipped}"
    assert all("no Docker engine: the socket" in line for line in skipped)


def test_mosquitto_missing_is_one_usage_error(pytester: pytest.Pytester) -> None:
    # The conftest hides mosquitto from the start-up check, as on a host without it.
    pytester.makeconftest(
        "import parallel_isolation.mqtt.brokers as brokers\nbrokers.find_mosquitto = lambda: None\n"
    )
    pytester.makepyfile(test_clean=CLEAN)
    result = pytester.runpytest_subprocess("-n", "2", "--isolation-backend", "process")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    assert errors.count("needs mosquitto") == 1
    assert (
        "fix: install it (apt-get install mosquitto) or choose --isolation-backend embedded"
        in errors
    )
    assert "created: " not in result.stdout.str()


def test_port_blocks_past_65535_are_one_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_clean=CLEAN)
    result = pytester.runpytest_subprocess(
        "-n", "3", "--isolation-port-base", "65000", "--isolation-port-block", "200"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*3 workers with port blocks of 200 from port base 65000 need ports up to 65599, past 65535*"
        ]
    )
