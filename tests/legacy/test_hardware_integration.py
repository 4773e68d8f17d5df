"""Single hardware resources: the GPIO bank and the accelerator, one user at a time.

Legacy form: every test opens the simulated devices at fixed /tmp paths
without coordination and records its intervals in a fixed /tmp file.
Serially nothing overlaps; under xdist two workers open the same device at
once and one of them fails with "device busy".
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from wildfire.hardware import SimulatedDevice, real_device_present

BROKER_HOST = "localhost"
BROKER_PORT = 18833
GPIO_DEVICE = Path("/tmp/wildfire-gpio.dev")
CORAL_DEVICE = Path("/tmp/wildfire-coral.dev")
INTERVALS = Path("/tmp/wildfire-hardware-intervals.jsonl")


@pytest.fixture(scope="module", autouse=True)
def fresh_interval_record():
    INTERVALS.unlink(missing_ok=True)


def record_interval(device: str, started: float, ended: float) -> list[dict]:
    """Append our interval; return the earlier ones of the same device."""
    earlier = []
    if INTERVALS.exists():
        earlier = [json.loads(line) for line in INTERVALS.read_text().splitlines() if line]
    with INTERVALS.open("a") as handle:
        handle.write(json.dumps({"device": device, "start": started, "end": ended}) + "\n")
    return [i for i in earlier if i["device"] == device]


def overlapping(intervals: list[dict], started: float, ended: float) -> list[dict]:
    return [i for i in intervals if i["start"] < ended and started < i["end"]]


@pytest.mark.parametrize("run", range(4))
def test_gpio_pin_sequence_is_exclusive(run):
    started = time.time()
    with SimulatedDevice(GPIO_DEVICE, "gpio") as gpio:
        gpio.operate(6)
    ended = time.time()
    assert not overlapping(record_interval("gpio", started, ended), started, ended)


@pytest.mark.parametrize("run", range(4))
def test_accelerator_inference_is_exclusive(run):
    started = time.time()
    with SimulatedDevice(CORAL_DEVICE, "coral", operation_time=0.08) as tpu:
        tpu.operate(4)
    ended = time.time()
    assert not overlapping(record_interval("coral", started, ended), started, ended)


def test_different_devices_are_used_concurrently():
    both_open = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def use(path: Path, name: str) -> None:
        try:
            with SimulatedDevice(path, name) as device:
                both_open.wait()
                device.operate(2)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [
        threading.Thread(target=use, args=(GPIO_DEVICE, "gpio")),
        threading.Thread(target=use, args=(CORAL_DEVICE, "coral")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert not errors


def test_gpio_state_is_published(mqtt_broker):
    received = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hardware-gpio-monitor")
    client.on_message = lambda c, u, m: (received.append(json.loads(m.payload)), done.set())
    client.connect(BROKER_HOST, BROKER_PORT)
    client.loop_start()
    client.subscribe("gpio/status", qos=1)
    time.sleep(0.3)
    with SimulatedDevice(GPIO_DEVICE, "gpio") as gpio:
        gpio.operate(1)
        client.publish("gpio/status", json.dumps({"pins": {"MAIN_VALVE": True}}), qos=1)
    assert done.wait(5)
    assert received[0]["pins"]["MAIN_VALVE"] is True
    client.disconnect()
    client.loop_stop()


@pytest.mark.skipif(not real_device_present("gpio"), reason="no GPIO hardware (/dev/gpiomem missing)")
def test_real_gpio_bank_opens():
    assert Path("/dev/gpiomem").stat().st_size >= 0


@pytest.mark.skipif(not real_device_present("coral"), reason="no Coral accelerator (/dev/apex_0 missing)")
def test_real_accelerator_opens():
    assert Path("/dev/apex_0").exists()
