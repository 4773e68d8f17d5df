"""Benchmarks of the wildfire services as real child processes.

Run as a script (not collected by pytest)::

    .venv/bin/python tests/wildfire/bench_services.py            # both benches
    .venv/bin/python tests/wildfire/bench_services.py --json     # machine-readable

1. **startup**: spawn ``python -m wildfire.<service>`` until its retained
   ``online`` reaches a subscriber; median of ``--runs`` (budget: 400 ms).
2. **load**: one ``fire_consensus`` process fed ``--rate`` detections/s for
   ``--seconds`` s.  Its health messages (every 0.5 s) report
   ``detections_processed``; the backlog (sent - processed) is sampled at each
   health message and must not grow; peak RSS (VmHWM) must stay <= 80 MB.

A private mosquitto is started on a free 127.0.0.1 port unless ``--broker
host:port`` names one.  Every run uses its own topic prefix.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

STARTUP_BUDGET_MS = 400.0
RSS_BUDGET_MB = 80.0
SERVICES = ("camera_detector", "fire_consensus", "gpio_trigger")


# -- broker ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_broker() -> Iterator[tuple[str, int]]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wildfire-bench-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 5
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"mosquitto did not listen on {port}") from None
                    time.sleep(0.02)
            yield "127.0.0.1", port
        finally:
            proc.terminate()
            proc.wait(5)


class Watcher:
    """A subscriber that hands messages to a predicate-based wait."""

    def __init__(self, host: str, port: int, topic_filter: str) -> None:
        self.messages: list[tuple[float, str, bytes]] = []
        self._cond = threading.Condition()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-watch-{secrets.token_hex(4)}"
        )
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(topic_filter, qos=1)
        if not subscribed.wait(5):
            raise RuntimeError("no SUBACK")

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((time.monotonic(), message.topic, bytes(message.payload)))
            self._cond.notify_all()

    def wait(self, predicate: Any, timeout: float) -> tuple[float, str, bytes]:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for item in self.messages[seen:]:
                    if predicate(item[1], item[2]):
                        return item
                seen = len(self.messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("condition not met")
                self._cond.wait(remaining)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def spawn(module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", f"wildfire.{module}"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(5)


# -- startup -----------------------------------------------------------------


@dataclass
class StartupResult:
    service: str
    runs_ms: list[float]
    median_ms: float = 0.0
    max_ms: float = 0.0

    def __post_init__(self) -> None:
        self.median_ms = round(statistics.median(self.runs_ms), 1)
        self.max_ms = round(max(self.runs_ms), 1)


def bench_startup(host: str, port: int, service: str, runs: int) -> StartupResult:
    timings = []
    for run in range(runs):
        prefix = f"bench/{secrets.token_hex(4)}/{run}"
        watcher = Watcher(host, port, f"{prefix}/system/{service}/lwt")
        try:
            began = time.monotonic()
            proc = spawn(
                service,
                {"MQTT_BROKER": host, "MQTT_PORT": str(port), "TOPIC_PREFIX": prefix,
                 "LOG_LEVEL": "WARNING"},
            )
            arrived, _, _ = watcher.wait(lambda _t, payload: payload == b"online", 10)
            timings.append((arrived - began) * 1000)
            if stop(proc) != 0:
                raise RuntimeError(f"{service} exited non-zero on SIGTERM")
        finally:
            watcher.close()
    return StartupResult(service, [round(t, 1) for t in timings])


# -- load --------------------------------------------------------------------


@dataclass
class LoadResult:
    rate: float
    seconds: float
    sent: int = 0
    processed: int = 0
    send_rate: float = 0.0
    drain_ms: float = 0.0
    backlog_samples: list[int] = field(default_factory=list)
    backlog_max: int = 0
    backlog_first_half_max: int = 0
    backlog_second_half_max: int = 0
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0
    cpu_seconds: float = 0.0
    kept_up: bool = False


def proc_status(pid: int) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            values[key] = int(rest.split()[0]) / 1024  # kB -> MB
    return values


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_load(host: str, port: int, rate: float, seconds: float) -> LoadResult:
    prefix = f"bench/{secrets.token_hex(4)}/load"
    health_topic = f"{prefix}/system/fire_consensus/health"
    watcher = Watcher(host, port, f"{prefix}/system/#")
    proc = spawn(
        "fire_consensus",
        {"MQTT_BROKER": host, "MQTT_PORT": str(port), "TOPIC_PREFIX": prefix,
         "HEALTH_INTERVAL": "0.5", "LOG_LEVEL": "WARNING", "CAMERA_TIMEOUT": "600"},
    )
    result = LoadResult(rate, seconds)
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    publisher.connect(host, port)
    publisher.loop_start()
    try:
        watcher.wait(lambda t, p: t.endswith("/lwt") and p == b"online", 10)
        cameras = [f"cam{i}" for i in range(1, 5)]
        for camera in cameras:
            publisher.publish(
                f"{prefix}/system/camera_telemetry",
                json.dumps({"camera_id": camera, "status": "online"}),
                qos=1,
            ).wait_for_publish(5)
        watcher.wait(
            lambda t, p: t == health_topic and json.loads(p)["cameras_online"] == 4, 10
        )
        cpu_before = cpu_seconds(proc.pid)
        sent_at: list[tuple[float, int]] = []
        began = time.monotonic()
        total = int(rate * seconds)
        for index in range(total):
            target = began + index / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            camera = cameras[index % len(cameras)]
            size = 0.1 + 0.02 * ((index // len(cameras)) % 5)  # steady, never growing
            event = {
                "type": "update",
                "after": {
                    "id": f"{camera}-obj{index % 8}",
                    "camera": camera,
                    "label": "fire",
                    "top_score": 0.9,
                    "box": [0.2, 0.2, 0.2 + size, 0.2 + size],
                },
            }
            publisher.publish(f"{prefix}/frigate/events", json.dumps(event))
            if index % 100 == 0:
                sent_at.append((time.monotonic(), index))
        sent_done = time.monotonic()
        result.sent = total
        result.send_rate = round(total / (sent_done - began), 1)
        final = watcher.wait(
            lambda t, p: t == health_topic and json.loads(p)["detections_processed"] >= total,
            30,
        )
        result.drain_ms = round(max(0.0, final[0] - sent_done) * 1000, 1)
        result.processed = json.loads(final[2])["detections_processed"]
        result.cpu_seconds = round(cpu_seconds(proc.pid) - cpu_before, 2)
        status = proc_status(proc.pid)
        result.rss_peak_mb = round(status["VmHWM"], 1)
        result.rss_end_mb = round(status["VmRSS"], 1)
        # backlog at each health message during the send window
        for when, topic, payload in list(watcher.messages):
            if topic != health_topic or not began <= when <= sent_done:
                continue
            sent_by_then = max((n for t, n in sent_at if t <= when), default=0)
            processed = json.loads(payload)["detections_processed"]
            result.backlog_samples.append(max(0, sent_by_then - processed))
        half = len(result.backlog_samples) // 2
        samples = result.backlog_samples or [0]
        result.backlog_max = max(samples)
        result.backlog_first_half_max = max(samples[:half] or [0])
        result.backlog_second_half_max = max(samples[half:] or [0])
        result.kept_up = (
            result.processed == total
            and result.backlog_second_half_max <= max(2 * rate * 0.1, result.backlog_first_half_max)
            and result.rss_peak_mb <= RSS_BUDGET_MB
        )
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        stop(proc)
        watcher.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="startup runs per service")
    parser.add_argument("--rate", type=float, default=1000.0, help="detections per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="load duration")
    parser.add_argument("--broker", help="host:port of an existing broker")
    parser.add_argument("--only", choices=["startup", "load"], help="run one bench")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    def run(host: str, port: int) -> dict[str, Any]:
        report: dict[str, Any] = {}
        if args.only in (None, "startup"):
            report["startup"] = [
                asdict(bench_startup(host, port, service, args.runs)) for service in SERVICES
            ]
        if args.only in (None, "load"):
            report["load"] = asdict(bench_load(host, port, args.rate, args.seconds))
        return report

    if args.broker:
        host, _, port = args.broker.rpartition(":")
        report = run(host, int(port))
    else:
        with private_broker() as (host, port):
            report = run(host, port)
    ok = True
    if args.json:
        print(json.dumps(report, indent=2))
    for item in report.get("startup", []):
        good = item["median_ms"] <= STARTUP_BUDGET_MS
        ok &= good
        if not args.json:
            print(
                f"startup {item['service']:<16} median {item['median_ms']:6.1f} ms "
                f"max {item['max_ms']:6.1f} ms  (budget {STARTUP_BUDGET_MS:.0f})"
                f"  {'ok' if good else 'OVER'}"
            )
    load = report.get("load")
    if load:
        ok &= load["kept_up"]
        if not args.json:
            print(
                f"load {load['rate']:.0f}/s x {load['seconds']:.0f} s: sent {load['sent']} "
                f"(at {load['send_rate']:.0f}/s), processed {load['processed']}, drained "
                f"{load['drain_ms']:.0f} ms after the last send; backlog max "
                f"{load['backlog_max']} (1st half {load['backlog_first_half_max']}, 2nd half "
                f"{load['backlog_second_half_max']}); RSS peak {load['rss_peak_mb']} MB "
                f"(budget {RSS_BUDGET_MB:.0f}); CPU {load['cpu_seconds']} s  "
                f"{'ok' if load['kept_up'] else 'FAILED'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
