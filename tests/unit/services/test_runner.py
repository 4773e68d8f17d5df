"""Services of any kind: commands, env names, readiness strategies, and clear errors.

Each test runs real processes against the worker's real broker (the process
backend) and checks that nothing it started is left running.
"""

from __future__ import annotations

import socket
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from parallel_isolation.identity import Identity
from parallel_isolation.project import find_project
from parallel_isolation.services import (
    CallableReady,
    EnvNames,
    LogReady,
    MqttReady,
    PortReady,
    ServiceConfigError,
    ServiceError,
    ServiceSpec,
)
from parallel_isolation.services.catalog import specs_from_project
from parallel_isolation.services.runner import ProcessService
from parallel_isolation.session.context import ParallelTestContext, WorkerContext
from parallel_isolation.settings import Settings

# A service with its own names: MQTT_HOST / MQTT_PORT / MQTT_TOPIC_PREFIX, and a
# greeting from its command line; it says "up" on <prefix>/echo/ready and
# answers <prefix>/echo/in with the greeting on <prefix>/echo/out.
ECHO = textwrap.dedent(
    """
    import os, signal, sys
    import paho.mqtt.client as mqtt

    prefix = os.environ["MQTT_TOPIC_PREFIX"]
    greeting = sys.argv[1]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_connect(c, userdata, flags, rc, props):
        c.subscribe(prefix + "/echo/in", qos=1)

    def on_subscribe(c, userdata, mid, rcs, props):
        c.publish(prefix + "/echo/ready", b"up", qos=1)
        print("listening", flush=True)

    def on_message(c, userdata, message):
        c.publish(prefix + "/echo/out", greeting.encode() + b" " + message.payload, qos=1)
        print("echoed", message.payload.decode(), flush=True)

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(os.environ["MQTT_HOST"], int(os.environ["MQTT_PORT"]))
    signal.signal(signal.SIGTERM, lambda *a: (client.disconnect(), sys.exit(0)))
    client.loop_forever()
    """
)
ECHO_NAMES = EnvNames(
    host="MQTT_HOST", port="MQTT_PORT", prefix="MQTT_TOPIC_PREFIX", client_id=None
)


@pytest.fixture
def context(tmp_path: Path) -> Iterator[ParallelTestContext]:
    identity = Identity.resolve(run_id=uuid.uuid4().hex[:8], worker_id="gw880")
    settings = Settings(backend="process", artifacts=str(tmp_path / "runs"))
    worker = WorkerContext(identity, settings, project=find_project(tmp_path))
    ctx = ParallelTestContext(worker, "tests/test_x.py::test_services")
    yield ctx
    ctx.close()
    worker.close()


@pytest.fixture
def echo_script(tmp_path: Path) -> Path:
    path = tmp_path / "echo_service.py"
    path.write_text(ECHO)
    return path


def _gone(pid: int | None) -> bool:
    if pid is None or not psutil.pid_exists(pid):
        return True
    return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _started_pids(ctx: ParallelTestContext) -> list[int]:
    from parallel_isolation.artifacts import read_events

    events = read_events(ctx.worker.artifacts.events_path)
    return [
        int(e["detail"].split("pid ")[1].split(",")[0])
        for e in events
        if e["kind"] == "service_started" and "pid " in e["detail"]
    ]


def test_own_env_names_argv_placeholders_and_mqtt_readiness(
    context: ParallelTestContext, echo_script: Path
) -> None:
    spec = ServiceSpec(
        name="echo",
        command=["{python}", str(echo_script), "hello-from-{name}"],
        env_names=ECHO_NAMES,
        ready=MqttReady(topic="echo/ready", payload="up"),
    )
    service = context.services.start(spec)
    assert service.env["MQTT_HOST"] == context.broker.host
    assert service.env["MQTT_TOPIC_PREFIX"] == context.namespace.prefix
    assert "MQTT_BROKER" not in service.env
    assert "MQTT_CLIENT_ID" not in service.env
    client = context.mqtt_client("asker")
    client.subscribe("echo/out", qos=1)
    client.publish("echo/in", b"ping", qos=1)
    answer = client.wait_for("echo/out", timeout=15)
    assert answer.payload == b"hello-from-echo ping"
    assert isinstance(service, ProcessService)
    assert "listening" in service.wait_for_log("echoed ping", timeout=30)
    service.stop()
    with pytest.raises(
        TimeoutError, match=r"'echoed pong' is not in its log \(and it is no longer"
    ):
        service.wait_for_log("echoed pong", timeout=600)  # returns: the service ended


