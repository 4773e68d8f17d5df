"""The consensus rule without a broker: growth, box areas, cameras, cooldown."""

from __future__ import annotations

import math
from typing import Any

import pytest

from wildfire.camera_simulator import growing_boxes
from wildfire.common import BadPayload
from wildfire.fire_consensus import (
    ConsensusEngine,
    ConsensusRules,
    Detection,
    box_area,
    is_growing,
    parse_fire_detection,
    parse_frigate_event,
)


@pytest.mark.parametrize(
    ("areas", "window", "ratio", "expected"),
    [
        ([0.01, 0.011, 0.012, 0.013, 0.014, 0.015], 3, 1.2, True),  # 0.014 / 0.011 = 1.27
        ([0.01, 0.011, 0.012, 0.0125, 0.013, 0.0128], 3, 1.2, False),  # 0.0128/0.011 = 1.16
        ([0.01] * 6, 3, 1.2, False),  # steady
        ([0.02, 0.018, 0.016, 0.014, 0.012, 0.01], 3, 1.2, False),  # shrinking
        ([0.01, 0.02, 0.03, 0.04, 0.05], 3, 1.2, False),  # fewer than 2N
        ([], 3, 1.2, False),
        ([0.01, 0.013], 1, 1.2, True),
        ([0.01, 0.011], 1, 1.2, False),
        # medians resist one outlier
        ([0.01, 0.5, 0.01, 0.011, 0.011, 0.011], 3, 1.2, False),
        ([0.01, 0.01, 0.01, 0.013, 0.001, 0.013], 3, 1.2, True),
        ([0.0, 0.0, 0.0, 0.1, 0.1, 0.1], 3, 1.2, False),  # zero start: never "growing"
    ],
)
def test_is_growing(areas: list[float], window: int, ratio: float, expected: bool) -> None:
    assert is_growing(areas, window, ratio) is expected


@pytest.mark.parametrize(("window", "ratio"), [(0, 1.2), (-1, 1.2), (3, 0.0), (3, -1.0)])
def test_is_growing_rejects_bad_parameters(window: int, ratio: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        is_growing([0.1] * 10, window, ratio)


@pytest.mark.parametrize(
    ("box", "frame", "area"),
    [
        ([0.1, 0.1, 0.2, 0.2], (None, None), 0.01),
        ((0, 0, 1, 1), (None, None), 1.0),
        ([64, 36, 192, 108], (640, 360), 0.04),
        ([0.25, 0.25, 0.75, 0.75], (None, None), 0.25),
    ],
)
def test_box_area(box: Any, frame: tuple[Any, Any], area: float) -> None:
    assert math.isclose(box_area(box, *frame), area)


@pytest.mark.parametrize(
    ("box", "frame"),
    [
        ([0.1, 0.1, 0.2], (None, None)),  # three coordinates
        ("0,0,1,1", (None, None)),  # not a list
        (None, (None, None)),
        ([0.2, 0.1, 0.1, 0.2], (None, None)),  # x2 < x1
        ([0.1, 0.1, 0.1, 0.2], (None, None)),  # zero width
        ([10, 10, 100, 100], (None, None)),  # pixels without frame size
        ([-0.1, 0.1, 0.2, 0.2], (None, None)),
        ([0.1, 0.1, 0.2, "0.2"], (None, None)),
        ([True, 0.1, 0.2, 0.2], (None, None)),
        ([0.1, float("nan"), 0.2, 0.2], (None, None)),
        ([10, 10, 100, 100], (640, 0)),
        ([10, 10, 100, 100], (640, None)),
        ([10, 10, 1000, 100], (640, 360)),  # beyond the frame
    ],
)
def test_box_area_rejects_invalid_boxes(box: Any, frame: tuple[Any, Any]) -> None:
    with pytest.raises(ValueError, match=r"box|frame"):
        box_area(box, *frame)


def rules(**overrides: Any) -> ConsensusRules:
    base: dict[str, Any] = {"cooldown": 60.0, "camera_timeout": 30.0, "camera_window": 10.0}
    base.update(overrides)
    return ConsensusRules(**base)


def feed(
    engine: ConsensusEngine,
    cameras: list[str],
    now: float,
    *,
    steps: int = 8,
    growth: float = 1.15,
    confidence: float = 0.9,
    object_id: str = "fire-1",
) -> list[Any]:
    """Growing (or not) detections for ``cameras``, 0.1 s apart; returns triggers."""
    triggers = []
    for step, box in enumerate(growing_boxes(steps, growth=growth)):
        for camera in cameras:
            detection = Detection(camera, object_id, confidence, box_area(box))
            result = engine.add_detection(detection, now + step * 0.1)
            if result.trigger is not None:
                triggers.append(result.trigger)
    return triggers


def engine_with(cameras: list[str], now: float = 0.0, **overrides: Any) -> ConsensusEngine:
    engine = ConsensusEngine(rules(**overrides))
    for camera in cameras:
        engine.camera_seen(camera, now)
    return engine


def test_two_growing_cameras_trigger_once() -> None:
    engine = engine_with(["cam1", "cam2"])
    triggers = feed(engine, ["cam1", "cam2"], 0.0)
    assert len(triggers) == 1
    assert triggers[0].cameras == ("cam1", "cam2")
    assert triggers[0].trigger_count == 1
    assert triggers[0].confidence == pytest.approx(0.9)


def test_one_growing_camera_is_not_enough() -> None:
    engine = engine_with(["cam1", "cam2"])
    assert feed(engine, ["cam1"], 0.0) == []
    # the other camera sees a steady (not growing) fire
    assert feed(engine, ["cam2"], 0.0, growth=1.0) == []


def test_threshold_one_allows_a_single_camera() -> None:
    engine = engine_with(["cam1"], threshold=1)
    assert len(feed(engine, ["cam1"], 0.0)) == 1


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"growth": 0.85}, "shrinking"),
        ({"growth": 1.0}, "steady"),
        ({"confidence": 0.5}, "low confidence"),
        ({"steps": 5}, "too few detections"),
    ],
)
def test_no_trigger(kwargs: dict[str, Any], why: str) -> None:
    engine = engine_with(["cam1", "cam2"])
    assert feed(engine, ["cam1", "cam2"], 0.0, **kwargs) == [], why


