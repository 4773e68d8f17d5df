"""fire_consensus against a real broker, in the test's own topic namespace."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from wildfire.camera_simulator import fire_detection, frigate_event, growing_boxes, telemetry
from wildfire.fire_consensus import FireConsensus

HEALTH = "system/fire_consensus/health"
FAST = {"DETECTION_COOLDOWN": 60, "CAMERA_TIMEOUT": 60}


def register(client: Any, *cameras: str) -> None:
    for camera in cameras:
        client.publish("system/camera_telemetry", json.dumps(telemetry(camera)), qos=1)


def send_fire(
    client: Any,
    cameras: list[str],
    *,
    steps: int = 8,
    growth: float = 1.15,
    frigate: bool = True,
    object_id: str | None = None,
    confidence: float = 0.9,
) -> int:
    """Publish a fire per camera (growing by default); return messages sent."""
    sent = 0
    for box in growing_boxes(steps, growth=growth):
        for camera in cameras:
            if frigate:
                payload = frigate_event(camera, box, score=confidence, object_id=object_id)
                client.publish("frigate/events", json.dumps(payload), qos=1)
            else:
                payload = fire_detection(camera, box, confidence=confidence, object_id=object_id)
                client.publish(f"fire/detection/{camera}", json.dumps(payload), qos=1)
            sent += 1
    return sent


def processed(client: Any, count: int, timeout: float = 10.0) -> dict[str, Any]:
    """Wait for a health message showing ``count`` detections processed.

    The service counts a detection only after any trigger it caused was
    published, so once this returns every trigger has reached the broker
    before the health message that reported the count.
    """
    message = client.wait_for(
        HEALTH, lambda m: m.json()["detections_processed"] >= count, timeout=timeout
    )
    return dict(message.json())


def cameras_online(client: Any, count: int, *, known: int | None = None) -> None:
    """Wait for health showing ``count`` cameras online (and ``known`` known)."""

    def match(message: Any) -> bool:
        health = message.json()
        return bool(
            health["cameras_online"] == count and (known is None or health["cameras_known"] == known)
        )

    client.wait_for(HEALTH, match)


@pytest.fixture
def consensus(start_service: Any, mqtt_client: Any) -> Any:
    def start(**knobs: Any) -> FireConsensus:
        mqtt_client.subscribe("fire/trigger", qos=1)
        mqtt_client.subscribe(HEALTH)
        service: FireConsensus = start_service(FireConsensus, **{**FAST, **knobs})
        return service

    return start


@pytest.mark.parametrize("frigate", [True, False], ids=["frigate-events", "fire-detection"])
def test_two_growing_cameras_trigger(consensus: Any, mqtt_client: Any, frigate: bool) -> None:
    consensus()
    register(mqtt_client, "cam1", "cam2")
    cameras_online(mqtt_client, 2)
    send_fire(mqtt_client, ["cam1", "cam2"], frigate=frigate)
    trigger = mqtt_client.wait_for("fire/trigger").json()
    assert trigger["action"] == "trigger"
    assert trigger["consensus_cameras"] == ["cam1", "cam2"]
    assert trigger["trigger_count"] == 1
    assert trigger["confidence"] == pytest.approx(0.9)
    assert isinstance(trigger["timestamp"], float)
    assert mqtt_client.wait_for("fire/trigger").qos == 1


def test_one_camera_is_not_enough(consensus: Any, mqtt_client: Any) -> None:
    consensus()
    register(mqtt_client, "cam1", "cam2")
    cameras_online(mqtt_client, 2)
    sent = send_fire(mqtt_client, ["cam1"])
    health = processed(mqtt_client, sent)
    assert mqtt_client.messages("fire/trigger") == []
    assert health["trigger_count"] == 0
    assert health["detections_accepted"] == sent


def test_one_camera_triggers_with_threshold_one(consensus: Any, mqtt_client: Any) -> None:
    consensus(CONSENSUS_THRESHOLD=1)
    register(mqtt_client, "cam1")
    cameras_online(mqtt_client, 1)
    send_fire(mqtt_client, ["cam1"])
    assert mqtt_client.wait_for("fire/trigger").json()["consensus_cameras"] == ["cam1"]


def test_shrinking_fires_do_not_trigger(consensus: Any, mqtt_client: Any) -> None:
    consensus()
    register(mqtt_client, "cam1", "cam2")
    cameras_online(mqtt_client, 2)
    sent = send_fire(mqtt_client, ["cam1", "cam2"], growth=0.85)
    processed(mqtt_client, sent)
    assert mqtt_client.messages("fire/trigger") == []


def test_no_second_trigger_during_cooldown(consensus: Any, mqtt_client: Any) -> None:
    consensus(DETECTION_COOLDOWN=60)
    register(mqtt_client, "cam1", "cam2")
    cameras_online(mqtt_client, 2)
    first = send_fire(mqtt_client, ["cam1", "cam2"], object_id="fire-a")
    mqtt_client.wait_for("fire/trigger")
    second = send_fire(mqtt_client, ["cam1", "cam2"], object_id="fire-b")
    health = processed(mqtt_client, first + second)
    assert len(mqtt_client.messages("fire/trigger")) == 1
    assert health["in_cooldown"] is True
    assert health["trigger_count"] == 1


def test_triggers_again_after_cooldown(consensus: Any, mqtt_client: Any) -> None:
    consensus(DETECTION_COOLDOWN=0.2)
    register(mqtt_client, "cam1", "cam2")
    cameras_online(mqtt_client, 2)
    send_fire(mqtt_client, ["cam1", "cam2"], object_id="fire-a")
    mqtt_client.wait_for("fire/trigger")
    mqtt_client.wait_for(
        HEALTH, lambda m: m.json()["trigger_count"] == 1 and m.json()["in_cooldown"] is False
    )
    send_fire(mqtt_client, ["cam1", "cam2"], object_id="fire-b")
    second = mqtt_client.wait_for("fire/trigger", lambda m: m.json()["trigger_count"] == 2)
    assert second.json()["consensus_cameras"] == ["cam1", "cam2"]


def test_offline_camera_does_not_count(consensus: Any, mqtt_client: Any) -> None:
    consensus()
    register(mqtt_client, "cam1", "cam2")
    cameras_online(mqtt_client, 2)
    mqtt_client.publish("camera/status/cam2", json.dumps({"status": "offline"}), qos=1)
    cameras_online(mqtt_client, 1, known=2)
    sent = send_fire(mqtt_client, ["cam1", "cam2"])
    health = processed(mqtt_client, sent)
    assert mqtt_client.messages("fire/trigger") == []
    assert health["detections_ignored"] == sent // 2


def test_camera_goes_offline_after_timeout(consensus: Any, mqtt_client: Any) -> None:
    consensus(CAMERA_TIMEOUT=0.3)
    register(mqtt_client, "cam1", "cam2")
    cameras_online(mqtt_client, 2)
    # no more telemetry: both time out
    cameras_online(mqtt_client, 0, known=2)
    sent = send_fire(mqtt_client, ["cam1", "cam2"])
    processed(mqtt_client, sent)
    assert mqtt_client.messages("fire/trigger") == []


def test_discovery_registers_cameras(consensus: Any, mqtt_client: Any) -> None:
    consensus()
    for camera in ("cam1", "cam2"):
        mqtt_client.publish(
            f"camera/discovery/{camera}", json.dumps({"camera": {"id": camera}}), qos=1
        )
    cameras_online(mqtt_client, 2)
    send_fire(mqtt_client, ["cam1", "cam2"])
    mqtt_client.wait_for("fire/trigger")


def test_pixel_boxes_with_frame_size(consensus: Any, mqtt_client: Any) -> None:
    consensus()
    register(mqtt_client, "cam1", "cam2")
    cameras_online(mqtt_client, 2)
    for box in growing_boxes(8):
        pixels = [box[0] * 1280, box[1] * 720, box[2] * 1280, box[3] * 720]
        for camera in ("cam1", "cam2"):
            event = frigate_event(camera, pixels, frame_width=1280, frame_height=720)
            mqtt_client.publish("frigate/events", json.dumps(event), qos=1)
    mqtt_client.wait_for("fire/trigger")


BAD_INPUTS: list[tuple[str, bytes]] = [
    ("frigate/events", b"not json at all"),
    ("frigate/events", b"[1, 2, 3]"),
    ("frigate/events", b"\xff\xfe\x00garbage"),
    ("frigate/events", json.dumps({"after": {"camera": "cam1", "label": "fire"}}).encode()),
    ("frigate/events", json.dumps(frigate_event("cam1", [0.9, 0.9, 0.1, 0.1])).encode()),
    ("frigate/events", json.dumps(frigate_event("ghost", [0.1, 0.1, 0.2, 0.2])).encode()),
    ("fire/detection", json.dumps({"camera_id": "cam1", "confidence": "very"}).encode()),
    ("fire/detection/cam1", json.dumps({"camera_id": "cam2", "confidence": 0.9}).encode()),
    ("fire/detection", b'{"camera_id": "cam1", "confidence": 0.9, "bbox": ' + b"[0" * 50 + b"}"),
    ("system/camera_telemetry", b'{"camera_id": null}'),
    ("camera/status/cam1", b'{"status": "sleepy"}'),
    ("fire/detection", b"{" + b" " * 70_000 + b"}"),  # over MAX_PAYLOAD_BYTES
]


def test_malformed_payloads_are_survived(
    consensus: Any, mqtt_client: Any, wildfire_log: pytest.LogCaptureFixture, find_log: Any
) -> None:
    service = consensus()
    register(mqtt_client, "cam1", "cam2")
    cameras_online(mqtt_client, 2)
    for topic, payload in BAD_INPUTS:
        mqtt_client.publish(topic, payload, qos=1)
    send_fire(mqtt_client, ["cam1", "cam2"])
    assert mqtt_client.wait_for("fire/trigger").json()["consensus_cameras"] == ["cam1", "cam2"]
    assert service.messages_dropped == len(BAD_INPUTS)
    warnings = find_log(wildfire_log, "payload_dropped", logging.WARNING)
    assert len(warnings) == len(BAD_INPUTS)
    assert any("unknown camera" in line for line in warnings)
    assert any("oversized" in line for line in warnings)
    assert service.connected


def test_prefix_isolation_between_two_instances(
    start_service: Any, mqtt_client: Any, topic_namespace: Any
) -> None:
    """Two instances under sibling prefixes on one broker never see each other."""
    a = start_service(FireConsensus, prefix=topic_namespace.topic("site-a"), **FAST)
    b = start_service(FireConsensus, prefix=topic_namespace.topic("site-b"), **FAST)
    mqtt_client.subscribe("+/fire/trigger", qos=1)
    mqtt_client.subscribe(f"+/{HEALTH}")
    for site in ("site-a", "site-b"):
        for camera in ("cam1", "cam2"):
            mqtt_client.publish(
                f"{site}/system/camera_telemetry", json.dumps(telemetry(camera)), qos=1
            )
    for site in ("site-a", "site-b"):
        mqtt_client.wait_for(f"{site}/{HEALTH}", lambda m: m.json()["cameras_online"] == 2)
    sent = 0
    for box in growing_boxes(8):
        for camera in ("cam1", "cam2"):
            event = json.dumps(frigate_event(camera, box))
            mqtt_client.publish("site-a/frigate/events", event, qos=1)
            sent += 1
    mqtt_client.wait_for("site-a/fire/trigger")
    mqtt_client.wait_for(
        f"site-a/{HEALTH}", lambda m: m.json()["detections_processed"] >= sent
    )
    assert mqtt_client.messages("site-b/fire/trigger") == []
    assert (a.detections_received, b.detections_received) == (sent, 0)
    assert b.engine.trigger_count == 0
