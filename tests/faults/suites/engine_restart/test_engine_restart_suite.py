"""A docker-backend suite whose tests span a restart of the Docker engine.

Run by the fault tests (never collected directly): each test records that it
holds its worker's broker container, waits for ``GO_FILE`` (the fault test
restarts the engine first), then needs the broker again.
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


@pytest.mark.parametrize("n", range(2))
def test_across_an_engine_restart(n, parallel_test_context, mqtt_client):
    ctx = parallel_test_context
    line = json.dumps({"test": ctx.nodeid, "worker": ctx.worker_id, "run": ctx.run_id}) + "\n"
    fd = os.open(FACTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    deadline = time.monotonic() + 600  # bounded: the fault test says go once the engine is back
    tick = threading.Event()
    while not GO.exists():
        assert time.monotonic() < deadline, "nobody said go within 600 s"
        tick.wait(0.1)
    mqtt_client.subscribe("after/restart", qos=1)
    mqtt_client.publish("after/restart", b"1", qos=1)
    mqtt_client.wait_for("after/restart", timeout=30)
