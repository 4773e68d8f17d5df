"""The climate controller in-process, against the session's broker."""

import json
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from greenhouse.climate import ClimateController

OBSERVER_ID = "climate-observer"


@pytest.fixture
def controller(monkeypatch):
    monkeypatch.setenv("MQTT_HOST", "localhost")
    monkeypatch.setenv("MQTT_PORT", "1883")
    monkeypatch.setenv("MQTT_CLIENT_ID", "climate-under-test")
    monkeypatch.setenv("VENT_OPEN_AT", "25")
    service = ClimateController().start()
    yield service
    service.stop()


@pytest.fixture
def vents():
    """Every vent command, as {"topic": ..., "command": {...}}."""
    commands = []

    def on_message(client, userdata, msg):
        commands.append({"topic": msg.topic, "command": json.loads(msg.payload)})

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=OBSERVER_ID)
    client.on_message = on_message
    client.connect("localhost", 1883)
    client.loop_start()
    client.subscribe("actuators/vent", qos=1)
    time.sleep(0.5)
    yield commands
    client.disconnect()
    client.loop_stop()


def send_temperature(zone, celsius):
    sensor = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sensor-{zone}-{uuid.uuid4().hex[:8]}")
    sensor.connect("localhost", 1883)
    sensor.loop_start()
    sensor.publish(f"sensors/{zone}/temperature", json.dumps({"celsius": celsius}), qos=1).wait_for_publish(5)
    sensor.disconnect()
    sensor.loop_stop()


def wait_for_commands(commands, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while len(commands) < count:
        assert time.monotonic() < deadline, f"only {len(commands)} of {count} vent commands"
        time.sleep(0.05)


def test_warm_zone_opens_its_vent(controller, vents):
    send_temperature("north", 27.5)
    wait_for_commands(vents, 1)
    assert vents[0]["topic"] == "actuators/vent"
    assert vents[0]["command"] == {"zone": "north", "open": True, "celsius": 27.5}


def test_vent_closes_once_the_zone_cools(controller, vents):
    send_temperature("south", 30.0)
    send_temperature("south", 21.0)
    wait_for_commands(vents, 2)
    assert [v["command"]["open"] for v in vents] == [True, False]


def test_cool_zone_sends_nothing(controller, vents):
    send_temperature("east", 19.0)
    time.sleep(1.5)
    assert not [v for v in vents if "vent" in v["topic"]]


def test_controller_status_is_retained(controller):
    received = []
    status = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="climate-status-check")
    status.on_message = lambda client, userdata, msg: received.append((msg.topic, msg.payload))
    status.connect("localhost", 1883)
    status.subscribe("status/+")
    status.loop_start()
    deadline = time.time() + 5
    while not received and time.time() < deadline:
        time.sleep(0.1)
    status.disconnect()
    status.loop_stop()
    topic, payload = received[0]
    assert topic == "status/climate"
    assert payload == b"online"
