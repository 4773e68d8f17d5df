"""The full stack as containers: broker, camera detector, consensus, pump.

Migrated form: the containers and the network are the worker's (names carry
the worker id and the run id, every object carries the toolkit's labels), the
broker is published on an allocated 127.0.0.1 port, client ids are unique,
topics live in a namespace of this module, and readiness is an MQTT round
trip or the service's own "online" message instead of a sleep.  Runs on every
backend when a Docker engine answers (skips without one, fails with
--require-docker).
"""

from __future__ import annotations

import json

import pytest

from parallel_isolation import ownership
from parallel_isolation.mqtt.brokers import TestMQTTBroker
from parallel_isolation.mqtt.client import connect_client
from wildfire.camera_simulator import announcement, frigate_event, growing_boxes

# One worker builds the module's stack once (--dist loadgroup keeps the group together).
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker-e2e-stack")]

SERVICES_IMAGE = "parallel-isolation/wildfire-services:latest"
SERVICES = [
    ("camera_detector", "camera-detector"),
    ("fire_consensus", "fire-consensus"),
    ("gpio_trigger", "gpio-trigger"),
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
def docker_manager(isolation_worker):
    return isolation_worker.containers  # the Docker SDK only where it is used


@pytest.fixture(scope="module")
def namespace(isolation_worker):
    return isolation_worker.namespace.child("docker-e2e")


@pytest.fixture(scope="module")
def network(docker_manager):
    return docker_manager.ensure_network()  # removed with the worker's objects at session end


@pytest.fixture(scope="module")
def broker(isolation_worker, network):
    container_broker = TestMQTTBroker(
        identity=isolation_worker.identity,
        allocator=isolation_worker.allocator,
        workdir=isolation_worker.artifacts.logs_dir,
        backend=isolation_worker.docker_broker_backend(base="mqtt-broker-e2e"),
        events=isolation_worker.events,
        name="mqtt-broker-e2e",
    )
    with container_broker:
        yield container_broker


@pytest.fixture(scope="module")
def monitor(broker, namespace, isolation_worker):
    client = connect_client(
        broker.host, broker.port, client_id=isolation_worker.client_id("docker-e2e-monitor"), namespace=namespace
    )
    client.subscribe("#", qos=1)
    yield client
    client.disconnect()
    client.loop_stop()


@pytest.fixture(scope="module")
def stack(docker_manager, network, broker, namespace, monitor, isolation_worker):
    broker_host, broker_port = broker.backend.container_address
    # The three services start together (run_all) and go together (remove_all).
    containers = docker_manager.run_all(
        {
            base: {
                "name": docker_manager.container_name(base),
                "image": SERVICES_IMAGE,
                "role": f"service:{service}",
                "command": ["python3", "-m", f"wildfire.{service}"],
                "environment": {
                    "MQTT_BROKER": broker_host,
                    "MQTT_PORT": str(broker_port),
                    "MQTT_CLIENT_ID": isolation_worker.client_id(base),
                    "TOPIC_PREFIX": namespace.prefix,
                    **SERVICE_ENV,
                },
            }
            for service, base in SERVICES
        }
    )
    try:
        for service, _ in SERVICES:
            monitor.wait_for(f"system/{service}/lwt", lambda m: m.payload == b"online", timeout=30)
        yield containers
    finally:
        docker_manager.remove_all(containers.values())


def test_stack_containers_run_on_the_network(docker_manager, stack, broker, isolation_worker):
    identity = isolation_worker.identity
    net = docker_manager.client.networks.get(docker_manager.network_name)
    assert docker_manager.network_name == f"isolation-net-{identity.worker_id}-{identity.run_id}"
    assert net.attrs["Labels"][ownership.WORKER_LABEL] == identity.worker_id
    attached = {c.name: c for c in net.containers}
    ours = {broker.backend.container_name, *(c.name for c in stack.values())}
    assert ours <= set(attached)
    for name, container in attached.items():
        assert name.endswith(f"-{identity.worker_id}-{identity.run_id}"), name
        labels = container.labels
        assert labels[ownership.RUN_LABEL] == identity.run_id
        assert labels[ownership.WORKER_LABEL] == identity.worker_id
        assert labels[ownership.OWNER_PID_LABEL] == str(identity.owner.pid)
    for container in stack.values():
        assert container.is_running()


def test_services_report_health_through_the_broker_container(monitor, stack):
    for service, _ in SERVICES:
        health = monitor.wait_for(f"system/{service}/health", timeout=20).json()
        assert health["mqtt_connected"] is True


def test_discovery_consensus_and_pump_in_containers(monitor, stack):
    for index, camera in enumerate(["cam1", "cam2"], start=1):
        monitor.publish(f"camera/announce/{camera}", json.dumps(announcement(camera, index)), qos=1)
    monitor.wait_for("camera/discovery/cam2", timeout=20)
    for box in growing_boxes(8, start_area=0.01, growth=1.2):
        for camera in ("cam1", "cam2"):
            monitor.publish("frigate/events", json.dumps(frigate_event(camera, box)), qos=1)
    trigger = monitor.wait_for("fire/trigger", timeout=20).json()
    assert sorted(trigger["consensus_cameras"]) == ["cam1", "cam2"]
    monitor.wait_for("system/trigger_telemetry", lambda m: m.json()["state"] == "RUNNING", timeout=20)
    monitor.wait_for("system/trigger_telemetry", lambda m: m.json()["state"] == "IDLE", timeout=20)


def test_container_logs_are_readable(stack):
    for name, container in stack.items():
        assert "event=online" in container.logs(), f"{name} never logged online"
