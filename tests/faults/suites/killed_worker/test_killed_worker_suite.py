"""A suite whose one test SIGKILLs its own xdist worker after acquiring things.

Run by the fault tests under ``-n 4`` (never collected directly).  Facts go to
``FACTS_FILE`` (one JSON line per test) so the fault test can check what the
dead worker held and what its replacement got.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import docker
import pytest

from parallel_isolation.host.proc import ChildProcess
from parallel_isolation.ownership import marker_env

FACTS = os.environ["FACTS_FILE"]
IMAGE = os.environ["VICTIM_IMAGE"]
VICTIM_DIED = Path(FACTS + ".victim")
REPLACEMENT_RAN = Path(FACTS + ".replacement-ran")
ORIGINAL = {"gw0", "gw1", "gw2", "gw3"}


def record(**facts):
    line = json.dumps(facts) + "\n"
    fd = os.open(FACTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def facts_of(ctx, broker, **extra):
    record(
        test=ctx.nodeid,
        worker=ctx.worker_id,
        run=ctx.run_id,
        pid=os.getpid(),
        broker_port=broker.port,
        container_name=ctx.container_name("svc"),
        namespace=ctx.namespace.prefix,
        **extra,
    )


def test_victim(parallel_test_context, mqtt_broker):
    """Acquire a container, a marked process and a port, then die by SIGKILL."""
    ctx = parallel_test_context
    client = docker.from_env()
    container = client.containers.run(
        IMAGE,
        ["sleep", "infinity"],
        name=ctx.container_name("victim"),
        labels=ctx.labels("victim-service"),
        detach=True,
    )
    port = ctx.port("victim listener")
    # A helper started from a worker thread is not tied to the worker by
    # PDEATHSIG: it outlives a SIGKILL and only its marker finds it again.
    helper = ChildProcess(
        [sys.executable, "-c", "import time; time.sleep(3600)"],
        log_path=ctx.logs_dir / "victim-helper.log",
        env={**os.environ, **marker_env(ctx.identity, "service:victim-helper")},
    )
    starter = threading.Thread(target=helper.start)
    starter.start()
    starter.join(10)
    facts_of(
        ctx, mqtt_broker, victim=True, container_id=container.id, helper_pid=helper.pid, port=port
    )
    VICTIM_DIED.write_text(ctx.worker_id)
    os.kill(os.getpid(), signal.SIGKILL)


def wait_for(path: Path, what: str, timeout: float = 60.0) -> None:
    """A bounded wait on a named condition (a file another worker creates)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not path.exists():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        tick.wait(0.05)


def hold_until_replaced(worker_id: str) -> None:
    """Hold the original workers until the victim died and xdist's replacement ran a
    test, so that tests are still pending when the replacement asks for work."""
    if worker_id not in ORIGINAL:
        REPLACEMENT_RAN.write_text(worker_id)
        return
    wait_for(VICTIM_DIED, "the victim's death")
    wait_for(REPLACEMENT_RAN, "a test on a replacement worker")


@pytest.mark.parametrize("n", range(6))
def test_before(n, parallel_test_context, mqtt_client, mqtt_broker):
    hold_until_replaced(parallel_test_context.worker_id)
    mqtt_client.subscribe("x", qos=1)
    mqtt_client.publish("x", b"1", qos=1).wait_for_publish(5)
    mqtt_client.wait_for("x", timeout=10)
    facts_of(parallel_test_context, mqtt_broker)


@pytest.mark.parametrize("n", range(30))
def test_after(n, parallel_test_context, mqtt_client, mqtt_broker):
    hold_until_replaced(parallel_test_context.worker_id)
    mqtt_client.subscribe("y", qos=1)
    mqtt_client.publish("y", b"1", qos=1).wait_for_publish(5)
    mqtt_client.wait_for("y", timeout=10)
    facts_of(parallel_test_context, mqtt_broker)
