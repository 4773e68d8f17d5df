"""The plugin end to end, through pytester in a subprocess (with and without xdist)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parallel_isolation.session.context import WorkerContext

INNER = """
import json, os, pytest

FACTS = os.environ["FACTS_FILE"]

def record(**facts):
    with open(FACTS, "a") as handle:
        handle.write(json.dumps(facts) + "\\n")

@pytest.mark.parametrize("n", range(8))
def test_same_bare_topic(n, parallel_test_context, mqtt_client, mqtt_broker, request):
    mine = f"{request.node.nodeid}".encode()
    mqtt_client.publish("shared/state", mine, qos=1, retain=True).wait_for_publish(5)
    mqtt_client.publish("shared/live", mine, qos=1)
    watcher = parallel_test_context.mqtt_client("watcher")
    watcher.subscribe("shared/#", qos=1)
    mqtt_client.publish("shared/live", mine, qos=1)
    watcher.wait_for("shared/live", timeout=5)
    retained = watcher.wait_for("shared/state", timeout=5)
    seen = {m.payload for m in watcher.messages("#")}
    record(
        worker=parallel_test_context.worker_id,
        run=parallel_test_context.run_id,
        port=mqtt_broker.port,
        pid=os.getpid(),
        prefix=parallel_test_context.namespace.prefix,
        foreign_payloads=sorted(p.decode() for p in seen - {mine}),
        retained_ok=retained.payload == mine,
        uid=request.getfixturevalue("testrun_uid") if hasattr(request.config, "workerinput") else None,
    )
    assert seen == {mine}
"""


def _facts(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def inner(
    pytester: pytest.Pytester, isolation_worker: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> tuple[pytest.Pytester, Path, int]:
    pytester.makepyfile(test_inner=INNER)
    facts = pytester.path / "facts.jsonl"
    monkeypatch.setenv("FACTS_FILE", str(facts))
    base = 45000 + isolation_worker.identity.worker_number * 1000
    return pytester, facts, base


def test_xdist_workers_get_own_broker_block_and_namespace(
    inner: tuple[pytest.Pytester, Path, int],
) -> None:
    pytester, facts_file, base = inner
    result = pytester.runpytest_subprocess(
        "-n", "4", f"--isolation-port-base={base}", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=8)
    facts = _facts(facts_file)
    workers = {f["worker"] for f in facts}
    assert workers <= {"gw0", "gw1", "gw2", "gw3"}
    assert len(workers) >= 2, "xdist spread the tests"
    runs = {f["run"] for f in facts}
    assert len(runs) == 1
    (run,) = runs
    by_worker: dict[object, set[object]] = {}
    for fact in facts:
        by_worker.setdefault(fact["worker"], set()).add(fact["port"])
        number = int(str(fact["worker"])[2:])
        assert base + number * 100 <= int(fact["port"]) < base + (number + 1) * 100  # type: ignore[call-overload]
        assert str(fact["prefix"]).startswith(f"test/{run}/{fact['worker']}/t-")
        assert fact["foreign_payloads"] == []
        assert fact["retained_ok"] is True
        assert str(fact["uid"]).startswith(str(run)), "xdist's testrun_uid is our run id"
    assert all(len(ports) == 1 for ports in by_worker.values()), "one broker per worker"
    assert len({next(iter(p)) for p in by_worker.values()}) == len(by_worker)
    assert len({f["prefix"] for f in facts}) == 8, "each test its own namespace"
    run_dir = pytester.path / ".isolation" / "runs" / str(run)
    assert json.loads((run_dir / "run.json").read_text())["exitstatus"] == 0
    assert (pytester.path / ".isolation" / "runs" / "latest").read_text().strip() == run


def test_without_xdist_everything_runs_as_master(inner: tuple[pytest.Pytester, Path, int]) -> None:
    pytester, facts_file, base = inner
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--isolation-port-base={base}")
    result.assert_outcomes(passed=8)
    facts = _facts(facts_file)
    assert {f["worker"] for f in facts} == {"master"}
    assert len({f["port"] for f in facts}) == 1
    assert all(f["foreign_payloads"] == [] and f["retained_ok"] for f in facts)
    assert len({f["prefix"] for f in facts}) == 8


def test_embedded_backend_through_the_option(inner: tuple[pytest.Pytester, Path, int]) -> None:
    pytester, facts_file, base = inner
    result = pytester.runpytest_subprocess(
        "-n", "2", "--isolation-backend", "embedded", f"--isolation-port-base={base}"
    )
    result.assert_outcomes(passed=8)
    run = _facts(facts_file)[0]["run"]
    log = next((pytester.path / ".isolation" / "runs" / str(run)).glob("gw*/logs/mqtt-broker.log"))
    assert "amqtt" in log.read_text() or "embedded-broker" in log.read_text()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--isolation-port-base", "80"], {}, "expected 1024..65000, got 80"),
        (["--isolation-backend", "nats"], {}, "expected one of auto, process, embedded, docker"),
        (
            [],
            {"ISOLATION_BACKEND": "nats"},
            "environment variable ISOLATION_BACKEND: expected one of",
        ),
        (
            [],
            {"ISOLATION_REQUIRE_DOCKER": "perhaps"},
            "ISOLATION_REQUIRE_DOCKER: expected a boolean",
        ),
    ],
)
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = pytester.runpytest_subprocess("-p", "no:xdist", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_ini_settings_apply_and_cli_wins(
    pytester: pytest.Pytester, isolation_worker: WorkerContext
) -> None:
    base = 52000 + isolation_worker.identity.worker_number * 300  # no other test uses these
    pytester.makeini(f"[pytest]\nisolation_port_base = {base}\nisolation_backend = embedded\n")
    pytester.makepyfile(
        test_x="""
def test_x(mqtt_broker, isolation_worker):
    print("PORT", mqtt_broker.port, "BACKEND", mqtt_broker.backend_name)
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-s", "--isolation-backend", "process")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*PORT {base} BACKEND process"])


def test_plugin_leaves_no_trace_when_unused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / ".isolation").exists()


def test_loadgroup_keeps_a_group_on_one_worker(pytester: pytest.Pytester) -> None:
    # The Docker e2e module relies on it; pytest 9.2 silently broke it (hence the pin).
    pytester.makepyfile(
        test_g="""
import pytest

@pytest.mark.xdist_group("stack")
@pytest.mark.parametrize("i", range(6))
def test_grouped(i, worker_id, request):
    with open(request.config.rootpath / "groups.txt", "a") as record:
        record.write(worker_id + "\\n")

@pytest.mark.parametrize("i", range(12))
def test_free(i):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-n", "3", "--dist", "loadgroup")
    result.assert_outcomes(passed=18)
    workers = (pytester.path / "groups.txt").read_text().split()
    assert len(workers) == 6
    assert len(set(workers)) == 1, workers
