"""End to end over MQTT: camera discovery -> fire consensus -> pump controller.

Migrated form: the services run for this test only (processes, or containers
on the Docker backend) with the test's topic prefix and unique client ids;
the test's client is namespaced; every wait is an event with a deadline, and
"nothing happened" is asserted only after the service reported it processed
the input.
"""

from __future__ import annotations

import json
import time

import pytest

from wildfire.camera_simulator import announcement, frigate_event, growing_boxes

SERVICE_ENV = {
    "HEALTH_INTERVAL": "1",
    "CAMERA_OFFLINE_TIMEOUT": "60",
    "CONSENSUS_THRESHOLD": "2",
    "DETECTION_COOLDOWN": "30",
    "CAMERA_WINDOW": "30",
    "PRIME_DURATION": "0.2",
    "START_DURATION": "0.2",
    "RPM_REDUCTION_DURATION": "0.2",
    "STOP_DURATION": "0.2",
    "REFILL_DURATION": "0.2",
    "COOLDOWN_DURATION": "0.2",
    "FIRE_OFF_DELAY": "1.5",
    "RECONNECT_MIN_DELAY": "1",
    "RECONNECT_MAX_DELAY": "2",
}
SERVICES = ["camera_detector", "fire_consensus", "gpio_trigger"]


class MessageLog:
    """The test's view of the bus: a namespaced client recording every message."""

    def __init__(self, client, topics: list[str]) -> None:
        self.client = client
        self.client.subscribe([(topic, 1) for topic in topics])

    def matching(self, topic_filter: str) -> list[bytes]:
        return [m.payload for m in self.client.messages(topic_filter)]

    def wait_for(self, topic_filter: str, predicate=lambda payload: True, timeout: float = 15.0, since=None) -> bytes:
        return self.client.wait_for(topic_filter, lambda m: predicate(m.payload), timeout=timeout, since=since).payload

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        if not isinstance(payload, bytes | str):
            payload = json.dumps(payload)
        self.client.publish(topic, payload, qos=qos, retain=retain)


def is_state(state: str):
    return lambda payload: json.loads(payload).get("state") == state


def processed_at_least(count: int):
    return lambda payload: json.loads(payload).get("detections_processed", 0) >= count


@pytest.fixture
def stack(parallel_test_context):
    return {name: parallel_test_context.services.start(name, **SERVICE_ENV) for name in SERVICES}


@pytest.fixture
def bus(stack, parallel_test_context):
    return MessageLog(
        parallel_test_context.mqtt_client("e2e-test-monitor"),
        ["system/+/health", "system/+/lwt", "camera/#", "frigate/config/cameras", "fire/trigger", "system/trigger_telemetry"],
    )


def announce_cameras(bus: MessageLog, cameras: list[str]) -> None:
    for index, camera in enumerate(cameras, start=1):
        bus.publish(f"camera/announce/{camera}", announcement(camera, index))
    for camera in cameras:
        bus.wait_for(f"camera/discovery/{camera}")


def grow_fire(bus: MessageLog, cameras: list[str], object_suffix: str = "1") -> int:
    sent = 0
    for box in growing_boxes(8, start_area=0.01, growth=1.2):
        for camera in cameras:
            bus.publish("frigate/events", frigate_event(camera, box, object_id=f"{camera}-fire-{object_suffix}"))
            sent += 1
    return sent


def test_services_start_in_order_and_report_health(bus):
    for service in SERVICES:
        health = json.loads(bus.wait_for(f"system/{service}/health"))
        assert health["service"] == service
        assert health["mqtt_connected"] is True
    assert json.loads(bus.wait_for("system/gpio_trigger/health"))["state"] == "IDLE"


def test_camera_announcement_reaches_discovery_and_frigate_config(bus):
    announce_cameras(bus, ["cam1", "cam2"])
    discovery = json.loads(bus.wait_for("camera/discovery/cam1"))
    assert discovery["camera"]["id"] == "cam1"
    config = bus.wait_for("frigate/config/cameras", lambda p: {"cam1", "cam2"} <= set(json.loads(p)["cameras"]))
    assert json.loads(config)["cameras"]["cam2"]["ffmpeg"]["inputs"][0]["path"].startswith("rtsp://")


def test_two_growing_cameras_trigger_the_pump_until_fire_is_out(bus):
    announce_cameras(bus, ["cam1", "cam2"])
    grow_fire(bus, ["cam1", "cam2"])
    trigger = json.loads(bus.wait_for("fire/trigger"))
    assert sorted(trigger["consensus_cameras"]) == ["cam1", "cam2"]
    bus.wait_for("system/trigger_telemetry", is_state("RUNNING"))
    bus.wait_for("system/trigger_telemetry", is_state("IDLE"))


def test_single_camera_does_not_trigger(bus):
    announce_cameras(bus, ["cam1", "cam2"])
    sent = grow_fire(bus, ["cam1"])
    bus.wait_for("system/fire_consensus/health", processed_at_least(sent))
    assert bus.matching("fire/trigger") == []


def test_cooldown_blocks_a_second_trigger(bus):
    announce_cameras(bus, ["cam1", "cam2"])
    first = grow_fire(bus, ["cam1", "cam2"], object_suffix="1")
    bus.wait_for("fire/trigger")
    second = grow_fire(bus, ["cam1", "cam2"], object_suffix="2")
    health = json.loads(bus.wait_for("system/fire_consensus/health", processed_at_least(first + second)))
    assert health["in_cooldown"] is True
    assert len(bus.matching("fire/trigger")) == 1


def test_broker_restart_every_service_reconnects(bus, mqtt_broker, parallel_test_context):
    for service in SERVICES:
        bus.wait_for(f"system/{service}/health")
    restarted = time.monotonic()
    mqtt_broker.restart()
    watcher = MessageLog(parallel_test_context.mqtt_client("e2e-test-after-restart"), ["system/+/health"])
    for service in SERVICES:
        health = json.loads(watcher.wait_for(f"system/{service}/health", since=restarted))
        assert health["mqtt_connected"] is True


def test_killed_service_goes_offline_and_comes_back(stack, bus, parallel_test_context):
    bus.wait_for("system/fire_consensus/lwt", lambda p: p == b"online")
    stack["fire_consensus"].kill()
    bus.wait_for("system/fire_consensus/lwt", lambda p: p == b"offline", timeout=60)
    came_back = time.monotonic()
    parallel_test_context.services.restart(stack["fire_consensus"])
    assert bus.wait_for("system/fire_consensus/lwt", lambda p: p == b"online", since=came_back) == b"online"
