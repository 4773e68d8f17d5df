"""End to end over MQTT: camera discovery -> fire consensus -> pump controller.

Migrated form (``invoke migrate`` plus the hand edits listed in
tests/unit/migrate/expected_differences.toml): the services run for this test
only (processes, or containers on the Docker backend) with the test's topic
prefix and unique client ids; the test's client lives in the test's
namespace; every wait is an event with a deadline, and "nothing happened" is
asserted only after the service reported it processed the input.
"""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import pytest

from wildfire.camera_simulator import announcement, frigate_event, growing_boxes
from parallel_isolation import TestMQTTBroker, TopicNamespace

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
    """A client that records every message on the given topic filters."""

    def __init__(self, client_id: str, topics: list[str], *, mqtt_broker: TestMQTTBroker) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect(mqtt_broker.host, mqtt_broker.port)
        self.client.loop_start()
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.subscribe([(topic, 1) for topic in topics])
        assert subscribed.wait(10), "no SUBACK for the subscription"

    def _on_message(self, client, userdata, message) -> None:
        with self.cond:
            self.messages.append((message.topic, message.payload))
            self.cond.notify_all()

    def matching(self, topic_filter: str) -> list[bytes]:
        with self.cond:
            return [p for t, p in self.messages if mqtt.topic_matches_sub(topic_filter, t)]

    def wait_for(self, topic_filter: str, predicate=lambda payload: True, timeout: float = 15.0, skip: int = 0) -> bytes:
        def found():
            return next((p for p in self.matching(topic_filter)[skip:] if predicate(p)), None)

        with self.cond:
            self.cond.wait_for(lambda: found() is not None, timeout)
        payload = found()
        assert payload is not None, f"nothing on {topic_filter} within {timeout} s"
        return payload

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def is_state(state: str):
    return lambda payload: json.loads(payload).get("state") == state


def processed_at_least(count: int):
    return lambda payload: json.loads(payload).get("detections_processed", 0) >= count


@pytest.fixture
def stack(parallel_test_context):
    return {name: parallel_test_context.services.start(name, **SERVICE_ENV) for name in SERVICES}


@pytest.fixture
def bus(stack, mqtt_broker, parallel_test_context, topic_namespace):
    log = MessageLog(
        parallel_test_context.client_id("e2e-test-monitor"),
        [topic_namespace.filter("system/+/health"), topic_namespace.filter("system/+/lwt"), topic_namespace.filter("camera/#"), topic_namespace.filter("frigate/config/cameras"), topic_namespace.filter("fire/trigger"), topic_namespace.filter("system/trigger_telemetry")],
        mqtt_broker=mqtt_broker,
    )
    yield log
    log.close()


def announce_cameras(bus: MessageLog, cameras: list[str], *, topic_namespace: TopicNamespace) -> None:
    for index, camera in enumerate(cameras, start=1):
        bus.publish(topic_namespace.topic(f"camera/announce/{camera}"), announcement(camera, index))
    for camera in cameras:
        bus.wait_for(topic_namespace.filter(f"camera/discovery/{camera}"))


def grow_fire(bus: MessageLog, cameras: list[str], object_suffix: str = "1", *, topic_namespace: TopicNamespace) -> int:
    sent = 0
    for box in growing_boxes(8, start_area=0.01, growth=1.2):
        for camera in cameras:
            bus.publish(topic_namespace.topic("frigate/events"), frigate_event(camera, box, object_id=f"{camera}-fire-{object_suffix}"))
            sent += 1
    return sent


def test_services_start_in_order_and_report_health(bus, topic_namespace):
    for service in SERVICES:
        health = json.loads(bus.wait_for(topic_namespace.filter(f"system/{service}/health")))
        assert health["service"] == service
        assert health["mqtt_connected"] is True
    assert json.loads(bus.wait_for(topic_namespace.filter("system/gpio_trigger/health")))["state"] == "IDLE"


