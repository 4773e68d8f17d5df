"""The simulated camera source, and the package's dependency boundary."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from typing import Any

import pytest

from wildfire.camera_detector import CameraDetector
from wildfire.camera_simulator import (
    CameraSimulator,
    CameraSimulatorConfig,
    announcement,
    camera_ids,
    fire_detection,
    frigate_event,
    growing_boxes,
)
from wildfire.common import ConfigError
from wildfire.fire_consensus import FireConsensus, box_area, is_growing


def test_growing_boxes_grow_by_the_factor() -> None:
    boxes = growing_boxes(5, start_area=0.01, growth=1.2)
    areas = [box_area(box) for box in boxes]
    for before, after in itertools.pairwise(areas):
        assert after / before == pytest.approx(1.2, rel=1e-3)
    assert is_growing([*areas, areas[-1] * 1.2], 3, 1.2)
    shrinking = [box_area(b) for b in growing_boxes(6, start_area=0.05, growth=0.8)]
    assert not is_growing(shrinking, 3, 1.2)
    assert growing_boxes(0) == []
    assert max(max(b) for b in growing_boxes(30, start_area=0.5, growth=1.5)) <= 1.0


@pytest.mark.parametrize(
    "kwargs", [{"steps": -1}, {"start_area": 0}, {"growth": 0}, {"growth": -1.0}]
)
def test_growing_boxes_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="need"):
        growing_boxes(**{"steps": 3, **kwargs})


def test_payload_builders() -> None:
    assert camera_ids(3) == ["cam1", "cam2", "cam3"]
    assert announcement("cam2", 2)["ip"] == "192.0.2.3"
    event = frigate_event("cam1", [0, 0, 10, 10], frame_width=100, frame_height=100)
    assert event["after"]["camera"] == "cam1"
    assert event["after"]["frame_width"] == 100
    assert fire_detection("cam1", [0, 0, 0.1, 0.1])["bbox"] == [0, 0, 0.1, 0.1]


@pytest.mark.parametrize(
    "env",
    [{"DETECTION_FORMAT": "xml"}, {"CAMERA_ID_PREFIX": "a/b"}, {"NUM_CAMERAS": "-1"}],
)
def test_simulator_config_is_validated(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        CameraSimulatorConfig.from_env(env)


def test_simulated_fire_reaches_consensus(start_service: Any, mqtt_client: Any) -> None:
    """SIMULATE_FIRE: the simulator's own growing fire, through the detector."""
    mqtt_client.subscribe("fire/trigger", qos=1)
    mqtt_client.subscribe("frigate/events")
    start_service(FireConsensus)
    start_service(CameraDetector)
    start_service(
        CameraSimulator, NUM_CAMERAS=2, ANNOUNCE_INTERVAL=0.5, SIMULATE_FIRE="cam1,cam2",
        FIRE_INTERVAL=0.05,
    )
    trigger = mqtt_client.wait_for("fire/trigger").json()
    assert trigger["consensus_cameras"] == ["cam1", "cam2"]
    assert {m.json()["after"]["camera"] for m in mqtt_client.messages("frigate/events")} == {
        "cam1", "cam2",
    }


def test_direct_detection_format(start_service: Any, mqtt_client: Any) -> None:
    mqtt_client.subscribe("fire/detection/+")
    mqtt_client.subscribe("camera/announce/+")
    simulator = start_service(CameraSimulator, NUM_CAMERAS=1, DETECTION_FORMAT="direct")
    mqtt_client.wait_for("camera/announce/cam1")
    assert simulator.publish_growing_fire(["cam1"], steps=2) == 2
    message = mqtt_client.wait_for("fire/detection/cam1")
    assert json.loads(message.payload)["camera_id"] == "cam1"


def test_services_depend_only_on_paho_and_the_standard_library() -> None:
    """The system under test must stay independent of the isolation toolkit."""
    probe = (
        "import sys\n"
        "import wildfire, wildfire.common, wildfire.camera_detector, wildfire.fire_consensus\n"
        "import wildfire.gpio_trigger, wildfire.camera_simulator\n"
        "tops = {name.split('.')[0] for name in sys.modules}\n"
        "extra = sorted(t for t in tops if t not in sys.stdlib_module_names and not\n"
        "               t.startswith('_'))\n"
        "print(' '.join(extra))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert set(result.stdout.split()) <= {"wildfire", "paho"}, result.stdout
