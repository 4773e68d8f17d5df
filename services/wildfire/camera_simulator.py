"""A simulated camera source for tests and demos.

Payload builders (pure functions) for the messages cameras and Frigate send,
and :class:`CameraSimulator`, a small service that announces ``NUM_CAMERAS``
cameras every ``ANNOUNCE_INTERVAL`` seconds and, when ``SIMULATE_FIRE`` names
cameras, publishes a growing fire for them (Frigate events or direct
``fire/detection`` messages, ``DETECTION_FORMAT``).

Run ``python -m wildfire.camera_simulator`` (configured through the
environment like the services) or use it in-process::

    with CameraSimulator(CameraSimulatorConfig.from_env(env)) as sim:
        sim.wait_ready()
        sim.publish_growing_fire(["cam1", "cam2"], steps=8)
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from wildfire.common import (
    ConfigError,
    MqttService,
    ServiceConfig,
    knob,
    non_negative,
    positive,
    run_service,
    valid_topic_level,
)

__all__ = [
    "CameraSimulator",
    "CameraSimulatorConfig",
    "announcement",
    "camera_ids",
    "fire_detection",
    "frigate_event",
    "growing_boxes",
    "main",
    "telemetry",
]


# ---------------------------------------------------------------------------
# payload builders


def camera_ids(count: int, prefix: str = "cam") -> list[str]:
    """``["cam1", "cam2", ...]``."""
    return [f"{prefix}{index}" for index in range(1, count + 1)]


def announcement(camera_id: str, index: int = 1) -> dict[str, Any]:
    """A ``camera/announce/<camera_id>`` payload (addresses from TEST-NET-1)."""
    ip = f"192.0.2.{(index % 250) + 1}"
    return {
        "id": camera_id,
        "ip": ip,
        "name": f"Simulated camera {camera_id}",
        "rtsp_url": f"rtsp://{ip}:554/stream1",
        "capabilities": ["h264", "onvif"],
    }


def telemetry(camera_id: str, status: str = "online") -> dict[str, Any]:
    """A ``system/camera_telemetry`` payload."""
    return {"camera_id": camera_id, "status": status}


def frigate_event(
    camera_id: str,
    box: Sequence[float],
    *,
    score: float = 0.9,
    object_id: str | None = None,
    label: str = "fire",
    event_type: str = "update",
    frame_width: int | None = None,
    frame_height: int | None = None,
) -> dict[str, Any]:
    """A Frigate ``frigate/events`` payload for one tracked object."""
    after: dict[str, Any] = {
        "id": object_id or f"{camera_id}-{label}-1",
        "camera": camera_id,
        "label": label,
        "top_score": score,
        "score": score,
        "box": list(box),
    }
    if frame_width is not None and frame_height is not None:
        after["frame_width"] = frame_width
        after["frame_height"] = frame_height
    return {"type": event_type, "before": None, "after": after}


def fire_detection(
    camera_id: str,
    box: Sequence[float],
    *,
    confidence: float = 0.9,
    object_id: str | None = None,
    label: str = "fire",
) -> dict[str, Any]:
    """A direct ``fire/detection`` payload."""
    return {
        "camera_id": camera_id,
        "confidence": confidence,
        "object": label,
        "object_id": object_id or f"{camera_id}-{label}-1",
        "bbox": list(box),
    }


def growing_boxes(
    steps: int,
    *,
    start_area: float = 0.01,
    growth: float = 1.15,
    center: tuple[float, float] = (0.5, 0.5),
) -> list[list[float]]:
    """``steps`` square normalized boxes whose area changes by ``growth`` each step.

    ``growth < 1`` gives a shrinking fire.  Boxes are clamped to the frame.
    """
    if steps < 0 or start_area <= 0 or growth <= 0:
        msg = f"need steps >= 0, start_area > 0, growth > 0; got {steps}, {start_area}, {growth}"
        raise ValueError(msg)
    boxes = []
    cx, cy = center
    for step in range(steps):
        side = min(1.0, math.sqrt(start_area * growth**step))
        half = side / 2
        x1, y1 = max(0.0, cx - half), max(0.0, cy - half)
        x2, y2 = min(1.0, cx + half), min(1.0, cy + half)
        boxes.append([round(x1, 6), round(y1, 6), round(x2, 6), round(y2, 6)])
    return boxes


# ---------------------------------------------------------------------------
# the simulator service


def topic_level(value: str) -> str | None:
    return None if valid_topic_level(value) else "must be one topic level (no / + #)"


@dataclass(frozen=True, kw_only=True)
class CameraSimulatorConfig(ServiceConfig):
    """Environment knobs of the simulator."""

    num_cameras: int = knob("NUM_CAMERAS", 2, "int", non_negative, "cameras to announce")
    camera_id_prefix: str = knob(
        "CAMERA_ID_PREFIX", "cam", "str", topic_level, "camera id prefix (one topic level)"
    )
    announce_interval: float = knob(
        "ANNOUNCE_INTERVAL", 5.0, "float", positive, "seconds between announcements"
    )
    simulate_fire: tuple[str, ...] = knob(
        "SIMULATE_FIRE", (), "csv", None, "cameras that see a growing fire (comma list)"
    )
    fire_interval: float = knob(
        "FIRE_INTERVAL", 0.5, "float", positive, "seconds between fire detections"
    )
    detection_format: str = knob("DETECTION_FORMAT", "frigate", "str", None, "frigate or direct")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.detection_format not in {"frigate", "direct"}:
            msg = f"DETECTION_FORMAT={self.detection_format!r} is invalid: use frigate or direct"
            raise ConfigError(msg)


class CameraSimulator(MqttService):
    """Announces simulated cameras and publishes detections for them."""

    SERVICE_NAME: ClassVar[str] = "camera_simulator"
    CONFIG_CLASS: ClassVar[type[ServiceConfig]] = CameraSimulatorConfig
    config: CameraSimulatorConfig

    def __init__(self, config: CameraSimulatorConfig | None = None) -> None:
        super().__init__(config if config is not None else CameraSimulatorConfig.from_env())
        self.camera_ids = camera_ids(self.config.num_cameras, self.config.camera_id_prefix)
        self.announcements_sent = 0
        self.detections_sent = 0
        self._fire_step = itertools.count()
        self._lock = threading.Lock()

    def health_fields(self) -> dict[str, Any]:
        return {
            "cameras": len(self.camera_ids),
            "announcements_sent": self.announcements_sent,
            "detections_sent": self.detections_sent,
        }

    def on_start(self) -> None:
        self.scheduler.call_every(self.config.announce_interval, self.announce_all, name="announce")
        if self.config.simulate_fire:
            self.scheduler.call_every(self.config.fire_interval, self._fire_tick, name="fire")

    def on_ready(self) -> None:
        self.announce_all()

    def announce_all(self) -> None:
        for index, camera_id in enumerate(self.camera_ids, start=1):
            if self.publish(f"camera/announce/{camera_id}", announcement(camera_id, index), qos=1):
                self.announcements_sent += 1

    def publish_detection(
        self,
        camera_id: str,
        box: Sequence[float],
        *,
        confidence: float = 0.9,
        object_id: str | None = None,
        label: str = "fire",
        via: str | None = None,
    ) -> bool:
        """One detection, as a Frigate event or a direct ``fire/detection``."""
        fmt = via or self.config.detection_format
        if fmt == "frigate":
            sent = self.publish(
                "frigate/events",
                frigate_event(camera_id, box, score=confidence, object_id=object_id, label=label),
            )
        else:
            sent = self.publish(
                f"fire/detection/{camera_id}",
                fire_detection(
                    camera_id, box, confidence=confidence, object_id=object_id, label=label
                ),
            )
        if sent:
            self.detections_sent += 1
        return sent

    def publish_growing_fire(
        self,
        cameras: Iterable[str],
        *,
        steps: int = 8,
        start_area: float = 0.01,
        growth: float = 1.15,
        confidence: float = 0.9,
        via: str | None = None,
    ) -> int:
        """``steps`` detections per camera of a fire growing by ``growth`` per step."""
        sent = 0
        boxes = growing_boxes(steps, start_area=start_area, growth=growth)
        cameras = list(cameras)
        for box in boxes:
            for camera_id in cameras:
                sent += self.publish_detection(camera_id, box, confidence=confidence, via=via)
        return sent

    def _fire_tick(self) -> None:
        with self._lock:
            step = next(self._fire_step) % 40
        box = growing_boxes(step + 1, start_area=0.005, growth=1.1)[-1]
        for camera_id in self.config.simulate_fire:
            self.publish_detection(camera_id, box)


def main() -> int:
    """``python -m wildfire.camera_simulator``: announce cameras until SIGTERM/SIGINT."""
    return run_service(CameraSimulator)


if __name__ == "__main__":
    raise SystemExit(main())
