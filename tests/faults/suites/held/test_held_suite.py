"""A suite whose tests hold a broker, a service and a port until told to go on.

Run by the fault tests (never collected directly): each test records what it
holds in ``FACTS_FILE`` and waits for ``GO_FILE`` (bounded), so the fault test
can kill the controller while every worker is busy holding things.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

FACTS = os.environ["FACTS_FILE"]
GO = Path(os.environ["GO_FILE"])


@pytest.mark.parametrize("n", range(4))
def test_holds(n, parallel_test_context, mqtt_client, mqtt_broker):
    ctx = parallel_test_context
    service = ctx.services.start("gpio_trigger")
    facts = {
        "test": ctx.nodeid,
        "worker": ctx.worker_id,
        "run": ctx.run_id,
        "pid": os.getpid(),
        "broker_pid": getattr(mqtt_broker.backend, "pid", None),
        "service_pid": getattr(service, "pid", None),
        "port": ctx.port("held"),
    }
    line = (json.dumps(facts) + "\n").encode()
    fd = os.open(FACTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    deadline = time.monotonic() + 300  # bounded: the fault test creates GO or kills us
    tick = threading.Event()
    while not GO.exists():
        assert time.monotonic() < deadline, "nobody said go within 300 s"
        tick.wait(0.1)
