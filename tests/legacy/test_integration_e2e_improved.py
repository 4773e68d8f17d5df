"""End to end over MQTT: camera discovery -> fire consensus -> pump controller.

Legacy form: the three services run as child processes with fixed client ids
on the fixed broker, the test listens on bare topics, and waits are sleeps.
Serially it passes; under xdist the workers share the broker's topics, kick
each other's clients off (same client ids), and one worker's broker restart
takes down everybody's services.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from wildfire.camera_simulator import announcement, frigate_event, growing_boxes

BROKER_HOST = "localhost"
BROKER_PORT = 18833

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
SERVICES = [
    ("wildfire.camera_detector", "camera-detector-test"),
    ("wildfire.fire_consensus", "fire-consensus-test"),
    ("wildfire.gpio_trigger", "gpio-trigger-test"),
]


class MessageLog:
    """A client that records every message on the given topic filters."""

    def __init__(self, client_id: str, topics: list[str]) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect(BROKER_HOST, BROKER_PORT)
        self.client.loop_start()
        for topic in topics:
            self.client.subscribe(topic, qos=1)
        time.sleep(0.5)

    def _on_message(self, client, userdata, message) -> None:
        with self.cond:
            self.messages.append((message.topic, message.payload))
            self.cond.notify_all()

    def matching(self, topic_filter: str) -> list[bytes]:
        with self.cond:
            return [p for t, p in self.messages if mqtt.topic_matches_sub(topic_filter, t)]

    def wait_for(self, topic_filter: str, predicate=lambda payload: True, timeout: float = 15.0) -> bytes:
        def found():
            return next((p for p in self.matching(topic_filter) if predicate(p)), None)

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


@pytest.fixture
def stack(legacy_services):
    for module, client_id in SERVICES:
        legacy_services.start(module, client_id, **SERVICE_ENV)
    return legacy_services


@pytest.fixture
def bus(stack):
    log = MessageLog(
        "e2e-test-monitor",
        ["system/+/health", "system/+/lwt", "camera/#", "frigate/config/cameras", "fire/trigger", "system/trigger_telemetry"],
    )
    yield log
    log.close()


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
    for service in ("camera_detector", "fire_consensus", "gpio_trigger"):
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
    grow_fire(bus, ["cam1"])
    time.sleep(3)
    assert bus.matching("fire/trigger") == []


def test_cooldown_blocks_a_second_trigger(bus):
    announce_cameras(bus, ["cam1", "cam2"])
    grow_fire(bus, ["cam1", "cam2"], object_suffix="1")
    bus.wait_for("fire/trigger")
    grow_fire(bus, ["cam1", "cam2"], object_suffix="2")
    time.sleep(3)
    assert len(bus.matching("fire/trigger")) == 1


def test_broker_restart_every_service_reconnects(bus, mqtt_broker):
    for service in ("camera_detector", "fire_consensus", "gpio_trigger"):
        bus.wait_for(f"system/{service}/health")
    mqtt_broker.restart()
    time.sleep(5)
    watcher = MessageLog("e2e-test-after-restart", ["system/+/health"])
    try:
        for service in ("camera_detector", "fire_consensus", "gpio_trigger"):
            health = json.loads(watcher.wait_for(f"system/{service}/health"))
            assert health["mqtt_connected"] is True
    finally:
        watcher.close()


def test_killed_service_goes_offline_and_comes_back(stack, bus):
    bus.wait_for("system/fire_consensus/lwt", lambda p: p == b"online")
    stack.procs["fire-consensus-test"].send_signal(signal.SIGKILL)
    stack.procs.pop("fire-consensus-test").wait(10)
    bus.wait_for("system/fire_consensus/lwt", lambda p: p == b"offline", timeout=60)
    stack.start("wildfire.fire_consensus", "fire-consensus-test", **SERVICE_ENV)
    time.sleep(1)
    assert bus.matching("system/fire_consensus/lwt")[-1] == b"online"
