"""Multi-camera fire consensus: trigger the pump only when cameras agree.

A detection counts when its confidence is at least ``MIN_CONFIDENCE`` and its
box covers between ``MIN_AREA_RATIO`` and ``MAX_AREA_RATIO`` of the frame.  For
every camera and object the service keeps the box areas seen within
``CAMERA_WINDOW`` seconds; the fire is *growing* when the median of the last
``MOVING_AVERAGE_WINDOW`` areas is at least ``AREA_GROWTH_RATIO`` times the
median of the first ones.  When ``CONSENSUS_THRESHOLD`` online cameras see a
growing fire, ``fire/trigger`` is published (QoS 1), then nothing triggers
again for ``DETECTION_COOLDOWN`` seconds.

Cameras become known and online through ``system/camera_telemetry``,
``camera/discovery/<id>`` or ``camera/status/<id>``; they go offline when
none of those arrived for ``CAMERA_TIMEOUT`` seconds (or on an explicit
offline status).  Detections from unknown cameras are dropped with a warning,
detections from offline cameras are ignored.

:class:`ConsensusEngine` holds the rule and has no I/O (time is passed in);
:class:`FireConsensus` is the MQTT service around it.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from wildfire.common import (
    BadPayload,
    ConfigError,
    MqttService,
    ServiceConfig,
    knob,
    log_event,
    non_negative,
    parse_json_object,
    positive,
    require_number,
    run_service,
    unit_interval,
    valid_topic_level,
)

__all__ = [
    "ConsensusEngine",
    "ConsensusRules",
    "Detection",
    "DetectionResult",
    "FireConsensus",
    "FireConsensusConfig",
    "TriggerDecision",
    "box_area",
    "is_growing",
    "main",
]

FIRE_LABELS = frozenset({"fire", "smoke"})


def at_least_one(value: float) -> str | None:
    return None if value >= 1.0 else "must be >= 1.0"


@dataclass(frozen=True, kw_only=True)
class FireConsensusConfig(ServiceConfig):
    """Environment knobs of the consensus service."""

    consensus_threshold: int = knob(
        "CONSENSUS_THRESHOLD", 2, "int", positive, "online cameras that must agree"
    )
    min_confidence: float = knob(
        "MIN_CONFIDENCE", 0.7, "float", unit_interval, "lowest detection confidence used"
    )
    min_area_ratio: float = knob(
        "MIN_AREA_RATIO", 0.001, "float", unit_interval, "smallest box area (fraction of frame)"
    )
    max_area_ratio: float = knob(
        "MAX_AREA_RATIO", 0.8, "float", unit_interval, "largest box area (fraction of frame)"
    )
    area_growth_ratio: float = knob(
        "AREA_GROWTH_RATIO", 1.2, "float", at_least_one, "growth that counts as a growing fire"
    )
    moving_average_window: int = knob(
        "MOVING_AVERAGE_WINDOW", 3, "int", positive, "areas in each median (N)"
    )
    camera_window: float = knob(
        "CAMERA_WINDOW", 10.0, "float", positive, "seconds of detections kept per object"
    )
    detection_cooldown: float = knob(
        "DETECTION_COOLDOWN", 60.0, "float", non_negative, "seconds between triggers"
    )
    camera_timeout: float = knob(
        "CAMERA_TIMEOUT", 120.0, "float", positive, "seconds without telemetry -> offline"
    )
    max_history: int = knob(
        "MAX_HISTORY_PER_OBJECT", 1000, "int", positive, "areas kept per object at most"
    )
    max_objects: int = knob(
        "MAX_OBJECTS_PER_CAMERA", 64, "int", positive, "objects tracked per camera (LRU)"
    )
    max_cameras: int = knob("MAX_CAMERAS", 1000, "int", positive, "cameras remembered at most")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_area_ratio >= self.max_area_ratio:
            msg = (
                f"MIN_AREA_RATIO={self.min_area_ratio!r} is invalid: must be below "
                f"MAX_AREA_RATIO={self.max_area_ratio!r}"
            )
            raise ConfigError(msg)


# ---------------------------------------------------------------------------
# pure logic


def is_growing(areas: Sequence[float], window: int, ratio: float) -> bool:
    """Median of the last ``window`` areas >= ``ratio`` x median of the first.

    Needs at least ``2 * window`` areas so the two medians never share a value.
    """
    if window < 1:
        msg = f"window must be >= 1, got {window!r}"
        raise ValueError(msg)
    if ratio <= 0:
        msg = f"ratio must be > 0, got {ratio!r}"
        raise ValueError(msg)
    if len(areas) < 2 * window:
        return False
    first = statistics.median(areas[:window])
    last = statistics.median(areas[-window:])
    if first <= 0:
        return False
    return last >= ratio * first


def box_area(
    box: object,
    frame_width: float | None = None,
    frame_height: float | None = None,
) -> float:
    """Area of ``[x1, y1, x2, y2]`` as a fraction of the frame.

    Without a frame size the box must be normalized (0..1); with one, pixel
    coordinates are divided by it.  Raises :class:`ValueError` otherwise.
    """
    if not isinstance(box, list | tuple) or len(box) != 4:
        msg = f"box must be [x1, y1, x2, y2], got {box!r}"
        raise ValueError(msg)
    coords: list[float] = []
    for value in box:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            msg = f"box coordinates must be numbers, got {box!r}"
            raise ValueError(msg)
        coords.append(float(value))
    x1, y1, x2, y2 = coords
    if frame_width is not None or frame_height is not None:
        if not frame_width or not frame_height or frame_width <= 0 or frame_height <= 0:
            msg = f"frame size must be two positive numbers, got {frame_width!r}x{frame_height!r}"
            raise ValueError(msg)
        x1, x2 = x1 / frame_width, x2 / frame_width
        y1, y2 = y1 / frame_height, y2 / frame_height
    if min(x1, y1, x2, y2) < 0.0 or max(x1, y1, x2, y2) > 1.0:
        msg = f"box {box!r} lies outside the frame (pixel boxes need the frame size)"
        raise ValueError(msg)
    if x2 <= x1 or y2 <= y1:
        msg = f"box {box!r} has no area (need x2 > x1 and y2 > y1)"
        raise ValueError(msg)
    return (x2 - x1) * (y2 - y1)


@dataclass(frozen=True)
class ConsensusRules:
    """The numbers of the consensus rule (all from the environment)."""

    threshold: int = 2
    min_confidence: float = 0.7
    min_area: float = 0.001
    max_area: float = 0.8
    growth_ratio: float = 1.2
    window: int = 3
    camera_window: float = 10.0
    cooldown: float = 60.0
    camera_timeout: float = 120.0
    max_history: int = 1000
    max_objects: int = 64
    max_cameras: int = 1000

    @classmethod
    def from_config(cls, config: FireConsensusConfig) -> ConsensusRules:
        return cls(
            threshold=config.consensus_threshold,
            min_confidence=config.min_confidence,
            min_area=config.min_area_ratio,
            max_area=config.max_area_ratio,
            growth_ratio=config.area_growth_ratio,
            window=config.moving_average_window,
            camera_window=config.camera_window,
            cooldown=config.detection_cooldown,
            camera_timeout=config.camera_timeout,
            max_history=config.max_history,
            max_objects=config.max_objects,
            max_cameras=config.max_cameras,
        )


@dataclass(frozen=True)
class Detection:
    """One fire or smoke detection, its box already reduced to an area fraction."""

    camera_id: str
    object_id: str
    confidence: float
    area: float


@dataclass(frozen=True)
class TriggerDecision:
    """A consensus was reached: publish ``fire/trigger``."""

    cameras: tuple[str, ...]
    confidence: float
    trigger_count: int
    at: float


@dataclass(frozen=True)
class DetectionResult:
    """What happened to one detection: ``reason`` says why it was not used."""

    accepted: bool
    reason: str = ""
    trigger: TriggerDecision | None = None


class _Track:
    """Areas of one object on one camera within the camera window."""

    __slots__ = ("confidence", "samples")

    def __init__(self, max_history: int) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=max_history)
        self.confidence = 0.0

    def growing(self, window: int, ratio: float) -> bool:
        samples = self.samples
        if len(samples) < 2 * window:
            return False
        # Only the first and the last ``window`` areas matter; deque ends are O(1).
        ends = [samples[i][1] for i in range(window)]
        ends.extend(samples[i][1] for i in range(-window, 0))
        return is_growing(ends, window, ratio)

    def prune(self, oldest: float) -> None:
        while self.samples and self.samples[0][0] < oldest:
            self.samples.popleft()


class _Camera:
    __slots__ = ("last_seen", "offline", "tracks")

    def __init__(self, now: float) -> None:
        self.last_seen = now
        self.offline = False
        self.tracks: OrderedDict[str, _Track] = OrderedDict()


class ConsensusEngine:
    """The consensus rule over cameras and object tracks; no I/O, time passed in.

    Not thread-safe on its own; :class:`FireConsensus` serialises access.
    """

    def __init__(self, rules: ConsensusRules | None = None) -> None:
        self.rules = rules or ConsensusRules()
        if self.rules.threshold < 1:
            msg = f"threshold must be >= 1, got {self.rules.threshold!r}"
            raise ValueError(msg)
        self._cameras: OrderedDict[str, _Camera] = OrderedDict()
        self.trigger_count = 0
        self.last_trigger: float | None = None

    # -- cameras -------------------------------------------------------

    def camera_seen(self, camera_id: str, now: float) -> bool:
        """Record a sign of life; True when the camera was new."""
        camera = self._cameras.get(camera_id)
        if camera is None:
            self._cameras[camera_id] = _Camera(now)
            while len(self._cameras) > self.rules.max_cameras:
                self._cameras.popitem(last=False)
            return True
        camera.last_seen = now
        camera.offline = False
        self._cameras.move_to_end(camera_id)
        return False

    def camera_offline(self, camera_id: str) -> None:
        camera = self._cameras.get(camera_id)
        if camera is not None:
            camera.offline = True

    def knows(self, camera_id: str) -> bool:
        return camera_id in self._cameras

    def is_online(self, camera_id: str, now: float) -> bool:
        camera = self._cameras.get(camera_id)
        return camera is not None and self._online(camera, now)

    def _online(self, camera: _Camera, now: float) -> bool:
        return not camera.offline and now - camera.last_seen <= self.rules.camera_timeout

    def online_cameras(self, now: float) -> list[str]:
        return [cid for cid, camera in self._cameras.items() if self._online(camera, now)]

    @property
    def known_cameras(self) -> int:
        return len(self._cameras)

    # -- detections ----------------------------------------------------

    def forget_object(self, camera_id: str, object_id: str) -> None:
        camera = self._cameras.get(camera_id)
        if camera is not None:
            camera.tracks.pop(object_id, None)

    def add_detection(self, detection: Detection, now: float) -> DetectionResult:
        """Record ``detection`` if it qualifies, then check for consensus."""
        rules = self.rules
        camera = self._cameras.get(detection.camera_id)
        if camera is None:
            return DetectionResult(False, "unknown_camera")
        if not self._online(camera, now):
            return DetectionResult(False, "camera_offline")
        if detection.confidence < rules.min_confidence:
            return DetectionResult(False, "low_confidence")
        if not rules.min_area <= detection.area <= rules.max_area:
            return DetectionResult(False, "area_out_of_range")
        track = camera.tracks.get(detection.object_id)
        if track is None:
            track = camera.tracks[detection.object_id] = _Track(rules.max_history)
            while len(camera.tracks) > rules.max_objects:
                camera.tracks.popitem(last=False)
        else:
            camera.tracks.move_to_end(detection.object_id)
        track.samples.append((now, detection.area))
        track.confidence = detection.confidence
        return DetectionResult(True, trigger=self.evaluate(now))

    def growing_cameras(self, now: float) -> dict[str, float]:
        """Online cameras with a growing fire, and their best confidence."""
        rules = self.rules
        oldest = now - rules.camera_window
        found: dict[str, float] = {}
        for camera_id, camera in self._cameras.items():
            if not camera.tracks or not self._online(camera, now):
                continue
            best = -1.0
            for object_id in list(camera.tracks):
                track = camera.tracks[object_id]
                track.prune(oldest)
                if not track.samples:
                    del camera.tracks[object_id]
                    continue
                if track.growing(rules.window, rules.growth_ratio):
                    best = max(best, track.confidence)
            if best >= 0:
                found[camera_id] = best
        return found

    def in_cooldown(self, now: float) -> bool:
        return self.last_trigger is not None and now - self.last_trigger < self.rules.cooldown

    def evaluate(self, now: float) -> TriggerDecision | None:
        """Trigger when enough online cameras see a growing fire and no cooldown runs."""
        if self.in_cooldown(now):
            return None
        growing = self.growing_cameras(now)
        if len(growing) < self.rules.threshold:
            return None
        self.trigger_count += 1
        self.last_trigger = now
        confidence = sum(growing.values()) / len(growing)
        return TriggerDecision(
            cameras=tuple(sorted(growing)),
            confidence=round(confidence, 4),
            trigger_count=self.trigger_count,
            at=now,
        )


# ---------------------------------------------------------------------------
# payload parsing


def _frame_size(data: Mapping[str, Any]) -> tuple[float | None, float | None]:
    shape = data.get("frame_shape")
    if isinstance(shape, list | tuple) and len(shape) >= 2:
        height, width = shape[0], shape[1]
    else:
        width, height = data.get("frame_width"), data.get("frame_height")
    if width is None and height is None:
        return None, None
    for value in (width, height):
        if isinstance(value, bool) or not isinstance(value, int | float):
            msg = f"frame size must be numbers, got {width!r}x{height!r}"
            raise BadPayload(msg)
    return float(width), float(height)


def _area(data: Mapping[str, Any], *keys: str) -> float:
    box = next((data[key] for key in keys if key in data), None)
    if box is None:
        msg = f"missing box (one of {', '.join(keys)})"
        raise BadPayload(msg)
    width, height = _frame_size(data)
    try:
        return box_area(box, width, height)
    except ValueError as error:
        raise BadPayload(str(error)) from None


def _camera_id(value: object) -> str:
    if not isinstance(value, str) or not valid_topic_level(value):
        msg = f"camera id must be a non-empty string without / + #, got {value!r}"
        raise BadPayload(msg)
    return value


def _object_id(value: object, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int):
        msg = f"object id must be a string or integer, got {value!r}"
        raise BadPayload(msg)
    return str(value)


def parse_fire_detection(topic: str, data: Mapping[str, Any]) -> Detection | None:
    """``fire/detection[/<camera>]`` payload -> Detection (None: not fire/smoke)."""
    label = data.get("object", data.get("label", "fire"))
    if label not in FIRE_LABELS:
        return None
    from_topic = topic.split("/", 2)[2] if topic.count("/") >= 2 else None
    camera_id = data.get("camera_id", from_topic)
    if from_topic is not None and camera_id != from_topic:
        msg = f"camera_id {camera_id!r} does not match topic camera {from_topic!r}"
        raise BadPayload(msg)
    confidence = require_number(data, "confidence")
    return Detection(
        camera_id=_camera_id(camera_id),
        object_id=_object_id(data.get("object_id"), str(label)),
        confidence=confidence,
        area=_area(data, "bbox", "box", "bounding_box"),
    )


def parse_frigate_event(data: Mapping[str, Any]) -> tuple[str, Detection | None, str]:
    """Frigate ``frigate/events`` payload -> (event type, detection or None, camera)."""
    after = data.get("after")
    if not isinstance(after, dict):
        msg = "frigate event needs an 'after' object"
        raise BadPayload(msg)
    event_type = data.get("type", "update")
    camera_id = _camera_id(after.get("camera"))
    if after.get("label") not in FIRE_LABELS:
        return str(event_type), None, camera_id
    score_key = "top_score" if "top_score" in after else "score"
    detection = Detection(
        camera_id=camera_id,
        object_id=_object_id(after.get("id"), str(after.get("label"))),
        confidence=require_number(after, score_key),
        area=_area(after, "box"),
    )
    return str(event_type), detection, camera_id


# ---------------------------------------------------------------------------
# the service


class FireConsensus(MqttService):
    """The consensus service.  ``FireConsensus(FireConsensusConfig.from_env(env))``."""

    SERVICE_NAME: ClassVar[str] = "fire_consensus"
    CONFIG_CLASS: ClassVar[type[ServiceConfig]] = FireConsensusConfig
    config: FireConsensusConfig

    def __init__(self, config: FireConsensusConfig | None = None) -> None:
        super().__init__(config if config is not None else FireConsensusConfig.from_env())
        self.engine = ConsensusEngine(ConsensusRules.from_config(self.config))
        self._lock = threading.Lock()
        self.detections_received = 0
        self.detections_processed = 0
        self.detections_accepted = 0
        self.detections_ignored = 0
        self.triggers_published = 0

    def subscriptions(self) -> list[tuple[str, int]]:
        return [
            ("fire/detection", 0),
            ("fire/detection/+", 0),
            ("frigate/events", 0),
            ("system/camera_telemetry", 1),
            ("camera/discovery/+", 1),
            ("camera/status/+", 1),
        ]

    def health_fields(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            online = self.engine.online_cameras(now)
            return {
                "cameras_online": len(online),
                "online_cameras": online[:50],
                "cameras_known": self.engine.known_cameras,
                "trigger_count": self.engine.trigger_count,
                "in_cooldown": self.engine.in_cooldown(now),
                "detections_received": self.detections_received,
                "detections_processed": self.detections_processed,
                "detections_accepted": self.detections_accepted,
                "detections_ignored": self.detections_ignored,
                "consensus_threshold": self.config.consensus_threshold,
            }

    def handle_message(self, topic: str, payload: bytes) -> None:
        if topic == "frigate/events" or topic.startswith("fire/detection"):
            self._handle_detection(topic, payload)
        elif topic == "system/camera_telemetry":
            data = parse_json_object(payload)
            camera_id = _camera_id(data.get("camera_id"))
            self._camera_status(camera_id, str(data.get("status", "online")))
        elif topic.startswith("camera/discovery/"):
            parse_json_object(payload)
            self._camera_status(_camera_id(topic.split("/", 2)[2]), "online")
        elif topic.startswith("camera/status/"):
            data = parse_json_object(payload)
            self._camera_status(_camera_id(topic.split("/", 2)[2]), str(data.get("status", "")))

    def _camera_status(self, camera_id: str, status: str) -> None:
        with self._lock:
            if status == "offline":
                self.engine.camera_offline(camera_id)
                new = False
            elif status == "online":
                new = self.engine.camera_seen(camera_id, time.monotonic())
            else:
                msg = f"camera status must be online or offline, got {status!r}"
                raise BadPayload(msg)
        if new:
            log_event(self.logger, logging.INFO, "camera_registered", camera=camera_id)
        elif status == "offline":
            log_event(self.logger, logging.INFO, "camera_offline", camera=camera_id)

    def _handle_detection(self, topic: str, payload: bytes) -> None:
        self.detections_received += 1
        try:
            self._process_detection(topic, payload)
        finally:
            # Counted last: a health message showing N processed detections
            # was published after every trigger those detections caused.
            self.detections_processed += 1

    def _process_detection(self, topic: str, payload: bytes) -> None:
        data = parse_json_object(payload)
        if topic == "frigate/events":
            event_type, detection, camera_id = parse_frigate_event(data)
            if event_type == "end":
                with self._lock:
                    if detection is not None:
                        self.engine.forget_object(camera_id, detection.object_id)
                self.detections_ignored += 1
                return
        else:
            detection = parse_fire_detection(topic, data)
        if detection is None:
            self.detections_ignored += 1
            log_event(self.logger, logging.DEBUG, "detection_ignored", reason="not fire or smoke")
            return
        with self._lock:
            result = self.engine.add_detection(detection, time.monotonic())
        if not result.accepted:
            self.detections_ignored += 1
            if result.reason == "unknown_camera":
                # A camera never announced is bad input: warn and drop.
                msg = f"unknown camera {detection.camera_id!r}"
                raise BadPayload(msg)
            log_event(
                self.logger,
                logging.DEBUG,
                "detection_ignored",
                camera=detection.camera_id,
                reason=result.reason,
            )
            return
        self.detections_accepted += 1
        if result.trigger is not None:
            self._publish_trigger(result.trigger)

    def _publish_trigger(self, decision: TriggerDecision) -> None:
        payload = {
            "action": "trigger",
            "consensus_cameras": list(decision.cameras),
            "camera_count": len(decision.cameras),
            "confidence": decision.confidence,
            "trigger_count": decision.trigger_count,
            "timestamp": time.time(),
            "source": self.name,
        }
        sent = self.publish("fire/trigger", payload, qos=1)
        if sent:
            self.triggers_published += 1
        log_event(
            self.logger,
            logging.WARNING,
            "trigger",
            cameras=list(decision.cameras),
            confidence=decision.confidence,
            count=decision.trigger_count,
            published=sent,
        )


def main() -> int:
    """``python -m wildfire.fire_consensus``: run until SIGTERM/SIGINT."""
    return run_service(FireConsensus)


if __name__ == "__main__":
    raise SystemExit(main())