@pytest.mark.parametrize(
    "ready",
    [
        pytest.param(LogReady(r"^listening$"), id="log-line"),
        pytest.param(
            CallableReady(lambda svc: "listening" in svc.log_text(), interval=0.05), id="callable"
        ),
    ],
)
def test_log_and_callable_readiness(
    context: ParallelTestContext, echo_script: Path, ready: Any
) -> None:
    spec = ServiceSpec(
        name="echo", command=["{python}", str(echo_script), "hi"], env_names=ECHO_NAMES, ready=ready
    )
    service = context.services.start(spec)
    assert "listening" in service.log_text()


def test_tcp_port_readiness_with_a_reserved_port(context: ParallelTestContext) -> None:
    """A non-MQTT-aware server: ready when its port (reserved for the test) accepts."""
    # http.server takes its port as an argument: a shell passes the variable on.
    shell = ServiceSpec(
        name="web",
        command=["sh", "-c", 'exec "$0" -m http.server --bind 127.0.0.1 "$WEB_PORT"', "{python}"],
        ready=PortReady(env="WEB_PORT"),
    )
    service = context.services.start(shell)
    port = int(service.env["WEB_PORT"])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


BAD_STARTS: dict[str, tuple[Callable[[Path], ServiceSpec | str], str]] = {
    "unknown-name": (
        lambda _p: "no_such_service",
        r"unknown service 'no_such_service' \(registered: none\); register it under "
        r"\[tool.parallel-isolation.services.no_such_service\]",
    ),
    "command-not-found": (
        lambda _p: ServiceSpec(name="ghost", command=["ghost-binary-xyz", "--serve"]),
        r"service 'ghost': command 'ghost-binary-xyz' is not on PATH .*install it, or give its "
        r"full path",
    ),
    "relative-command-missing": (
        lambda _p: ServiceSpec(name="ghost", command=["./bin/ghost"], cwd="."),
        r"service 'ghost': command './bin/ghost' does not exist",
    ),
    "exits-at-once": (
        lambda _p: ServiceSpec(
            name="quitter",
            command=["{python}", "-c", "import sys; print('bad config: no TOKEN'); sys.exit(3)"],
            ready=LogReady("never"),
        ),
        r"(?s)service 'quitter' exited with status 3 before it was ready .*bad config: no TOKEN",
    ),
    "readiness-never-comes": (
        lambda p: ServiceSpec(
            name="mute",
            command=["{python}", "-c", "import time; print('started, silent'); time.sleep(600)"],
            ready=LogReady("ready to serve", timeout=1.0),
        ),
        r"(?s)service 'mute' was not ready within 1.0 s: a log line matching 'ready to serve' "
        r"never came.*give it longer.*started, silent",
    ),
    "mqtt-readiness-never-comes": (
        lambda p: ServiceSpec(
            name="deaf",
            command=["{python}", "-c", "import time; time.sleep(600)"],
            ready=MqttReady(topic="deaf/ready", timeout=1.0),
        ),
        r"service 'deaf' was not ready within 1.0 s: payload b'online' on topic 'deaf/ready'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_STARTS))
def test_bad_starts_are_clear_errors_and_leave_nothing_running(
    context: ParallelTestContext, tmp_path: Path, case: str
) -> None:
    make, message = BAD_STARTS[case]
    with pytest.raises(ServiceError, match=message):
        context.services.start(make(tmp_path))
    assert context.services.started == []
    pids = _started_pids(context)
    if case in {"exits-at-once", "readiness-never-comes", "mqtt-readiness-never-comes"}:
        assert pids, f"{case}: the service should have been started before it failed"
    for pid in pids:
        assert _gone(pid), f"{case}: pid {pid} still runs after the failed start"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: ServiceSpec(name="x", command=["x"], env_names=EnvNames(host="")),
            r"service 'x': env_names: the variable for host is empty \(''\); give a variable "
            r"name, or false \(None in Python\) to leave host out",
            id="empty-name",
        ),
        pytest.param(
            lambda: ServiceSpec(
                name="x",
                command=["x"],
                env_names=EnvNames(host=None, port=None, prefix=None, client_id=None, name=None),
            ),
            r"service 'x': it would not learn where the broker is: map host and port \(or url\)",
            id="empty-mapping",
        ),
        pytest.param(
            lambda: ServiceSpec(name="x", command=["x"], env_names=EnvNames(prefix="MQTT_PORT")),
            r"MQTT_PORT receives both port and prefix; give each its own",
            id="clash-between-roles",
        ),
        pytest.param(
            lambda: ServiceSpec(name="x", command=["x"], env={"MQTT_BROKER": "localhost"}),
            r"env sets MQTT_BROKER, which env_names gives the broker's values",
            id="clash-with-env",
        ),
        pytest.param(
            lambda: ServiceSpec(name="x", command="python3 -m x"),  # type: ignore[arg-type]
            r"command must be a list of arguments, not one string",
            id="command-as-string",
        ),
        pytest.param(
            lambda: ServiceSpec(name="x"),
            r"give a command \(argv\), a module, or an image",
            id="nothing-to-run",
        ),
    ],
)
def test_bad_definitions_fail_at_registration(
    make: Callable[[], ServiceSpec], message: str
) -> None:
    with pytest.raises(ServiceConfigError, match=message):
        make()


