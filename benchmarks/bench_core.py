"""Core benchmark: broker start-to-ready, per-test fixture overhead, 12 brokers at once.

Run: ``python benchmarks/bench_core.py [--out FILE]`` (or ``nox -s bench-core``).
Every figure is measured here, in this run; nothing is copied from elsewhere.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from parallel_isolation.host.ports import PortAllocator
from parallel_isolation.identity import Identity, new_run_id
from parallel_isolation.mqtt.brokers import TestMQTTBroker, find_mosquitto
from parallel_isolation.session.context import ParallelTestContext, WorkerContext
from parallel_isolation.settings import Settings


def _broker_ready_times(backend: str, runs: int, state: Path, workdir: Path) -> list[float]:
    identity = Identity.resolve(run_id=new_run_id(), worker_id="gw0")
    allocator = PortAllocator(identity, base=51000, state_dir=state)
    times = []
    for index in range(runs):
        broker = TestMQTTBroker(
            identity=identity,
            allocator=allocator,
            workdir=workdir / f"{backend}-{index}",
            backend=backend,
        )
        started = time.perf_counter()
        broker.start()
        times.append(time.perf_counter() - started)
        broker.stop()
    return times


def _fixture_overhead(runs: int, artifacts: Path, state: Path) -> list[float]:
    identity = Identity.resolve(run_id=new_run_id(), worker_id="gw0")
    settings = Settings(artifacts=str(artifacts), state_dir=str(state), port_base=52000)
    worker = WorkerContext(identity, settings)
    _ = worker.broker  # session-scoped: not part of the per-test cost
    times = []
    try:
        for index in range(runs):
            started = time.perf_counter()
            context = ParallelTestContext(worker, f"bench.py::test_{index}")
            client = context.mqtt_client("test-client")
            client.subscribe("warm/up", qos=1)
            context.close()
            times.append(time.perf_counter() - started)
    finally:
        worker.close()
    return times


def _one_worker(worker_id: str, run_id: str, state: str, workdir: str, out: Any) -> None:
    identity = Identity.resolve(run_id=run_id, worker_id=worker_id)
    allocator = PortAllocator(identity, state_dir=Path(state), base=53000)
    broker = TestMQTTBroker(
        identity=identity, allocator=allocator, workdir=Path(workdir) / worker_id
    )
    started = time.perf_counter()
    try:
        broker.start()
        out.put((worker_id, broker.port, time.perf_counter() - started, None))
    except Exception as error:  # noqa: BLE001 - reported to the parent as a failure
        out.put((worker_id, None, time.perf_counter() - started, str(error)))
    finally:
        broker.stop()


def _concurrent_brokers(count: int, state: Path, workdir: Path) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    run_id = new_run_id()
    procs = [
        ctx.Process(target=_one_worker, args=(f"gw{n}", run_id, str(state), str(workdir), out))
        for n in range(count)
    ]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    wall = time.perf_counter() - started
    for proc in procs:
        proc.join(30)
    ports = [port for _, port, _, _ in results if port is not None]
    return {
        "workers": count,
        "ready": len(ports),
        "failed": [f"{w}: {e}" for w, _, _, e in results if e],
        "distinct_ports": len(set(ports)),
        "slowest_ready_s": max(t for _, _, t, _ in results),
        "wall_s_including_interpreter_spawn": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(".isolation/bench/core.json"))
    args = parser.parse_args(argv)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-core-") as tmp:
        root = Path(tmp)
        state = root / "state"
        results: dict[str, Any] = {"runs": args.runs}
        backends = ["embedded"] + (["process"] if find_mosquitto() else [])
        for backend in backends:
            with console.status(f"broker start-to-ready, {backend} x{args.runs}"):
                times = _broker_ready_times(backend, args.runs, state, root / "brokers")
            results[f"broker_ready_median_s_{backend}"] = statistics.median(times)
            results[f"broker_ready_max_s_{backend}"] = max(times)
        with console.status("per-test fixture overhead"):
            overhead = _fixture_overhead(args.runs * 5, root / "artifacts", state)
        results["fixture_overhead_median_s"] = statistics.median(overhead)
        with console.status("12 brokers started concurrently in 12 processes"):
            results["concurrent"] = _concurrent_brokers(12, state, root / "concurrent")
    targets = {
        "broker_ready_median_s_process": 0.100,
        "broker_ready_median_s_embedded": 0.500,
        "fixture_overhead_median_s": 0.030,
    }
    table = Table(title="core benchmark (this machine, this run)")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("target", justify="right")
    table.add_column("ok")
    failed = False
    for key, limit in targets.items():
        if key not in results:
            continue
        ok = results[key] <= limit
        failed |= not ok
        table.add_row(
            key, f"{results[key] * 1000:.1f} ms", f"<= {limit * 1000:.0f} ms", "yes" if ok else "NO"
        )
    conc = results["concurrent"]
    ok = conc["ready"] == conc["workers"] == conc["distinct_ports"] and not conc["failed"]
    failed |= not ok
    table.add_row(
        "12 concurrent brokers ready / distinct ports",
        f"{conc['ready']} / {conc['distinct_ports']} (slowest {conc['slowest_ready_s'] * 1000:.0f} ms)",
        "12 / 12",
        "yes" if ok else "NO",
    )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