def test_areas_outside_the_band_are_refused() -> None:
    engine = engine_with(["cam1"])
    assert engine.add_detection(Detection("cam1", "o", 0.9, 0.0005), 0).reason == (
        "area_out_of_range"
    )
    assert engine.add_detection(Detection("cam1", "o", 0.9, 0.9), 0).reason == "area_out_of_range"
    assert engine.add_detection(Detection("cam1", "o", 0.9, 0.001), 0).accepted
    assert engine.add_detection(Detection("cam1", "o", 0.9, 0.8), 0).accepted


def test_cooldown_blocks_then_expires() -> None:
    engine = engine_with(["cam1", "cam2"], cooldown=5.0)
    assert len(feed(engine, ["cam1", "cam2"], 0.0)) == 1
    for camera in ("cam1", "cam2"):
        engine.camera_seen(camera, 2.0)
    assert feed(engine, ["cam1", "cam2"], 2.0, object_id="fire-2") == []
    assert engine.in_cooldown(4.0)
    for camera in ("cam1", "cam2"):
        engine.camera_seen(camera, 6.0)
    again = feed(engine, ["cam1", "cam2"], 6.0, object_id="fire-3")
    assert [t.trigger_count for t in again] == [2]


def test_unknown_and_offline_cameras_do_not_count() -> None:
    engine = engine_with(["cam1", "cam2"], camera_timeout=5.0)
    assert engine.add_detection(Detection("ghost", "o", 0.9, 0.01), 0).reason == "unknown_camera"
    engine.camera_offline("cam2")
    assert engine.add_detection(Detection("cam2", "o", 0.9, 0.01), 0).reason == "camera_offline"
    assert feed(engine, ["cam1", "cam2"], 0.0) == []
    assert engine.online_cameras(0.0) == ["cam1"]


def test_camera_times_out_and_recovers() -> None:
    engine = engine_with(["cam1", "cam2"], camera_timeout=5.0)
    engine.camera_seen("cam1", 10.0)
    assert engine.online_cameras(10.0) == ["cam1"]
    assert feed(engine, ["cam1", "cam2"], 10.0) == []
    engine.camera_seen("cam2", 20.0)
    engine.camera_seen("cam1", 20.0)
    assert len(feed(engine, ["cam1", "cam2"], 20.0, object_id="fire-2")) == 1


def test_old_detections_leave_the_window() -> None:
    engine = engine_with(["cam1", "cam2"], camera_window=1.0, camera_timeout=100.0)
    # first half of a growing series, then a long pause, then only large boxes
    boxes = growing_boxes(8, growth=1.15)
    for step, box in enumerate(boxes[:4]):
        for camera in ("cam1", "cam2"):
            engine.add_detection(Detection(camera, "f", 0.9, box_area(box)), step * 0.1)
    triggers = []
    for step, box in enumerate([boxes[-1]] * 4):
        for camera in ("cam1", "cam2"):
            result = engine.add_detection(Detection(camera, "f", 0.9, box_area(box)), 50 + step)
            triggers.append(result.trigger)
    assert triggers == [None] * 8  # only steady areas remain inside the window


