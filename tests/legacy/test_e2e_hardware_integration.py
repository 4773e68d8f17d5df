"""Services in-process against the broker: the pump state machine end to end.

Legacy form: the services are imported and started in the test process with
a fixed broker address and fixed client ids, without a topic prefix; the
test clients use bare topics; waits are sleeps.
"""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from wildfire.camera_simulator import frigate_event, growing_boxes
from wildfire.camera_simulator import telemetry as telemetry_payload
from wildfire.fire_consensus import FireConsensus, FireConsensusConfig
from wildfire.gpio_trigger import GpioTrigger, GpioTriggerConfig

BROKER_HOST = "localhost"
BROKER_PORT = 18833

PUMP_TIMINGS = {
    "PRIME_DURATION": "0.2",
    "START_DURATION": "0.2",
    "RPM_REDUCTION_DURATION": "0.2",
    "STOP_DURATION": "0.2",
    "REFILL_DURATION": "0.4",
    "COOLDOWN_DURATION": "0.2",
    "FIRE_OFF_DELAY": "1.0",
    "MAX_ENGINE_RUNTIME": "30",
    "HEALTH_INTERVAL": "1",
}
FULL_CYCLE = ["PRIMING", "STARTING", "RUNNING", "REDUCING_RPM", "STOPPING", "REFILLING", "COOLDOWN", "IDLE"]


class Telemetry:
    """Records the pump's state changes from system/trigger_telemetry."""

    def __init__(self, client_id: str) -> None:
        self.states: list[str] = []
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect(BROKER_HOST, BROKER_PORT)
        self.client.loop_start()
        self.client.subscribe("system/trigger_telemetry", qos=1)
        time.sleep(0.5)

    def _on_message(self, client, userdata, message) -> None:
        data = json.loads(message.payload)
        with self.cond:
            self.events.append(data)
            if data.get("event") == "state_change":
                self.states.append(data["state"])
            self.cond.notify_all()

    def wait_for_state(self, state: str, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: state in self.states, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publisher(client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect(BROKER_HOST, BROKER_PORT)
    client.loop_start()
    return client


@pytest.fixture
def pump(mqtt_broker):
    env = {
        "MQTT_BROKER": BROKER_HOST,
        "MQTT_PORT": str(BROKER_PORT),
        "MQTT_CLIENT_ID": "gpio-trigger-test",
        **PUMP_TIMINGS,
    }
    service = GpioTrigger(GpioTriggerConfig.from_env(env))
    service.start()
    time.sleep(1.0)
    yield service
    service.stop()


@pytest.fixture
def telemetry(pump):
    recorder = Telemetry("e2e-hw-telemetry")
    yield recorder
    recorder.close()


def test_trigger_runs_full_pump_cycle(pump, telemetry):
    client = publisher("e2e-hw-publisher")
    client.publish("fire/trigger", json.dumps({"action": "trigger"}), qos=1)
    assert telemetry.wait_for_state("RUNNING")
    assert pump.gpio.read("MAIN_VALVE")
    assert telemetry.wait_for_state("IDLE")
    assert telemetry.states == FULL_CYCLE
    assert not any(pump.gpio.snapshot().values())
    client.disconnect()


def test_emergency_stop_while_running(pump, telemetry):
    client = publisher("e2e-hw-emergency")
    client.publish("fire/trigger", json.dumps({"action": "trigger"}), qos=1)
    assert telemetry.wait_for_state("RUNNING")
    client.publish("fire/emergency", json.dumps({"command": "stop"}), qos=1)
    assert telemetry.wait_for_state("STOPPING")
    assert "REDUCING_RPM" not in telemetry.states
    time.sleep(2)
    assert not pump.gpio.read("MAIN_VALVE")
    client.disconnect()


def test_max_runtime_stops_the_engine(mqtt_broker):
    env = {
        "MQTT_BROKER": BROKER_HOST,
        "MQTT_PORT": str(BROKER_PORT),
        "MQTT_CLIENT_ID": "gpio-trigger-test",
        **PUMP_TIMINGS,
        "FIRE_OFF_DELAY": "60",
        "MAX_ENGINE_RUNTIME": "1.0",
    }
    service = GpioTrigger(GpioTriggerConfig.from_env(env))
    service.start()
    time.sleep(1.0)
    recorder = Telemetry("e2e-hw-maxruntime")
    client = publisher("e2e-hw-maxruntime-pub")
    try:
        client.publish("fire/trigger", json.dumps({"action": "trigger"}), qos=1)
        assert recorder.wait_for_state("RUNNING")
        assert recorder.wait_for_state("REDUCING_RPM", timeout=10)
        reasons = [e["reason"] for e in recorder.events if e.get("state") == "REDUCING_RPM"]
        assert any("max" in reason.lower() for reason in reasons), reasons
    finally:
        client.disconnect()
        recorder.close()
        service.stop()


def test_trigger_during_refill_is_refused(pump, telemetry):
    client = publisher("e2e-hw-refill")
    client.publish("fire/trigger", json.dumps({"action": "trigger"}), qos=1)
    assert telemetry.wait_for_state("REFILLING", timeout=15)
    client.publish("fire/trigger", json.dumps({"action": "trigger"}), qos=1)
    time.sleep(0.3)
    assert pump.refused_count == 1
    assert telemetry.wait_for_state("IDLE")
    client.disconnect()


def test_consensus_in_process_drives_the_pump(pump, telemetry):
    env = {
        "MQTT_BROKER": BROKER_HOST,
        "MQTT_PORT": str(BROKER_PORT),
        "MQTT_CLIENT_ID": "fire-consensus-test",
        "CONSENSUS_THRESHOLD": "2",
        "DETECTION_COOLDOWN": "30",
        "HEALTH_INTERVAL": "1",
    }
    consensus = FireConsensus(FireConsensusConfig.from_env(env))
    consensus.start()
    time.sleep(1.0)
    client = publisher("e2e-hw-cameras")
    try:
        for camera in ("cam1", "cam2"):
            client.publish("system/camera_telemetry", json.dumps(telemetry_payload(camera)), qos=1)
        for box in growing_boxes(8, start_area=0.01, growth=1.2):
            for camera in ("cam1", "cam2"):
                client.publish("frigate/events", json.dumps(frigate_event(camera, box)), qos=1)
        assert telemetry.wait_for_state("RUNNING")
        assert consensus.engine.trigger_count == 1
    finally:
        client.disconnect()
        consensus.stop()
