"""Both services as separate processes; sensor readings sent with mosquitto_pub."""

import json
import os
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest

BROKER = ("localhost", 1883)
SERVICES = [
    ("greenhouse.climate", "climate-e2e"),
    ("greenhouse.irrigation", "irrigation-e2e"),
]
TUNING = {"VENT_OPEN_AT": "26", "MOISTURE_MIN": "35", "MOISTURE_MAX": "55"}


def publish(topic, payload):
    command = f"mosquitto_pub -h localhost -p 1883 -q 1 -t {topic} -m '{json.dumps(payload)}'"
    subprocess.run(command, shell=True, check=True)


def wait_until(predicate, timeout=10):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def actuators():
    seen = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-actuator-watch")

    def on_message(client, userdata, msg):
        seen.append((msg.topic, msg.payload.decode()))

    client.on_message = on_message
    client.connect(*BROKER)
    client.subscribe([("actuators/#", 1), ("status/+", 1)])
    client.loop_start()
    time.sleep(0.5)
    yield seen
    client.loop_stop()
    client.disconnect()


@pytest.fixture
def services(actuators):
    procs = []
    for module, client_id in SERVICES:
        env = dict(os.environ)
        env.update({"MQTT_HOST": BROKER[0], "MQTT_PORT": str(BROKER[1]), "MQTT_CLIENT_ID": client_id})
        env.update(TUNING)
        procs.append(subprocess.Popen([sys.executable, "-m", module], env=env))
    assert wait_until(lambda: ("status/climate", "online") in actuators and ("status/irrigation", "online") in actuators, timeout=20)
    yield procs
    for proc in procs:
        proc.terminate()
        time.sleep(0.2)
    for proc in procs:
        proc.wait(timeout=10)


def valve_commands(actuators, zone):
    return [state for topic, state in actuators if topic == f"actuators/valve/{zone}"]


def test_dry_zone_gets_water(services, actuators):
    publish("sensors/zone3/moisture", {"percent": 20})
    assert wait_until(lambda: valve_commands(actuators, "zone3") == ["open"])


def test_watered_zone_closes_its_valve(services, actuators):
    publish("sensors/zone4/moisture", {"percent": 20})
    publish("sensors/zone4/moisture", {"percent": 70})
    assert wait_until(lambda: valve_commands(actuators, "zone4") == ["open", "closed"])


def test_hot_and_dry_zone_gets_both(services, actuators):
    publish("sensors/zone5/temperature", {"celsius": 33})
    publish("sensors/zone5/moisture", {"percent": 5})
    assert wait_until(lambda: len([t for t, _ in actuators if t.startswith("actuators/")]) >= 2)
    topics = sorted(t for t, _ in actuators if t.startswith("actuators/"))
    assert topics == ["actuators/valve/zone5", "actuators/vent"]


def test_services_announce_themselves(services):
    out = subprocess.run(
        "mosquitto_sub -h localhost -p 1883 -t 'status/#' -v -W 2",
        shell=True,
        capture_output=True,
        text=True,
    )
    assert "status/climate online" in out.stdout
    assert "status/irrigation online" in out.stdout
