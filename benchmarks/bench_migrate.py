"""How fast is ``invoke migrate --check``?  Target: 100 files of 500 lines in <= 10 s.

Generates realistic parallel-unsafe pytest files (module constants, helper
classes and functions, fixtures, tests that publish, subscribe, start
containers and sleep) into a temporary directory, then times
:func:`parallel_isolation.migrate.check_paths` over them with the pool and
in one process, and the codemod (``migrate_paths(..., diff=True)``) too.

    python benchmarks/bench_migrate.py [--files 100] [--lines 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from parallel_isolation.migrate import check_paths, migrate_paths

HEADER = '''"""Generated benchmark module {index}: parallel-unsafe MQTT integration tests."""

from __future__ import annotations

import json
import threading
import time

import docker
import paho.mqtt.client as mqtt
import pytest

BROKER_HOST = "localhost"
BROKER_PORT = 18833
NETWORK_NAME = "bench-net-{index}"
LOG_FILE = "/tmp/bench-{index}.log"


class Recorder:
    """Records messages on the given filters."""

    def __init__(self, client_id: str, topics: list[str]) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect(BROKER_HOST, BROKER_PORT)
        self.client.loop_start()
        for topic in topics:
            self.client.subscribe(topic, qos=1)
        time.sleep(0.5)

    def _on_message(self, client, userdata, message) -> None:
        with self.cond:
            self.messages.append((message.topic, message.payload))
            self.cond.notify_all()

    def wait_for(self, topic_filter: str, timeout: float = 5.0) -> bytes:
        with self.cond:
            self.cond.wait_for(lambda: self.matching(topic_filter), timeout)
        return self.matching(topic_filter)[0]

    def matching(self, topic_filter: str) -> list[bytes]:
        return [p for t, p in self.messages if mqtt.topic_matches_sub(topic_filter, t)]


def publisher(client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect(BROKER_HOST, BROKER_PORT)
    client.loop_start()
    return client


@pytest.fixture(scope="module")
def network():
    client = docker.from_env()
    net = client.networks.create(NETWORK_NAME)
    yield net
    net.remove()
'''

BLOCK = """

@pytest.fixture
def service_{n}(network):
    client = docker.from_env()
    container = client.containers.run(
        "bench/service:latest",
        name="bench-service-{n}",
        network=NETWORK_NAME,
        environment={{"MQTT_BROKER": BROKER_HOST, "MQTT_PORT": str(BROKER_PORT), "MQTT_CLIENT_ID": "svc-{n}"}},
        detach=True,
    )
    time.sleep(1)
    yield container
    container.remove(force=True)


def send_event_{n}(client: mqtt.Client, camera: str) -> None:
    client.publish(f"frigate/{{camera}}/fire", json.dumps({{"camera": camera}}), qos=1)


def test_event_flow_{n}(service_{n}):
    recorder = Recorder("bench-recorder-{n}", ["fire/trigger", "system/+/health"])
    client = publisher("bench-publisher-{n}")
    send_event_{n}(client, "cam{n}")
    client.publish("frigate/events", json.dumps({{"n": {n}}}), qos=1)
    payload = recorder.wait_for("fire/trigger")
    assert json.loads(payload)["n"] == {n}
    time.sleep(0.2)
    received = []
    client.on_message = lambda c, u, m: received.append(m)
    client.subscribe("system/{n}/status")
    assert not received or received[0].topic == "system/{n}/status"
    client.disconnect()
"""


def generate(directory: Path, files: int, lines: int) -> int:
    """Write ``files`` modules of about ``lines`` lines; return the total line count."""
    total = 0
    for index in range(files):
        text = HEADER.format(index=index)
        n = 0
        while text.count("\n") < lines:
            text += BLOCK.format(n=n)
            n += 1
        (directory / f"test_generated_{index:03d}.py").write_text(text)
        total += text.count("\n")
    return total


def timed(label: str, repeat: int, action: object) -> float:
    assert callable(action)
    runs = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        runs.append(time.perf_counter() - start)
    best, median = min(runs), statistics.median(runs)
    detail = f"{len(result)} findings" if isinstance(result, list) else ""
    print(f"{label:<42} best {best:6.2f} s   median {median:6.2f} s   {detail}")
    return median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds allowed for --check")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as tmp:
        directory = Path(tmp)
        total = generate(directory, args.files, args.lines)
        print(
            f"{args.files} files, {total} lines, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
        )
        check = timed(
            "check (pool, one worker per CPU)", args.repeat, lambda: check_paths([directory])
        )
        timed("check (one process)", args.repeat, lambda: check_paths([directory], jobs=1))
        timed(
            "migrate --diff (pool)",
            1,
            lambda: list(migrate_paths([directory], diff=True).files),
        )
    verdict = "within" if check <= args.budget else "OVER"
    print(
        f"check: {check:.2f} s for {args.files} x {args.lines} lines, {verdict} the {args.budget:.0f} s budget"
    )
    return 0 if check <= args.budget else 1


if __name__ == "__main__":
    raise SystemExit(main())
