"""``python -m wildfire.<service>`` child processes, and the whole chain in-process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import pytest

from wildfire.camera_detector import CameraDetector
from wildfire.camera_simulator import CameraSimulator
from wildfire.common import HEALTH_FAILURE
from wildfire.fire_consensus import FireConsensus
from wildfire.gpio_trigger import GpioTrigger

SERVICES = ["camera_detector", "fire_consensus", "gpio_trigger", "camera_simulator"]


@pytest.mark.parametrize("module", SERVICES)
def test_sigterm_publishes_offline_and_exits_zero_within_two_seconds(
    spawn_service: Any, mqtt_client: Any, module: str
) -> None:
    lwt = f"system/{module}/lwt"
    mqtt_client.subscribe(lwt, qos=1)
    mqtt_client.subscribe(f"system/{module}/health")
    child = spawn_service(module)
    mqtt_client.wait_for(lwt, lambda m: m.payload == b"online", timeout=15)
    health = mqtt_client.wait_for(f"system/{module}/health").json()
    assert health["pid"] == child.proc.pid
    code, elapsed = child.terminate(timeout=2.0)
    assert code == 0, child.log()
    assert elapsed < 2.0
    mqtt_client.wait_for(lwt, lambda m: m.payload == b"offline", timeout=5)
    log = child.log()
    assert "event=signal_received signal=SIGTERM" in log
    assert "event=stopped" in log
    assert HEALTH_FAILURE not in log
    assert "Traceback" not in log
    # one structured line per event
    for line in log.splitlines():
        assert line.split(" ", 3)[2] == module, line


def test_sigint_stops_too(spawn_service: Any, mqtt_client: Any) -> None:
    mqtt_client.subscribe("system/gpio_trigger/lwt", qos=1)
    child = spawn_service("gpio_trigger")
    mqtt_client.wait_for("system/gpio_trigger/lwt", lambda m: m.payload == b"online", timeout=15)
    child.proc.send_signal(signal.SIGINT)
    assert child.proc.wait(2.0) == 0


def test_bad_environment_exits_2_naming_the_variable(
    spawn_service: Any, service_env: Any
) -> None:
    env = service_env("fire_consensus", MIN_CONFIDENCE="very high")
    child = spawn_service("fire_consensus", env=env)
    assert child.proc.wait(10) == 2
    assert "MIN_CONFIDENCE='very high' is invalid" in child.log()


def test_help_lists_the_knobs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wildfire.gpio_trigger", "--help"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    for knob in ("MQTT_BROKER", "TOPIC_PREFIX", "PRIME_DURATION", "MAX_ENGINE_RUNTIME"):
        assert knob in result.stdout


def test_killed_process_leaves_the_last_will(spawn_service: Any, mqtt_client: Any) -> None:
    mqtt_client.subscribe("system/camera_detector/lwt", qos=1)
    child = spawn_service("camera_detector", MQTT_KEEPALIVE=1)
    mqtt_client.wait_for(
        "system/camera_detector/lwt", lambda m: m.payload == b"online", timeout=15
    )
    child.proc.kill()
    child.proc.wait(5)
    # the broker publishes the will once it notices the dead connection
    mqtt_client.wait_for(
        "system/camera_detector/lwt", lambda m: m.payload == b"offline", timeout=10
    )


def test_whole_chain_from_simulated_cameras_to_the_pump(
    start_service: Any, mqtt_client: Any
) -> None:
    """Simulator -> detector -> consensus -> pump, each a separate MQTT client."""
    mqtt_client.subscribe("fire/trigger", qos=1)
    mqtt_client.subscribe("system/trigger_telemetry", qos=1)
    mqtt_client.subscribe("system/fire_consensus/health")
    pump = start_service(GpioTrigger, PRIME_DURATION=0.05, START_DURATION=0.05,
                         FIRE_OFF_DELAY=30)
    start_service(FireConsensus, DETECTION_COOLDOWN=60)
    start_service(CameraDetector)
    simulator: CameraSimulator = start_service(
        CameraSimulator, NUM_CAMERAS=3, ANNOUNCE_INTERVAL=0.5
    )
    # the detector forwards each announcement as camera telemetry to consensus
    mqtt_client.wait_for(
        "system/fire_consensus/health", lambda m: m.json()["cameras_online"] == 3
    )
    simulator.publish_growing_fire(["cam1", "cam3"], steps=8)
    trigger = mqtt_client.wait_for("fire/trigger").json()
    assert trigger["consensus_cameras"] == ["cam1", "cam3"]
    mqtt_client.wait_for(
        "system/trigger_telemetry",
        lambda m: json.loads(m.payload)["state"] == "RUNNING",
    )
    assert pump.trigger_count == 1
