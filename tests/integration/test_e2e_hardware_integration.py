"""Services in-process against the broker: the pump state machine end to end.

Migrated form (``invoke migrate`` plus the hand edits listed in
tests/unit/migrate/expected_differences.toml): the services run in the test
process on the worker's broker with the test's topic prefix and unique client
ids; waits are events with deadlines (ready, SUBACK, a telemetry event).
"""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import pytest

from wildfire.camera_simulator import frigate_event, growing_boxes
from wildfire.camera_simulator import telemetry as telemetry_payload
from wildfire.fire_consensus import FireConsensus, FireConsensusConfig
from wildfire.gpio_trigger import GpioTrigger, GpioTriggerConfig
from parallel_isolation import TestMQTTBroker, TopicNamespace

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
# The second trigger must reach the pump while it refills: the telemetry's way
# to this test and the trigger's way back take well over 0.4 s on a loaded
# 2-core machine (-n 24 on the docker backend), so this test refills for 1.6 s
# and spends less time running instead (the cycle is 0.4 s longer in all).
PUMP_TIMING_OVERRIDES = {
    "test_trigger_during_refill_is_refused": {"REFILL_DURATION": "1.6", "FIRE_OFF_DELAY": "0.2"},
}


class Telemetry:
    """Records the pump's state changes from system/trigger_telemetry."""

    def __init__(self, client_id: str, *, mqtt_broker: TestMQTTBroker, topic_namespace: TopicNamespace) -> None:
        self.states: list[str] = []
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect(mqtt_broker.host, mqtt_broker.port)
        self.client.loop_start()
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.subscribe(topic_namespace.filter("system/trigger_telemetry"), qos=1)
        assert subscribed.wait(10), "no SUBACK for the subscription"

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

    def wait_for_event(self, predicate, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: any(predicate(e) for e in self.events), timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publisher(client_id: str, *, mqtt_broker: TestMQTTBroker) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    return client


@pytest.fixture
def pump(mqtt_broker, parallel_test_context, topic_namespace, request):
    env = {
        "MQTT_BROKER": mqtt_broker.host,
        "MQTT_PORT": str(mqtt_broker.port),
        "MQTT_CLIENT_ID": parallel_test_context.client_id("gpio-trigger-test"),
        "TOPIC_PREFIX": topic_namespace.prefix,
        **PUMP_TIMINGS,
        **PUMP_TIMING_OVERRIDES.get(request.node.name, {}),
    }
    service = GpioTrigger(GpioTriggerConfig.from_env(env))
    service.start()
    assert service.wait_ready(10), "the pump controller did not connect"
    yield service
    service.stop()


@pytest.fixture
def telemetry(pump, mqtt_broker, parallel_test_context, topic_namespace):
    recorder = Telemetry(parallel_test_context.client_id("e2e-hw-telemetry"), mqtt_broker=mqtt_broker, topic_namespace=topic_namespace)
    yield recorder
    recorder.close()


def test_trigger_runs_full_pump_cycle(pump, telemetry, mqtt_broker, parallel_test_context, topic_namespace):
    client = publisher(parallel_test_context.client_id("e2e-hw-publisher"), mqtt_broker=mqtt_broker)
    client.publish(topic_namespace.topic("fire/trigger"), json.dumps({"action": "trigger"}), qos=1)
    assert telemetry.wait_for_state("RUNNING")
    assert pump.gpio.read("MAIN_VALVE")
    assert telemetry.wait_for_state("IDLE")
    assert telemetry.states == FULL_CYCLE
    assert not any(pump.gpio.snapshot().values())
    client.disconnect()


def test_emergency_stop_while_running(pump, telemetry, mqtt_broker, parallel_test_context, topic_namespace):
    client = publisher(parallel_test_context.client_id("e2e-hw-emergency"), mqtt_broker=mqtt_broker)
    client.publish(topic_namespace.topic("fire/trigger"), json.dumps({"action": "trigger"}), qos=1)
    assert telemetry.wait_for_state("RUNNING")
    client.publish(topic_namespace.topic("fire/emergency"), json.dumps({"command": "stop"}), qos=1)
    assert telemetry.wait_for_state("STOPPING")
    assert "REDUCING_RPM" not in telemetry.states
    assert telemetry.wait_for_event(lambda e: e["event"] == "state_change" and not e["pins"]["MAIN_VALVE"])
    assert not pump.gpio.read("MAIN_VALVE")
    client.disconnect()


def test_max_runtime_stops_the_engine(mqtt_broker, parallel_test_context, topic_namespace):
    env = {
        "MQTT_BROKER": mqtt_broker.host,
        "MQTT_PORT": str(mqtt_broker.port),
        "MQTT_CLIENT_ID": parallel_test_context.client_id("gpio-trigger-test"),
        "TOPIC_PREFIX": topic_namespace.prefix,
        **PUMP_TIMINGS,
        "FIRE_OFF_DELAY": "60",
        "MAX_ENGINE_RUNTIME": "1.0",
    }
    service = GpioTrigger(GpioTriggerConfig.from_env(env))
    service.start()
    assert service.wait_ready(10), "the pump controller did not connect"
    recorder = Telemetry(parallel_test_context.client_id("e2e-hw-maxruntime"), mqtt_broker=mqtt_broker, topic_namespace=topic_namespace)
    client = publisher(parallel_test_context.client_id("e2e-hw-maxruntime-pub"), mqtt_broker=mqtt_broker)
    try:
        client.publish(topic_namespace.topic("fire/trigger"), json.dumps({"action": "trigger"}), qos=1)
        assert recorder.wait_for_state("RUNNING")
        assert recorder.wait_for_state("REDUCING_RPM", timeout=10)
        reasons = [e["reason"] for e in recorder.events if e.get("state") == "REDUCING_RPM"]
        assert any("max" in reason.lower() for reason in reasons), reasons
    finally:
        client.disconnect()
        recorder.close()
        service.stop()


def test_trigger_during_refill_is_refused(pump, telemetry, mqtt_broker, parallel_test_context, topic_namespace):
    client = publisher(parallel_test_context.client_id("e2e-hw-refill"), mqtt_broker=mqtt_broker)
    client.publish(topic_namespace.topic("fire/trigger"), json.dumps({"action": "trigger"}), qos=1)
    assert telemetry.wait_for_state("REFILLING", timeout=15)
    client.publish(topic_namespace.topic("fire/trigger"), json.dumps({"action": "trigger"}), qos=1)
    assert telemetry.wait_for_event(lambda e: e["event"] == "trigger_refused")
    assert pump.refused_count == 1
    assert telemetry.wait_for_state("IDLE")
    client.disconnect()


def test_consensus_in_process_drives_the_pump(pump, telemetry, mqtt_broker, parallel_test_context, topic_namespace):
    env = {
        "MQTT_BROKER": mqtt_broker.host,
        "MQTT_PORT": str(mqtt_broker.port),
        "MQTT_CLIENT_ID": parallel_test_context.client_id("fire-consensus-test"),
        "TOPIC_PREFIX": topic_namespace.prefix,
        "CONSENSUS_THRESHOLD": "2",
        "DETECTION_COOLDOWN": "30",
        "HEALTH_INTERVAL": "1",
    }
    consensus = FireConsensus(FireConsensusConfig.from_env(env))
    consensus.start()
    assert consensus.wait_ready(10), "the consensus service did not connect"
    client = publisher(parallel_test_context.client_id("e2e-hw-cameras"), mqtt_broker=mqtt_broker)
    try:
        for camera in ("cam1", "cam2"):
            client.publish(topic_namespace.topic("system/camera_telemetry"), json.dumps(telemetry_payload(camera)), qos=1)
        for box in growing_boxes(8, start_area=0.01, growth=1.2):
            for camera in ("cam1", "cam2"):
                client.publish(topic_namespace.topic("frigate/events"), json.dumps(frigate_event(camera, box)), qos=1)
        assert telemetry.wait_for_state("RUNNING")
        assert consensus.engine.trigger_count == 1
    finally:
        client.disconnect()
        consensus.stop()
