"""camera_detector: announcement parsing, liveness, and against a real broker."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from wildfire.camera_detector import (
    CameraDetector,
    CameraDetectorConfig,
    CameraRegistry,
    frigate_config,
    parse_announcement,
)
from wildfire.camera_simulator import announcement
from wildfire.common import BadPayload

# -- pure logic --------------------------------------------------------------


def test_parse_announcement() -> None:
    info = parse_announcement("cam1", announcement("cam1", 3))
    assert (info.id, info.ip, info.rtsp_url) == ("cam1", "192.0.2.4", "rtsp://192.0.2.4:554/stream1")
    assert info.capabilities == ("h264", "onvif")
    minimal = parse_announcement("c", {"ip": "::1", "rtsp_url": "rtsps://x/y"})
    assert (minimal.id, minimal.name, minimal.capabilities) == ("c", "c", ())


@pytest.mark.parametrize(
    "change",
    [
        {"id": "other"},
        {"ip": "999.1.1.1"},
        {"ip": None},
        {"rtsp_url": "http://x"},
        {"rtsp_url": 5},
        {"name": ""},
        {"capabilities": "h264"},
        {"capabilities": [1, 2]},
    ],
    ids=lambda change: ",".join(f"{k}={v!r}" for k, v in change.items()),
)
def test_parse_announcement_rejects(change: dict[str, Any]) -> None:
    with pytest.raises(BadPayload):
        parse_announcement("cam1", {**announcement("cam1"), **change})


def test_registry_liveness() -> None:
    registry = CameraRegistry(offline_timeout=10.0, max_cameras=2)
    first = parse_announcement("cam1", announcement("cam1"))
    change = registry.announce(first, 0.0)
    assert (change.new, change.came_online, change.details_changed) == (True, True, True)
    assert registry.announce(first, 5.0) == type(change)("cam1")  # nothing changed
    assert registry.expire(14.0) == []
    assert [c.camera_id for c in registry.expire(15.1)] == ["cam1"]
    assert not registry.is_online("cam1")
    back = registry.announce(first, 16.0)
    assert back.came_online
    assert not back.new
    moved = parse_announcement("cam1", {**announcement("cam1"), "ip": "192.0.2.200"})
    assert registry.announce(moved, 17.0).details_changed
    registry.announce(parse_announcement("cam2", announcement("cam2")), 17.0)
    with pytest.raises(BadPayload, match="limit"):
        registry.announce(parse_announcement("cam3", announcement("cam3")), 17.0)


def test_frigate_config_shape() -> None:
    cameras = [parse_announcement(c, announcement(c, i)) for i, c in enumerate(["b", "a"])]
    config = frigate_config(cameras, CameraDetectorConfig(detect_width=640, detect_height=360))
    assert list(config["cameras"]) == ["a", "b"]
    camera = config["cameras"]["a"]
    assert camera["ffmpeg"]["inputs"][0]["path"].startswith("rtsp://")
    assert camera["detect"]["width"] == 640
    assert camera["objects"]["track"] == ["fire", "smoke"]


# -- against the broker ------------------------------------------------------


@pytest.fixture
def detector(start_service: Any, mqtt_client: Any) -> Any:
    def start(**knobs: Any) -> CameraDetector:
        for topic in ("camera/discovery/+", "camera/status/+", "frigate/config/cameras",
                      "system/camera_telemetry"):
            mqtt_client.subscribe(topic, qos=1)
        service: CameraDetector = start_service(CameraDetector, **knobs)
        return service

    return start


def announce(client: Any, *cameras: str) -> None:
    for index, camera in enumerate(cameras, start=1):
        client.publish(f"camera/announce/{camera}", json.dumps(announcement(camera, index)), qos=1)


def test_announcement_publishes_discovery_status_and_frigate_config(
    detector: Any, mqtt_client: Any
) -> None:
    detector()
    announce(mqtt_client, "cam1", "cam2")
    discovery = mqtt_client.wait_for("camera/discovery/cam2").json()
    assert discovery["camera"]["ip"] == "192.0.2.3"
    status = mqtt_client.wait_for("camera/status/cam1").json()
    assert status["status"] == "online"
    config = mqtt_client.wait_for(
        "frigate/config/cameras", lambda m: len(m.json()["cameras"]) == 2
    ).json()
    assert set(config["cameras"]) == {"cam1", "cam2"}
    heartbeat = mqtt_client.wait_for(
        "system/camera_telemetry", lambda m: m.json()["camera_id"] == "cam2"
    ).json()
    assert heartbeat["status"] == "online"
    # discovery and config are retained for late subscribers
    mqtt_client.subscribe("camera/#")
    mqtt_client.subscribe("frigate/#")
    assert mqtt_client.wait_for("camera/discovery/cam1", lambda m: m.retain)
    assert mqtt_client.wait_for("frigate/config/cameras", lambda m: m.retain)


def test_silent_camera_goes_offline(detector: Any, mqtt_client: Any, wait_until: Any) -> None:
    service = detector(CAMERA_OFFLINE_TIMEOUT=0.3)
    announce(mqtt_client, "cam1")
    mqtt_client.wait_for("camera/status/cam1", lambda m: m.json()["status"] == "online")
    offline = mqtt_client.wait_for(
        "camera/status/cam1", lambda m: m.json()["status"] == "offline"
    )
    assert offline.retain is False  # live delivery; the broker keeps it retained
    mqtt_client.wait_for("frigate/config/cameras", lambda m: m.json()["cameras"] == {})
    assert not service.registry.is_online("cam1")
    announce(mqtt_client, "cam1")

    def online_again() -> bool:
        statuses = [m.json()["status"] for m in mqtt_client.messages("camera/status/cam1")]
        return statuses[-1:] == ["online"] and statuses.count("online") == 2

    wait_until(online_again, what="cam1 online again after re-announcing")
    assert service.registry.is_online("cam1")


def test_malformed_announcements_are_survived(
    detector: Any, mqtt_client: Any, wildfire_log: pytest.LogCaptureFixture, find_log: Any
) -> None:
    service = detector()
    bad = [
        ("camera/announce/cam1", b"garbage"),
        ("camera/announce/cam1", json.dumps({**announcement("cam1"), "ip": "nope"}).encode()),
        ("camera/announce/cam1", json.dumps(announcement("cam9")).encode()),
        ("camera/announce/cam1", b"[]"),
        ("camera/announce/cam1", b"{" + b" " * 70_000 + b"}"),
    ]
    for topic, payload in bad:
        mqtt_client.publish(topic, payload, qos=1)
    announce(mqtt_client, "cam1")
    mqtt_client.wait_for("camera/discovery/cam1")
    assert service.messages_dropped == len(bad)
    assert len(find_log(wildfire_log, "payload_dropped", logging.WARNING)) == len(bad)
