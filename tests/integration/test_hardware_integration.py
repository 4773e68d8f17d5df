"""Single hardware resources: the GPIO bank and the accelerator, one user at a time.

Migrated form (``invoke migrate`` plus the hand edits listed in
tests/unit/migrate/expected_differences.toml): every use of a device is wrapped
in ``exclusive_resource``, so workers take turns; the intervals go to the
run's artifacts (one file for all workers of this run) and are checked for
overlap.  The simulated devices stay host-wide on purpose: they stand for one
physical board.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from wildfire.hardware import SimulatedDevice, real_device_present

DEVICE_DIR = Path(tempfile.gettempdir()) / "wildfire-simulated-devices"
GPIO_DEVICE = DEVICE_DIR / "gpio.dev"
CORAL_DEVICE = DEVICE_DIR / "coral.dev"


@pytest.fixture
def intervals(parallel_test_context) -> Path:
    return parallel_test_context.artifacts.run_dir / "hardware-intervals.jsonl"


def record_interval(record: Path, device: str, started: float, ended: float) -> list[dict]:
    """Append our interval; return the earlier ones of the same device."""
    earlier = []
    if record.exists():
        earlier = [json.loads(line) for line in record.read_text().splitlines() if line]
    with record.open("a") as handle:
        handle.write(json.dumps({"device": device, "start": started, "end": ended}) + "\n")
    return [i for i in earlier if i["device"] == device]


def overlapping(intervals: list[dict], started: float, ended: float) -> list[dict]:
    return [i for i in intervals if i["start"] < ended and started < i["end"]]


@pytest.mark.hardware
@pytest.mark.parametrize("run", range(4))
def test_gpio_pin_sequence_is_exclusive(run, exclusive_resource, intervals):
    with exclusive_resource("gpio"):
        started = time.time()
        with SimulatedDevice(GPIO_DEVICE, "gpio") as gpio:
            gpio.operate(6)
        ended = time.time()
        assert not overlapping(record_interval(intervals, "gpio", started, ended), started, ended)


@pytest.mark.hardware
@pytest.mark.parametrize("run", range(4))
def test_accelerator_inference_is_exclusive(run, exclusive_resource, intervals):
    with exclusive_resource("coral"):
        started = time.time()
        with SimulatedDevice(CORAL_DEVICE, "coral", operation_time=0.08) as tpu:
            tpu.operate(4)
        ended = time.time()
        assert not overlapping(record_interval(intervals, "coral", started, ended), started, ended)


@pytest.mark.hardware
def test_different_devices_are_used_concurrently(exclusive_resource):
    both_open = threading.Barrier(2, timeout=60)
    errors: list[BaseException] = []

    def use_coral() -> None:
        try:
            with exclusive_resource("coral"), SimulatedDevice(CORAL_DEVICE, "coral") as device:
                both_open.wait()
                device.operate(2)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    # Locks are taken in one order everywhere (gpio, then coral), so copies of
    # this test in other workers or runs never wait on each other in a cycle.
    with exclusive_resource("gpio"), SimulatedDevice(GPIO_DEVICE, "gpio") as gpio:
        thread = threading.Thread(target=use_coral)
        thread.start()
        both_open.wait()  # the accelerator is in use while we hold the GPIO bank
        gpio.operate(2)
        thread.join(60)
    assert not errors


@pytest.mark.hardware
def test_same_device_users_take_turns(exclusive_resource):
    order: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with exclusive_resource("gpio"):
            order.append("first-in")
            first_in.set()
            with SimulatedDevice(GPIO_DEVICE, "gpio") as gpio:
                gpio.operate(3)
            order.append("first-out")

    def second() -> None:
        assert first_in.wait(60)
        with exclusive_resource("gpio") as waited:
            order.append("second-in")
            assert waited > 0
            with SimulatedDevice(GPIO_DEVICE, "gpio") as gpio:
                gpio.operate(1)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert order == ["first-in", "first-out", "second-in"]


@pytest.mark.hardware
def test_gpio_state_is_published(mqtt_broker, parallel_test_context, topic_namespace, exclusive_resource):
    received = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=parallel_test_context.client_id("hardware-gpio-monitor"))
    client.on_message = lambda c, u, m: (received.append(json.loads(m.payload)), done.set())
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.subscribe(topic_namespace.filter("gpio/status"), qos=1)
    assert subscribed.wait(10), "no SUBACK for the subscription"
    with exclusive_resource("gpio"), SimulatedDevice(GPIO_DEVICE, "gpio") as gpio:
        gpio.operate(1)
        client.publish(topic_namespace.topic("gpio/status"), json.dumps({"pins": {"MAIN_VALVE": True}}), qos=1)
    assert done.wait(5)
    assert received[0]["pins"]["MAIN_VALVE"] is True
    client.disconnect()
    client.loop_stop()


@pytest.mark.skipif(not real_device_present("gpio"), reason="no GPIO hardware (/dev/gpiomem missing)")
def test_real_gpio_bank_opens(exclusive_resource):
    with exclusive_resource("gpio"):
        assert Path("/dev/gpiomem").stat().st_size >= 0


@pytest.mark.skipif(not real_device_present("coral"), reason="no Coral accelerator (/dev/apex_0 missing)")
def test_real_accelerator_opens(exclusive_resource):
    with exclusive_resource("coral"):
        assert Path("/dev/apex_0").exists()
