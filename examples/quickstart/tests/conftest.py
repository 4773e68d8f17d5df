"""Services registered in Python: the mirror, a shell pipeline with a readiness check."""

from __future__ import annotations

import queue

import paho.mqtt.client as mqtt
import pytest

from parallel_isolation import CallableReady, EnvNames, RunningService, ServiceSpec


def mirror_answers(service: RunningService) -> bool:
    """Ready when a line sent to mirror/in comes back on mirror/out within a second."""
    env = service.env
    topic = env["BASE_TOPIC"] + "/mirror"
    answers: queue.Queue[bytes] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, message: answers.put(message.payload)
    client.connect(env["BROKER_HOST"], int(env["BROKER_PORT"]))
    client.loop_start()
    try:
        client.subscribe(topic + "/out", qos=1)
        client.publish(topic + "/in", b"ready?", qos=1).wait_for_publish(timeout=1)
        return answers.get(timeout=1) == b"ready?"
    except (queue.Empty, RuntimeError, ValueError):
        return False
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture(scope="session")
def isolation_services() -> list[ServiceSpec]:
    return [
        ServiceSpec(
            name="mirror",
            command=["sh", "services/mirror.sh"],
            cwd=".",
            env_names=EnvNames(
                host="BROKER_HOST", port="BROKER_PORT", prefix="BASE_TOPIC", client_id=None
            ),
            ready=CallableReady(mirror_answers, timeout=30, interval=0.2),
        )
    ]
