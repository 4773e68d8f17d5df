"""Camera discovery: learn cameras from announcements, track their liveness.

Cameras (or :mod:`wildfire.camera_simulator`) announce themselves on
``camera/announce/<camera_id>`` with JSON ``{id, ip, name, rtsp_url,
capabilities}``.  For each camera the service publishes

* ``camera/discovery/<camera_id>`` (retained): the camera's details, when it
  is new or its details changed;
* ``camera/status/<camera_id>`` (retained): ``online`` on the first
  announcement (and after being offline), ``offline`` when no announcement
  arrived for ``CAMERA_OFFLINE_TIMEOUT`` seconds;
* ``system/camera_telemetry``: a heartbeat per announcement, which
  :mod:`wildfire.fire_consensus` uses to keep the camera online;

and a Frigate-style camera configuration of every online camera on
``frigate/config/cameras`` (retained) whenever that set changes.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from wildfire.common import (
    BadPayload,
    MqttService,
    ServiceConfig,
    knob,
    log_event,
    parse_json_object,
    positive,
    require_text,
    run_service,
    valid_topic_level,
)

__all__ = [
    "CameraDetector",
    "CameraDetectorConfig",
    "CameraInfo",
    "CameraRegistry",
    "frigate_config",
    "main",
    "parse_announcement",
]


@dataclass(frozen=True, kw_only=True)
class CameraDetectorConfig(ServiceConfig):
    """Environment knobs of the camera detector."""

    camera_offline_timeout: float = knob(
        "CAMERA_OFFLINE_TIMEOUT", 60.0, "float", positive, "seconds without announcement -> offline"
    )
    max_cameras: int = knob("MAX_CAMERAS", 256, "int", positive, "cameras tracked at most")
    detect_width: int = knob("DETECT_WIDTH", 1280, "int", positive, "Frigate detect width")
    detect_height: int = knob("DETECT_HEIGHT", 720, "int", positive, "Frigate detect height")
    detect_fps: int = knob("DETECT_FPS", 5, "int", positive, "Frigate detect fps")
    track_objects: tuple[str, ...] = knob(
        "FRIGATE_TRACK_OBJECTS", ("fire", "smoke"), "csv", None, "labels Frigate tracks"
    )


@dataclass(frozen=True)
class CameraInfo:
    """What a camera announced about itself."""

    id: str
    ip: str
    name: str
    rtsp_url: str
    capabilities: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["capabilities"] = list(self.capabilities)
        return data


def parse_announcement(topic_camera: str, data: Mapping[str, Any]) -> CameraInfo:
    """Validate an announcement for the camera named in the topic."""
    camera_id = require_text(data, "id", default=topic_camera)
    if camera_id != topic_camera or not valid_topic_level(camera_id):
        msg = f"announcement id {camera_id!r} does not match topic camera {topic_camera!r}"
        raise BadPayload(msg)
    ip = require_text(data, "ip")
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        msg = f"'ip' must be an IP address, got {ip!r}"
        raise BadPayload(msg) from None
    rtsp_url = require_text(data, "rtsp_url")
    if not rtsp_url.startswith(("rtsp://", "rtsps://")):
        msg = f"'rtsp_url' must start with rtsp://, got {rtsp_url!r}"
        raise BadPayload(msg)
    name = require_text(data, "name", default=camera_id)
    capabilities = data.get("capabilities", [])
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        msg = f"'capabilities' must be a list of strings, got {capabilities!r}"
        raise BadPayload(msg)
    return CameraInfo(camera_id, ip, name, rtsp_url, tuple(capabilities))


@dataclass
class _Entry:
    info: CameraInfo
    last_seen: float
    online: bool = True


@dataclass(frozen=True)
class Change:
    """What an announcement or a liveness check changed."""

    camera_id: str
    new: bool = False
    details_changed: bool = False
    came_online: bool = False
    went_offline: bool = False


class CameraRegistry:
    """Known cameras and their liveness; no I/O, time passed in."""

    def __init__(self, offline_timeout: float, max_cameras: int = 256) -> None:
        self.offline_timeout = offline_timeout
        self.max_cameras = max_cameras
        self._cameras: dict[str, _Entry] = {}

    def announce(self, info: CameraInfo, now: float) -> Change:
        entry = self._cameras.get(info.id)
        if entry is None:
            if len(self._cameras) >= self.max_cameras:
                msg = f"camera limit {self.max_cameras} reached; {info.id!r} ignored"
                raise BadPayload(msg)
            self._cameras[info.id] = _Entry(info, now)
            return Change(info.id, new=True, details_changed=True, came_online=True)
        changed = entry.info != info
        came_online = not entry.online
        entry.info, entry.last_seen, entry.online = info, now, True
        return Change(info.id, details_changed=changed, came_online=came_online)

    def expire(self, now: float) -> list[Change]:
        """Mark cameras silent for longer than the timeout offline."""
        changes = []
        for camera_id, entry in self._cameras.items():
            if entry.online and now - entry.last_seen > self.offline_timeout:
                entry.online = False
                changes.append(Change(camera_id, went_offline=True))
        return changes

    def online(self) -> list[CameraInfo]:
        return [entry.info for entry in self._cameras.values() if entry.online]

    def is_online(self, camera_id: str) -> bool:
        entry = self._cameras.get(camera_id)
        return entry is not None and entry.online

    def __len__(self) -> int:
        return len(self._cameras)


def frigate_config(cameras: list[CameraInfo], config: CameraDetectorConfig) -> dict[str, Any]:
    """A Frigate ``cameras:`` section for ``cameras``."""
    return {
        "cameras": {
            camera.id: {
                "ffmpeg": {"inputs": [{"path": camera.rtsp_url, "roles": ["detect"]}]},
                "detect": {
                    "enabled": True,
                    "width": config.detect_width,
                    "height": config.detect_height,
                    "fps": config.detect_fps,
                },
                "objects": {"track": list(config.track_objects)},
                "ui": {"order": index},
            }
            for index, camera in enumerate(sorted(cameras, key=lambda c: c.id))
        }
    }


class CameraDetector(MqttService):
    """The discovery service.  ``CameraDetector(CameraDetectorConfig.from_env(env))``."""

    SERVICE_NAME: ClassVar[str] = "camera_detector"
    CONFIG_CLASS: ClassVar[type[ServiceConfig]] = CameraDetectorConfig
    config: CameraDetectorConfig

    def __init__(self, config: CameraDetectorConfig | None = None) -> None:
        super().__init__(config if config is not None else CameraDetectorConfig.from_env())
        self.registry = CameraRegistry(self.config.camera_offline_timeout, self.config.max_cameras)
        self._lock = threading.Lock()
        self.announcements_received = 0
        self.frigate_config_published = 0

    def subscriptions(self) -> list[tuple[str, int]]:
        return [("camera/announce/+", 1)]

    def on_start(self) -> None:
        period = max(0.05, min(self.config.camera_offline_timeout / 4, 5.0))
        self.scheduler.call_every(period, self.check_liveness, name="camera-liveness")

    def health_fields(self) -> dict[str, Any]:
        with self._lock:
            return {
                "cameras_known": len(self.registry),
                "cameras_online": len(self.registry.online()),
                "announcements_received": self.announcements_received,
            }

    def handle_message(self, topic: str, payload: bytes) -> None:
        if not topic.startswith("camera/announce/"):
            return
        self.announcements_received += 1
        info = parse_announcement(topic.split("/", 2)[2], parse_json_object(payload))
        with self._lock:
            change = self.registry.announce(info, time.monotonic())
            online = self.registry.online()
        if change.details_changed:
            self.publish(
                f"camera/discovery/{info.id}",
                {"camera": info.as_json(), "status": "online", "timestamp": time.time()},
                qos=1,
                retain=True,
            )
        if change.came_online:
            self._publish_status(info.id, "online")
            log_event(
                self.logger,
                logging.INFO,
                "camera_online",
                camera=info.id,
                ip=info.ip,
                new=change.new,
            )
        self.publish(
            "system/camera_telemetry",
            {"camera_id": info.id, "status": "online", "ip": info.ip, "timestamp": time.time()},
        )
        if change.details_changed or change.came_online:
            self._publish_frigate_config(online)

    def check_liveness(self) -> None:
        """Mark silent cameras offline (runs on the scheduler)."""
        with self._lock:
            changes = self.registry.expire(time.monotonic())
            online = self.registry.online()
        for change in changes:
            self._publish_status(change.camera_id, "offline")
            self.publish(
                "system/camera_telemetry",
                {"camera_id": change.camera_id, "status": "offline", "timestamp": time.time()},
            )
            log_event(self.logger, logging.WARNING, "camera_offline", camera=change.camera_id)
        if changes:
            self._publish_frigate_config(online)

    def _publish_status(self, camera_id: str, status: str) -> None:
        self.publish(
            f"camera/status/{camera_id}",
            {"camera_id": camera_id, "status": status, "timestamp": time.time()},
            qos=1,
            retain=True,
        )

    def _publish_frigate_config(self, online: list[CameraInfo]) -> None:
        if self.publish(
            "frigate/config/cameras", frigate_config(online, self.config), qos=1, retain=True
        ):
            self.frigate_config_published += 1


def main() -> int:
    """``python -m wildfire.camera_detector``: run until SIGTERM/SIGINT."""
    return run_service(CameraDetector)


if __name__ == "__main__":
    raise SystemExit(main())
