"""A suite one of whose tests stops its own xdist worker with SIGSTOP while holding things.

Run by the fault tests with ``--isolation-test-timeout`` (never collected
directly).  Facts go to ``FACTS_FILE`` (one JSON line) so the fault test can
check that what the stopped worker held is gone afterwards.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

FACTS = os.environ["FACTS_FILE"]


def test_stops_itself(parallel_test_context, mqtt_client, mqtt_broker):
    ctx = parallel_test_context
    service = ctx.services.start("gpio_trigger")
    port = ctx.port("held by the stopped worker")
    facts = {
        "worker": ctx.worker_id,
        "pid": os.getpid(),
        "broker_pid": getattr(mqtt_broker.backend, "pid", None),
        "service_pid": getattr(service, "pid", None),
        "port": port,
    }
    with open(FACTS, "a") as handle:
        handle.write(json.dumps(facts) + "\n")
    os.kill(os.getpid(), signal.SIGSTOP)  # hung, as a deadlock would leave it


@pytest.mark.parametrize("n", range(8))
def test_others(n, mqtt_client):
    mqtt_client.subscribe("x", qos=1)
    mqtt_client.publish("x", b"1", qos=1).wait_for_publish(30)
    mqtt_client.wait_for("x", timeout=30)
