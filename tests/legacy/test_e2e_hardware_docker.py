"""The full stack as containers: broker, camera detector, consensus, pump.

Legacy form: fixed container names, one fixed Docker network, the broker
published on the fixed host port 1883, fixed client ids, bare topics, sleeps
instead of readiness checks.  Serially it passes; a second worker meets
"Conflict. The container name ... is already in use" and a taken port.
"""

from __future__ import annotations

import json
import threading
import time

import docker
import paho.mqtt.client as mqtt
import pytest

from wildfire.camera_simulator import announcement, frigate_event, growing_boxes

pytestmark = pytest.mark.docker

BROKER_IMAGE = "parallel-isolation/mosquitto:latest"
SERVICES_IMAGE = "parallel-isolation/wildfire-services:latest"
NETWORK_NAME = "wildfire-test-net"
BROKER_NAME = "mqtt-broker-test"
BROKER_HOST = "localhost"
BROKER_PORT = 1883
SERVICES = [
    ("camera_detector", "camera-detector-test"),
    ("fire_consensus", "fire-consensus-test"),
    ("gpio_trigger", "gpio-trigger-test"),
]
SERVICE_ENV = {
    "HEALTH_INTERVAL": "1",
    "CONSENSUS_THRESHOLD": "2",
    "DETECTION_COOLDOWN": "30",
    "PRIME_DURATION": "0.2",
    "START_DURATION": "0.2",
    "RPM_REDUCTION_DURATION": "0.2",
    "STOP_DURATION": "0.2",
    "REFILL_DURATION": "0.2",
    "COOLDOWN_DURATION": "0.2",
    "FIRE_OFF_DELAY": "1.5",
}


@pytest.fixture(scope="module")
def docker_client():
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="module")
def network(docker_client):
    net = docker_client.networks.create(NETWORK_NAME, driver="bridge")
    yield net
    net.remove()


@pytest.fixture(scope="module")
def broker(docker_client, network):
    container = docker_client.containers.run(
        BROKER_IMAGE,
        name=BROKER_NAME,
        network=NETWORK_NAME,
        ports={"1883/tcp": ("127.0.0.1", BROKER_PORT)},
        detach=True,
    )
    time.sleep(2)
    yield container
    container.remove(force=True)


@pytest.fixture(scope="module")
def stack(docker_client, network, broker):
    containers = {}
    try:
        for service, name in SERVICES:
            containers[name] = docker_client.containers.run(
                SERVICES_IMAGE,
                command=["python3", "-m", f"wildfire.{service}"],
                name=name,
                network=NETWORK_NAME,
                environment={"MQTT_BROKER": BROKER_NAME, "MQTT_PORT": "1883", "MQTT_CLIENT_ID": name, **SERVICE_ENV},
                detach=True,
            )
        time.sleep(3)
        yield containers
    finally:
        for container in containers.values():
            container.remove(force=True)


class Monitor:
    """Records messages on bare topics from the host side."""

    def __init__(self, client_id: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect(BROKER_HOST, BROKER_PORT)
        self.client.loop_start()
        self.client.subscribe("#", qos=1)
        time.sleep(0.5)

    def _on_message(self, client, userdata, message) -> None:
        with self.cond:
            self.messages.append((message.topic, message.payload))
            self.cond.notify_all()

    def wait_for(self, topic_filter: str, predicate=lambda payload: True, timeout: float = 20.0) -> bytes:
        def found():
            return next(
                (p for t, p in self.messages if mqtt.topic_matches_sub(topic_filter, t) and predicate(p)),
                None,
            )

        with self.cond:
            self.cond.wait_for(lambda: found() is not None, timeout)
            payload = found()
        assert payload is not None, f"nothing on {topic_filter} within {timeout} s"
        return payload

    def publish(self, topic: str, payload) -> None:
        self.client.publish(topic, json.dumps(payload), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def monitor(stack):
    watcher = Monitor("docker-e2e-monitor")
    yield watcher
    watcher.close()


def test_stack_containers_run_on_the_network(docker_client, stack, broker):
    network = docker_client.networks.get(NETWORK_NAME)
    network.reload()
    attached = {c.name for c in network.containers}
    assert attached == {BROKER_NAME, *(name for _, name in SERVICES)}
    for container in stack.values():
        container.reload()
        assert container.status == "running"


def test_services_report_health_through_the_broker_container(monitor):
    for service, _ in SERVICES:
        health = json.loads(monitor.wait_for(f"system/{service}/health"))
        assert health["mqtt_connected"] is True


def test_discovery_consensus_and_pump_in_containers(monitor):
    for index, camera in enumerate(["cam1", "cam2"], start=1):
        monitor.publish(f"camera/announce/{camera}", announcement(camera, index))
    monitor.wait_for("camera/discovery/cam2")
    for box in growing_boxes(8, start_area=0.01, growth=1.2):
        for camera in ("cam1", "cam2"):
            monitor.publish("frigate/events", frigate_event(camera, box))
    trigger = json.loads(monitor.wait_for("fire/trigger"))
    assert sorted(trigger["consensus_cameras"]) == ["cam1", "cam2"]
    monitor.wait_for("system/trigger_telemetry", lambda p: json.loads(p)["state"] == "RUNNING")
    monitor.wait_for("system/trigger_telemetry", lambda p: json.loads(p)["state"] == "IDLE")


def test_container_logs_are_readable(stack):
    for name, container in stack.items():
        logs = container.logs().decode(errors="replace")
        assert "event=online" in logs, f"{name} never logged online"