def test_tracks_are_bounded() -> None:
    engine = engine_with(["cam1"], max_objects=4, max_history=5)
    for index in range(100):
        engine.add_detection(Detection("cam1", f"obj-{index}", 0.9, 0.01), index * 0.001)
    camera = engine._cameras["cam1"]
    assert len(camera.tracks) == 4
    for _ in range(20):
        engine.add_detection(Detection("cam1", "obj-99", 0.9, 0.01), 0.5)
    assert len(camera.tracks["obj-99"].samples) == 5


def test_engine_refuses_threshold_below_one() -> None:
    with pytest.raises(ValueError, match="threshold"):
        ConsensusEngine(ConsensusRules(threshold=0))


# -- payload parsing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload", "camera", "object_id"),
    [
        ("fire/detection", {"camera_id": "c1", "confidence": 0.8, "bbox": [0, 0, 0.1, 0.1]},
         "c1", "fire"),
        ("fire/detection/c2", {"confidence": 0.8, "box": [0, 0, 0.1, 0.1], "object_id": 7},
         "c2", "7"),
        ("fire/detection/c3", {"camera_id": "c3", "confidence": 1, "object": "smoke",
                               "bounding_box": [0, 0, 64, 36], "frame_width": 640,
                               "frame_height": 360}, "c3", "smoke"),
    ],
)
def test_parse_fire_detection(
    topic: str, payload: dict[str, Any], camera: str, object_id: str
) -> None:
    detection = parse_fire_detection(topic, payload)
    assert detection is not None
    assert (detection.camera_id, detection.object_id) == (camera, object_id)
    assert detection.area == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("fire/detection", {"confidence": 0.8, "bbox": [0, 0, 0.1, 0.1]}),  # no camera
        ("fire/detection/c1", {"camera_id": "c2", "confidence": 0.8, "bbox": [0, 0, 0.1, 0.1]}),
        ("fire/detection", {"camera_id": "c1", "confidence": "high", "bbox": [0, 0, 0.1, 0.1]}),
        ("fire/detection", {"camera_id": "c1", "confidence": True, "bbox": [0, 0, 0.1, 0.1]}),
        ("fire/detection", {"camera_id": "c1", "confidence": 0.9}),  # no box
        ("fire/detection", {"camera_id": "c1", "confidence": 0.9, "bbox": "big"}),
        ("fire/detection", {"camera_id": 5, "confidence": 0.9, "bbox": [0, 0, 0.1, 0.1]}),
        ("fire/detection", {"camera_id": "a/b", "confidence": 0.9, "bbox": [0, 0, 0.1, 0.1]}),
        ("fire/detection", {"camera_id": "c1", "confidence": 0.9, "bbox": [0, 0, 0.1, 0.1],
                            "object_id": [1]}),
    ],
)
def test_parse_fire_detection_rejects(topic: str, payload: dict[str, Any]) -> None:
    with pytest.raises(BadPayload):
        parse_fire_detection(topic, payload)


def test_parse_fire_detection_ignores_other_labels() -> None:
    payload = {"camera_id": "c1", "confidence": 0.9, "object": "person", "bbox": [0, 0, 1, 1]}
    assert parse_fire_detection("fire/detection", payload) is None


def test_parse_frigate_event() -> None:
    event = {"type": "new", "after": {"camera": "c1", "label": "fire", "top_score": 0.8,
                                      "box": [0, 0, 128, 72], "id": "ev1",
                                      "frame_shape": [720, 1280]}}
    kind, detection, camera = parse_frigate_event(event)
    assert (kind, camera) == ("new", "c1")
    assert detection is not None
    assert detection.object_id == "ev1"
    assert detection.area == pytest.approx(0.01)
    kind, detection, _ = parse_frigate_event({"after": {"camera": "c1", "label": "car"}})
    assert detection is None


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"after": "x"},
        {"after": {"label": "fire", "top_score": 0.9, "box": [0, 0, 0.1, 0.1]}},  # no camera
        {"after": {"camera": "c1", "label": "fire", "box": [0, 0, 0.1, 0.1]}},  # no score
        {"after": {"camera": "c1", "label": "fire", "top_score": 0.9, "box": [0, 0, 10, 10]}},
        {"after": {"camera": "c1", "label": "fire", "top_score": 0.9, "box": [0, 0, 10, 10],
                   "frame_width": "640", "frame_height": 360}},
    ],
)
def test_parse_frigate_event_rejects(payload: dict[str, Any]) -> None:
    with pytest.raises(BadPayload):
        parse_frigate_event(payload)
