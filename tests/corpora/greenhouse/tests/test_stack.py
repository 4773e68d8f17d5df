"""End to end in containers: sensor readings in, actuator commands out."""

import json
import queue
import time

import paho.mqtt.client as mqtt
import pytest

from helpers.stack import SERVICE_NAMES, GreenhouseStack

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def stack():
    greenhouse = GreenhouseStack().up()
    yield greenhouse
    greenhouse.down()


@pytest.fixture
def observer(stack):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="stack-observer")
    client.inbox = queue.Queue()
    client.on_message = lambda c, userdata, msg: c.inbox.put(msg)
    client.connect("localhost", 1884)
    client.loop_start()
    client.subscribe("actuators/#", qos=1)
    time.sleep(1)
    yield client
    client.disconnect()
    client.loop_stop()


def next_on(client, topic, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = client.inbox.get(timeout=0.5)
        except queue.Empty:
            continue
        if msg.topic == topic:
            return msg.payload.decode()
    raise AssertionError(f"nothing on {topic} within {timeout} s")


def test_services_are_running(stack):
    for name in SERVICE_NAMES:
        container = stack.docker.containers.get(name)
        assert container.status == "running", container.logs()[-500:]


def test_warm_zone_opens_the_vents(observer):
    observer.publish("sensors/north/temperature", json.dumps({"celsius": 30}), qos=1)
    assert json.loads(next_on(observer, "actuators/vent"))["open"] is True


def test_dry_bed_opens_its_valve(observer):
    observer.publish("sensors/bed4/moisture", json.dumps({"percent": 10}), qos=1)
    assert next_on(observer, "actuators/valve/bed4") == "open"


def test_broker_saw_both_services(stack):
    logs = stack.docker.containers.get("greenhouse-broker").logs().decode()
    for name in SERVICE_NAMES:
        assert name in logs
