"""This toolkit against testcontainers-python on the same image, in one run, interleaved.

Run: ``python benchmarks/bench_peers.py [--rounds N] [--stack-rounds N] [--out FILE]``
(or ``nox -s bench-peers``).  Needs a Docker engine, the images and
testcontainers (the ``dev`` extra).  Ryuk, testcontainers' reaper container,
is off (``TESTCONTAINERS_RYUK_DISABLED``): its image is on a registry this
machine may not reach, and each container is removed here explicitly.

Broker start-to-ready, one round = each contender once, in a rotating order:

* ``toolkit process``: ``TestMQTTBroker`` on the process backend (mosquitto
  as a child process) -- start, ready on an MQTT round trip, stop;
* ``toolkit docker``: ``TestMQTTBroker`` on the docker backend, image
  ``parallel-isolation/mosquitto``, on a worker whose network exists (the
  steady state of a test run): container create + start on an allocated port,
  mosquitto's ``running`` log line, an MQTT round trip;
* ``testcontainers``: ``DockerContainer`` of the same image with port 1883
  exposed (a random host port), ready on the first MQTT CONNACK -- what its
  documentation does for a broker.

Integration stack start (broker + camera_detector + fire_consensus +
gpio_trigger, each service ready on its retained ``online``), one round =
both contenders once:

* ``toolkit``: a fresh worker (network, broker, three service containers via
  ``ParallelTestContext.services``), as a worker's first integration test;
* ``testcontainers``: ``Network`` + broker ``DockerContainer`` with a network
  alias + three service ``DockerContainer`` started one after the other.

Reported: median and max of each, the ratios with their targets, the number
of engine requests per start (``docker_ops`` counts them in this process) and
this process's CPU per start.  The load average is printed next to the
figures; absolute times vary with the machine's load, the ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker_ops
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.table import Table

from parallel_isolation.containers.engine import engine_problem
from parallel_isolation.identity import Identity, new_run_id
from parallel_isolation.mqtt.brokers import TestMQTTBroker, find_mosquitto
from parallel_isolation.session.context import ParallelTestContext, WorkerContext
from parallel_isolation.settings import DEFAULT_BROKER_IMAGE as BROKER_IMAGE
from parallel_isolation.settings import Settings

SERVICES_IMAGE = "parallel-isolation/wildfire-services:latest"  # the example project's image
TARGET_DOCKER_VS_PEER = 0.8  # toolkit docker broker start-to-ready <= 0.8 x testcontainers'
STACK = ("camera_detector", "fire_consensus", "gpio_trigger")
STACK_ENV = {"HEALTH_INTERVAL": "1", "LOG_LEVEL": "INFO"}


def _worker(root: Path, backend: str) -> WorkerContext:
    identity = Identity.resolve(run_id=new_run_id(), worker_id="gw0")
    settings = Settings(
        backend=backend, artifacts=str(root / "artifacts"), state_dir=str(root / "state")
    )
    return WorkerContext(identity, settings)


def _requests_so_far() -> int:
    recorder = docker_ops._RECORDER
    if recorder is None:
        return 0
    with recorder.lock:
        return int(sum(entry[0] for entry in recorder.ops.values()))


def _on_connect(connected: threading.Event, answered: threading.Event) -> Any:
    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc == 0:
            connected.set()
        answered.set()

    return on_connect


def _first_connack(host: str, port: int, timeout: float = 30.0) -> None:
    """Connect until the broker answers CONNACK (testcontainers' readiness for a broker)."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"peer-{uuid.uuid4().hex[:8]}")
        connected = threading.Event()
        answered = threading.Event()  # CONNACK or the connection closed: try again at once

        client.on_connect = _on_connect(connected, answered)
        client.on_disconnect = lambda *_a, done=answered: done.set()
        try:
            client.connect(host, port, keepalive=10)
            client.loop_start()
            answered.wait(min(2.0, max(0.0, deadline - time.monotonic())))
            if connected.is_set():
                return
            last = "no CONNACK"
        except OSError as error:
            last = str(error)
        finally:
            client.disconnect()
            client.loop_stop()
        time.sleep(0.01)
    msg = f"broker at {host}:{port}: no CONNACK within {timeout:.0f} s ({last})"
    raise TimeoutError(msg)


# --- contenders: broker start-to-ready ------------------------------------------------


class Contender:
    name = ""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the contender keeps between rounds."""


class ToolkitBroker(Contender):
    def __init__(self, backend: str, root: Path) -> None:
        self.name = f"toolkit {backend}"
        self.worker = _worker(root / backend, backend)
        self.backend = backend
        self.broker: TestMQTTBroker | None = None
        if backend == "docker":
            # The steady state of a run: the worker's network exists, images were checked.
            manager = self.worker.containers
            manager.ensure_images([BROKER_IMAGE])
            manager.ensure_network()

    def start(self) -> None:
        self.broker = TestMQTTBroker(
            identity=self.worker.identity,
            allocator=self.worker.allocator,
            workdir=self.worker.artifacts.logs_dir,
            backend=self.worker.broker_backend(),
            events=self.worker.events,
        )
        self.broker.start()

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def close(self) -> None:
        self.stop()
        errors = self.worker.close()
        if errors:
            raise RuntimeError("; ".join(errors))


class PeerBroker(Contender):
    name = "testcontainers"

    def __init__(self) -> None:
        self.container: Any = None

    def start(self) -> None:
        from testcontainers.core.container import DockerContainer

        container = DockerContainer(BROKER_IMAGE).with_exposed_ports(1883)
        self.container = container
        container.start()
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(1883))
        _first_connack(host, port)

    def stop(self) -> None:
        if self.container is not None:
            self.container.stop()
            self.container = None


def _timed(action: Callable[[], None]) -> dict[str, float]:
    requests_before = _requests_so_far()
    cpu_before = time.process_time()
    started = time.perf_counter()
    action()
    return {
        "s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu_before,
        "requests": float(_requests_so_far() - requests_before),
    }


def broker_rounds(rounds: int, root: Path, console: Console) -> dict[str, Any]:
    contenders: list[Contender] = []
    if find_mosquitto():
        contenders.append(ToolkitBroker("process", root))
    contenders.append(ToolkitBroker("docker", root))
    contenders.append(PeerBroker())
    figures: dict[str, dict[str, list[float]]] = {
        c.name: {"start_s": [], "start_cpu_s": [], "start_requests": [], "stop_s": []}
        for c in contenders
    }
    try:
        # Round 0 warms caches (image layers, the SDK's imports) and is not counted.
        for index in range(rounds + 1):
            order = contenders[index % len(contenders) :] + contenders[: index % len(contenders)]
            for contender in order:
                with console.status(
                    f"broker start-to-ready round {index}/{rounds}: {contender.name}"
                ):
                    try:
                        start = _timed(contender.start)
                    finally:
                        stop = _timed(contender.stop)
                if index == 0:
                    continue
                entry = figures[contender.name]
                entry["start_s"].append(start["s"])
                entry["start_cpu_s"].append(start["cpu_s"])
                entry["start_requests"].append(start["requests"])
                entry["stop_s"].append(stop["s"])
    finally:
        for contender in contenders:
            contender.close()
    return {name: _summary(values) for name, values in figures.items()}


# --- contenders: the integration stack ------------------------------------------------


def _toolkit_stack(root: Path) -> dict[str, float]:
    worker = _worker(root / "stack", "docker")
    try:
        cpu_before = time.process_time()
        requests_before = _requests_so_far()
        started = time.perf_counter()
        context = ParallelTestContext(worker, "bench_peers.py::stack")
        runner = context.services
        watcher = runner.watcher
        since = time.monotonic()
        running = [runner.start(name, wait=False, **STACK_ENV) for name in STACK]
        for service in running:
            runner.wait_online(service, since=since, timeout=60, watcher=watcher)
        ready = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        requests = _requests_so_far() - requests_before
        stop_started = time.perf_counter()
        problems = context.close()
        problems += worker.close()
        stop = time.perf_counter() - stop_started
    except BaseException:
        worker.close()
        raise
    if problems:
        raise RuntimeError("; ".join(problems))
    return {"start_s": ready, "start_cpu_s": cpu, "start_requests": requests, "stop_s": stop}


def _peer_stack() -> dict[str, float]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    cpu_before = time.process_time()
    requests_before = _requests_so_far()
    started = time.perf_counter()
    network = Network().create()
    containers: list[Any] = []
    monitor: paho.Client | None = None
    try:
        broker = (
            DockerContainer(BROKER_IMAGE)
            .with_exposed_ports(1883)
            .with_network(network)
            .with_network_aliases("mqtt")
        )
        containers.append(broker)
        broker.start()
        host = broker.get_container_host_ip()
        port = int(broker.get_exposed_port(1883))
        _first_connack(host, port)
        prefix = f"peer/{uuid.uuid4().hex[:8]}"
        online: set[str] = set()
        lock = threading.Condition()
        monitor = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"peer-monitor-{prefix[5:]}")

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            if message.payload == b"online":
                with lock:
                    online.add(message.topic.split("/")[-2])
                    lock.notify_all()

        subscribed = threading.Event()
        monitor.on_message = on_message
        monitor.on_subscribe = lambda *_a: subscribed.set()
        monitor.connect(host, port)
        monitor.loop_start()
        monitor.subscribe(f"{prefix}/system/+/lwt", qos=1)
        if not subscribed.wait(30):
            raise TimeoutError("the monitor got no SUBACK")
        for service in STACK:
            container = (
                DockerContainer(SERVICES_IMAGE)
                .with_command(["python3", "-m", f"wildfire.{service}"])
                .with_network(network)
                .with_envs(
                    MQTT_BROKER="mqtt",
                    MQTT_PORT="1883",
                    TOPIC_PREFIX=prefix,
                    MQTT_CLIENT_ID=f"{service}-{prefix[5:]}",
                    SERVICE_NAME=service,
                    **STACK_ENV,
                )
            )
            containers.append(container)
            container.start()
        with lock:
            if not lock.wait_for(lambda: online >= set(STACK), timeout=60):
                raise TimeoutError(f"services online: {sorted(online)} of {list(STACK)}")
        ready = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        requests = _requests_so_far() - requests_before
    finally:
        stop_started = time.perf_counter()
        if monitor is not None:
            monitor.disconnect()
            monitor.loop_stop()
        for container in reversed(containers):
            container.stop()
        network.remove()
        stop = time.perf_counter() - stop_started
    return {"start_s": ready, "start_cpu_s": cpu, "start_requests": requests, "stop_s": stop}


def stack_rounds(rounds: int, root: Path, console: Console) -> dict[str, Any]:
    contenders: list[tuple[str, Callable[[], dict[str, float]]]] = [
        ("toolkit", lambda: _toolkit_stack(root)),
        ("testcontainers", _peer_stack),
    ]
    figures: dict[str, dict[str, list[float]]] = {name: {} for name, _ in contenders}
    for index in range(rounds + 1):
        order = contenders if index % 2 == 0 else list(reversed(contenders))
        for name, run in order:
            with console.status(f"stack round {index}/{rounds}: {name}"):
                result = run()
            if index == 0:
                continue
            for key, value in result.items():
                figures[name].setdefault(key, []).append(value)
    return {name: _summary(values) for name, values in figures.items()}


def _summary(values: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, series in values.items():
        if series:
            out[f"{key}_median"] = round(statistics.median(series), 4)
            out[f"{key}_max"] = round(max(series), 4)
            out[f"{key}_all"] = [round(v, 4) for v in series]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10, help="broker rounds (median of N)")
    parser.add_argument("--stack-rounds", type=int, default=5, help="stack rounds (0 = none)")
    parser.add_argument("--out", type=Path, default=Path(".isolation/bench/peers.json"))
    args = parser.parse_args(argv)
    console = Console(width=160)
    problem = engine_problem()
    if problem is not None:
        console.print(f"no Docker engine: {problem}", markup=False)
        return 2
    try:
        import testcontainers  # noqa: F401
    except ImportError:
        console.print("testcontainers is not installed: pip install -e '.[dev]'", markup=False)
        return 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        root = Path(tmp)
        docker_ops.install(root / "ops")
        results: dict[str, Any] = {"rounds": args.rounds, "stack_rounds": args.stack_rounds}
        results["broker"] = broker_rounds(args.rounds, root, console)
        if args.stack_rounds:
            results["stack"] = stack_rounds(args.stack_rounds, root, console)
    results["load_before"] = [round(v, 2) for v in load_before]
    results["load_after"] = [round(v, 2) for v in os.getloadavg()]
    failed = _report(results, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written {args.out}", markup=False)
    return 1 if failed else 0


def _report(results: dict[str, Any], console: Console) -> bool:
    failed = False
    peer = "testcontainers"
    for section, title in (
        ("broker", "broker start-to-ready, same image, interleaved"),
        ("stack", "integration stack start (broker + 3 services online), interleaved"),
    ):
        if section not in results:
            continue
        table = Table(title=f"{title} (load {results['load_before'][0]:.1f})")
        for column in (
            "contender",
            "start median s",
            "start max s",
            f"vs {peer}",
            "target",
            "engine requests",
            "client CPU s",
            "stop median s",
        ):
            table.add_column(column, justify="left" if column == "contender" else "right")
        base = results[section][peer]["start_s_median"]
        for name, fig in results[section].items():
            ratio = fig["start_s_median"] / base if base else float("nan")
            target = "-"
            if section == "broker" and name == "toolkit docker":
                ok = ratio <= TARGET_DOCKER_VS_PEER
                failed |= not ok
                target = f"<= {TARGET_DOCKER_VS_PEER} ({'yes' if ok else 'NO'})"
            table.add_row(
                name,
                f"{fig['start_s_median']:.3f}",
                f"{fig['start_s_max']:.3f}",
                f"{ratio:.2f}",
                target,
                f"{fig['start_requests_median']:.0f}",
                f"{fig['start_cpu_s_median']:.3f}",
                f"{fig['stop_s_median']:.3f}",
            )
        console.print(table)
    load = results["load_before"]
    console.print(
        f"load average before {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, after "
        f"{results['load_after'][0]:.1f}; ratios are within this run, interleaved",
        markup=False,
    )
    return failed


if __name__ == "__main__":
    sys.exit(main())