def test_flags_only_service_needs_no_env_names() -> None:
    spec = ServiceSpec(
        name="flags",
        command=["svc", "--broker", "{url}", "--prefix", "{prefix}"],
        env_names=EnvNames(host=None, port=None, prefix=None, client_id=None, name=None),
    )
    values = {"url": "mqtt://h:1", "prefix": "p/q", "python": sys.executable}
    assert spec.process_argv(values) == ["svc", "--broker", "mqtt://h:1", "--prefix", "p/q"]


PYPROJECT_ERRORS = {
    "unknown-key": ('commnd = ["x"]', r"unknown key\(s\) commnd; known: command"),
    "empty-env-name": (
        'command = ["x"]\nenv-names = { host = "" }',
        r"the variable for host is empty",
    ),
    "clashing-env-names": (
        'command = ["x"]\nenv-names = { host = "H", port = "H" }',
        r"H receives both host and port",
    ),
    "unknown-role": ('command = ["x"]\nenv-names = { broker = "B" }', r"unknown role\(s\) broker"),
    "two-readiness": (
        'command = ["x"]\nready = { log = "a", port = 1 }',
        r"ready must be a table with one of mqtt, log, port, port-env, call",
    ),
    "bad-timeout": ('command = ["x"]\nready-timeout = 0', r"ready-timeout must be a positive"),
}


@pytest.mark.parametrize("case", sorted(PYPROJECT_ERRORS))
def test_pyproject_registration_errors_name_file_and_service(tmp_path: Path, case: str) -> None:
    body, message = PYPROJECT_ERRORS[case]
    (tmp_path / "pyproject.toml").write_text(f"[tool.parallel-isolation.services.pump]\n{body}\n")
    with pytest.raises(ServiceConfigError, match=message) as caught:
        specs_from_project(find_project(tmp_path))
    assert "[tool.parallel-isolation.services.pump]" in str(caught.value)
    assert str(tmp_path / "pyproject.toml") in str(caught.value)


def test_pyproject_registration_reads_every_key(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.parallel-isolation.services.pump]
            command = "bin/pump --fast"
            cwd = "svc"
            env = { PUMP_RATE = 3 }
            env-names = { host = "MQTT_HOST", client-id = false, url = "BROKER_URL" }
            image = "pumps:1"
            container-command = ["/app/pump"]
            ready = { mqtt = "pump/state", payload = false }
            ready-timeout = 45
            """
        )
    )
    (spec,) = specs_from_project(find_project(tmp_path))
    assert spec.command == ("bin/pump", "--fast")
    assert spec.cwd == "svc"
    assert spec.env == {"PUMP_RATE": "3"}
    assert spec.env_names.mapping() == {
        "host": "MQTT_HOST",
        "port": "MQTT_PORT",
        "url": "BROKER_URL",
        "prefix": "TOPIC_PREFIX",
        "name": "SERVICE_NAME",
    }
    assert spec.ready == MqttReady(topic="pump/state", payload=None, timeout=45.0)
    assert spec.container_argv({}) == ["/app/pump"]


def test_log_readiness_reads_this_start_only(context: ParallelTestContext, tmp_path: Path) -> None:
    """Two tests of one worker start the same service: the second waits for its own line."""
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import sys, time\ntime.sleep(float(sys.argv[1]))\nprint('up', flush=True)\n"
        "time.sleep(600)\n"
    )
    first = context.services.start(
        ServiceSpec(name="slow", command=["{python}", str(slow), "0"], ready=LogReady("^up$"))
    )
    context.services.stop_all()
    second_context = ParallelTestContext(context.worker, "tests/test_x.py::test_second")
    try:
        second = second_context.services.start(
            ServiceSpec(name="slow", command=["{python}", str(slow), "1.5"], ready=LogReady("^up$"))
        )
        assert isinstance(second, ProcessService)
        assert isinstance(first, ProcessService)
        assert second.log_path != first.log_path
        assert second.log_text().strip() == "up", "ready before its own line was written"
    finally:
        second_context.close()
