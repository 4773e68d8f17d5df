"""gpio_trigger against a real broker: the published state sequence."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from wildfire.gpio_trigger import GpioTrigger, PumpState

TELEMETRY = "system/trigger_telemetry"
FAST = {
    "PRIME_DURATION": 0.05,
    "START_DURATION": 0.05,
    "RPM_REDUCTION_DURATION": 0.05,
    "STOP_DURATION": 0.05,
    "REFILL_DURATION": 0.05,
    "COOLDOWN_DURATION": 0.05,
    "FIRE_OFF_DELAY": 0.2,
    "MAX_ENGINE_RUNTIME": 30,
}
CYCLE = [
    "PRIMING",
    "STARTING",
    "RUNNING",
    "REDUCING_RPM",
    "STOPPING",
    "REFILLING",
    "COOLDOWN",
    "IDLE",
]


def states(client: Any) -> list[str]:
    return [
        m.json()["state"] for m in client.messages(TELEMETRY) if m.json()["event"] == "state_change"
    ]


def wait_state(client: Any, state: str, previous: str | None = None, timeout: float = 10) -> Any:
    def match(message: Any) -> bool:
        data = message.json()
        return bool(
            data["event"] == "state_change"
            and data["state"] == state
            and (previous is None or data["previous_state"] == previous)
        )

    return client.wait_for(TELEMETRY, match, timeout=timeout).json()


@pytest.fixture
def pump(start_service: Any, mqtt_client: Any) -> Any:
    def start(**knobs: Any) -> GpioTrigger:
        mqtt_client.subscribe(TELEMETRY, qos=1)
        mqtt_client.subscribe("gpio/status", qos=1)
        service: GpioTrigger = start_service(GpioTrigger, **{**FAST, **knobs})
        return service

    return start


def trigger(client: Any) -> None:
    client.publish("fire/trigger", json.dumps({"action": "trigger", "confidence": 0.9}), qos=1)


def test_walks_the_full_cycle(pump: Any, mqtt_client: Any) -> None:
    pump()
    trigger(mqtt_client)
    idle = wait_state(mqtt_client, "IDLE", previous="COOLDOWN")
    assert states(mqtt_client) == CYCLE
    assert idle["pins"] == dict.fromkeys(idle["pins"], False)
    running = next(
        m.json() for m in mqtt_client.messages(TELEMETRY) if m.json()["state"] == "RUNNING"
    )
    assert running["pins"]["IGNITION_ON"] is True
    assert running["previous_state"] == "STARTING"
    for key in ("state", "previous_state", "pins", "runtime", "timestamp", "reason"):
        assert key in running
    reducing = next(
        m.json() for m in mqtt_client.messages(TELEMETRY) if m.json()["state"] == "REDUCING_RPM"
    )
    assert reducing["reason"] == "fire off"
    assert idle["runtime"] >= FAST["FIRE_OFF_DELAY"]
    # pin changes were published too, and the retained telemetry says IDLE
    assert mqtt_client.messages("gpio/status")
    mqtt_client.subscribe("system/+")
    retained = mqtt_client.wait_for(TELEMETRY, lambda m: m.retain)
    assert retained.json()["state"] == "IDLE"


def test_max_runtime_forces_shutdown(pump: Any, mqtt_client: Any) -> None:
    pump(FIRE_OFF_DELAY=60, MAX_ENGINE_RUNTIME=0.3)
    trigger(mqtt_client)
    reducing = wait_state(mqtt_client, "REDUCING_RPM", previous="RUNNING")
    assert reducing["reason"] == "max engine runtime reached"
    wait_state(mqtt_client, "IDLE", previous="COOLDOWN")
    assert states(mqtt_client) == CYCLE
    stopping = next(
        m.json() for m in mqtt_client.messages(TELEMETRY) if m.json()["state"] == "STOPPING"
    )
    assert stopping["runtime"] >= 0.3


@pytest.mark.parametrize("command", [b"stop", b'{"command": "stop"}'], ids=["plain", "json"])
def test_emergency_stop(pump: Any, mqtt_client: Any, command: bytes) -> None:
    pump(FIRE_OFF_DELAY=60)
    trigger(mqtt_client)
    wait_state(mqtt_client, "RUNNING")
    mqtt_client.publish("fire/emergency", command, qos=1)
    stopping = wait_state(mqtt_client, "STOPPING", previous="RUNNING")
    assert stopping["reason"] == "emergency emergency_stop"
    assert stopping["pins"]["IGNITION_ON"] is False
    wait_state(mqtt_client, "IDLE", previous="COOLDOWN")
    assert states(mqtt_client) == [
        "PRIMING",
        "STARTING",
        "RUNNING",
        "STOPPING",
        "REFILLING",
        "COOLDOWN",
        "IDLE",
    ]


def test_overdue_deadlines_publish_each_transitions_own_state(pump: Any, mqtt_client: Any) -> None:
    """Under load a timer fires late and advance() makes several transitions at once:
    each state_change message still names its own state, in order."""
    service = pump(FIRE_OFF_DELAY=60)
    trigger(mqtt_client)
    wait_state(mqtt_client, "PRIMING")
    with service._lock:  # the service's own timer waits until we are done
        service._advance(time.monotonic() + 1.0)  # priming and starting both overdue
        service._rearm()
    running = wait_state(mqtt_client, "RUNNING", previous="STARTING")
    assert running["pins"]["IGNITION_ON"] is True
    assert states(mqtt_client)[:3] == ["PRIMING", "STARTING", "RUNNING"]
    starting = next(
        m.json() for m in mqtt_client.messages(TELEMETRY) if m.json()["previous_state"] == "PRIMING"
    )
    assert starting["state"] == "STARTING"


def test_manual_start_command(pump: Any, mqtt_client: Any) -> None:
    pump()
    mqtt_client.publish("fire/emergency", b"start", qos=1)
    assert wait_state(mqtt_client, "PRIMING")["reason"] == "manual start"


def test_trigger_refused_while_refilling(pump: Any, mqtt_client: Any) -> None:
    service = pump(REFILL_DURATION=30)
    trigger(mqtt_client)
    wait_state(mqtt_client, "REFILLING")
    trigger(mqtt_client)
    refused = mqtt_client.wait_for(
        TELEMETRY, lambda m: m.json()["event"] == "trigger_refused"
    ).json()
    assert refused["state"] == "REFILLING"
    assert "not allowed" in refused["reason"]
    assert service.refused_count == 1
    assert service.state is PumpState.REFILLING


def test_gpio_fault_goes_to_error_and_reset_recovers(pump: Any, mqtt_client: Any) -> None:
    service = pump()
    service.gpio.fail_pin("PRIMING_VALVE")
    trigger(mqtt_client)
    error = wait_state(mqtt_client, "ERROR", previous="PRIMING")
    assert error["reason"] == "gpio write failed"
    trigger(mqtt_client)
    mqtt_client.wait_for(TELEMETRY, lambda m: m.json()["event"] == "trigger_refused")
    service.gpio.repair()
    mqtt_client.publish("fire/emergency", json.dumps({"command": "reset"}), qos=1)
    wait_state(mqtt_client, "IDLE", previous="ERROR")


def test_malformed_commands_are_survived(
    pump: Any, mqtt_client: Any, wildfire_log: pytest.LogCaptureFixture, find_log: Any
) -> None:
    service = pump()
    bad = [
        ("fire/trigger", b"{nope"),
        ("fire/trigger", b'{"action": "explode"}'),
        ("fire/trigger", b"[1, 2]"),
        ("fire/emergency", b"self-destruct"),
        ("fire/emergency", b'{"command": 42}'),
        ("fire/emergency", b"\xff\xfe\xfd"),
        ("fire/trigger", b"{" + b" " * 70_000 + b"}"),
    ]
    for topic, payload in bad:
        mqtt_client.publish(topic, payload, qos=1)
    trigger(mqtt_client)
    wait_state(mqtt_client, "PRIMING")
    assert service.messages_dropped == len(bad)
    assert len(find_log(wildfire_log, "payload_dropped", logging.WARNING)) == len(bad)


def test_prefix_isolation_between_two_pumps(
    start_service: Any, mqtt_client: Any, topic_namespace: Any
) -> None:
    a = start_service(GpioTrigger, prefix=topic_namespace.topic("a"), **FAST)
    b = start_service(GpioTrigger, prefix=topic_namespace.topic("b"), **FAST)
    mqtt_client.subscribe(f"+/{TELEMETRY}", qos=1)
    mqtt_client.publish("a/fire/trigger", json.dumps({"action": "trigger"}), qos=1)
    mqtt_client.wait_for(
        f"a/{TELEMETRY}",
        lambda m: m.json()["state"] == "IDLE" and m.json()["previous_state"] == "COOLDOWN",
    )
    assert a.trigger_count == 1
    assert (b.trigger_count, b.messages_received, b.state) == (0, 0, PumpState.IDLE)
    b_events = [m.json()["event"] for m in mqtt_client.messages(f"b/{TELEMETRY}")]
    assert "state_change" not in b_events