def test_camera_announcement_reaches_discovery_and_frigate_config(bus, topic_namespace):
    announce_cameras(bus, ["cam1", "cam2"], topic_namespace=topic_namespace)
    discovery = json.loads(bus.wait_for(topic_namespace.filter("camera/discovery/cam1")))
    assert discovery["camera"]["id"] == "cam1"
    config = bus.wait_for(topic_namespace.filter("frigate/config/cameras"), lambda p: {"cam1", "cam2"} <= set(json.loads(p)["cameras"]))
    assert json.loads(config)["cameras"]["cam2"]["ffmpeg"]["inputs"][0]["path"].startswith("rtsp://")


def test_two_growing_cameras_trigger_the_pump_until_fire_is_out(bus, topic_namespace):
    announce_cameras(bus, ["cam1", "cam2"], topic_namespace=topic_namespace)
    grow_fire(bus, ["cam1", "cam2"], topic_namespace=topic_namespace)
    trigger = json.loads(bus.wait_for(topic_namespace.filter("fire/trigger")))
    assert sorted(trigger["consensus_cameras"]) == ["cam1", "cam2"]
    bus.wait_for(topic_namespace.filter("system/trigger_telemetry"), is_state("RUNNING"))
    bus.wait_for(topic_namespace.filter("system/trigger_telemetry"), is_state("IDLE"))


def test_single_camera_does_not_trigger(bus, topic_namespace):
    announce_cameras(bus, ["cam1", "cam2"], topic_namespace=topic_namespace)
    sent = grow_fire(bus, ["cam1"], topic_namespace=topic_namespace)
    bus.wait_for(topic_namespace.filter("system/fire_consensus/health"), processed_at_least(sent))
    assert bus.matching(topic_namespace.filter("fire/trigger")) == []


def test_cooldown_blocks_a_second_trigger(bus, topic_namespace):
    announce_cameras(bus, ["cam1", "cam2"], topic_namespace=topic_namespace)
    first = grow_fire(bus, ["cam1", "cam2"], object_suffix="1", topic_namespace=topic_namespace)
    bus.wait_for(topic_namespace.filter("fire/trigger"))
    second = grow_fire(bus, ["cam1", "cam2"], object_suffix="2", topic_namespace=topic_namespace)
    health = json.loads(bus.wait_for(topic_namespace.filter("system/fire_consensus/health"), processed_at_least(first + second)))
    assert health["in_cooldown"] is True
    assert len(bus.matching(topic_namespace.filter("fire/trigger"))) == 1


def test_broker_restart_every_service_reconnects(bus, mqtt_broker, parallel_test_context, topic_namespace):
    for service in SERVICES:
        bus.wait_for(topic_namespace.filter(f"system/{service}/health"))
    mqtt_broker.restart()  # same port; the fresh broker holds no retained messages
    watcher = MessageLog(parallel_test_context.client_id("e2e-test-after-restart"), [topic_namespace.filter("system/+/health")], mqtt_broker=mqtt_broker)
    try:
        for service in SERVICES:
            health = json.loads(watcher.wait_for(topic_namespace.filter(f"system/{service}/health")))
            assert health["mqtt_connected"] is True
    finally:
        watcher.close()


def test_killed_service_goes_offline_and_comes_back(stack, bus, topic_namespace, parallel_test_context):
    bus.wait_for(topic_namespace.filter("system/fire_consensus/lwt"), lambda p: p == b"online")
    stack["fire_consensus"].kill()
    bus.wait_for(topic_namespace.filter("system/fire_consensus/lwt"), lambda p: p == b"offline", timeout=60)
    seen = len(bus.matching(topic_namespace.filter("system/fire_consensus/lwt")))
    parallel_test_context.services.restart(stack["fire_consensus"])
    assert bus.wait_for(topic_namespace.filter("system/fire_consensus/lwt"), lambda p: p == b"online", skip=seen) == b"online"
