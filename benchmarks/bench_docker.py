"""Docker backend benchmark: broker container start-to-ready, one worker's stack, 12 at once.

Run: ``python benchmarks/bench_docker.py [--runs N] [--slots 4,0] [--out FILE]``.
Needs a Docker engine and the images (``invoke images``).  Every figure is
measured here, in this run; the JSON goes to ``.isolation/bench/docker.json``.

* broker: ``TestMQTTBroker.start()`` on the docker backend (create + start the
  mosquitto container, wait until it listens, MQTT round trip through the
  published port), then ``stop()``; the first start of a worker also creates
  its network and checks the images and is reported apart.
* stack: a fresh worker brings up broker + camera_detector + fire_consensus +
  gpio_trigger (services started together, each waited for by its "online"
  message), i.e. what a worker's first integration test pays.
* concurrent: 12 worker processes bring up their stacks at the same moment,
  once per ``--slots`` value (the host-wide Docker API slots; 0 = no limit).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from parallel_isolation.containers.engine import engine_problem
from parallel_isolation.containers.slots import API_SLOTS_ENV
from parallel_isolation.identity import Identity, new_run_id
from parallel_isolation.mqtt.brokers import TestMQTTBroker
from parallel_isolation.session.context import ParallelTestContext, WorkerContext
from parallel_isolation.settings import Settings

STACK = ("camera_detector", "fire_consensus", "gpio_trigger")


def _worker(worker_id: str, run_id: str, root: Path) -> WorkerContext:
    identity = Identity.resolve(run_id=run_id, worker_id=worker_id)
    settings = Settings(
        backend="docker", artifacts=str(root / "artifacts"), state_dir=str(root / "state")
    )
    return WorkerContext(identity, settings)


def _broker_times(runs: int, root: Path) -> tuple[float, list[float]]:
    worker = _worker("gw0", new_run_id(), root)
    times: list[float] = []
    try:
        for _ in range(runs + 1):
            broker = TestMQTTBroker(
                identity=worker.identity,
                allocator=worker.allocator,
                workdir=worker.artifacts.logs_dir,
                backend=worker.docker_broker_backend(),
                events=worker.events,
            )
            started = time.perf_counter()
            broker.start()
            times.append(time.perf_counter() - started)
            broker.stop()
    finally:
        worker.close()
    return times[0], times[1:]


def _bring_up_stack(worker: WorkerContext) -> dict[str, float]:
    """Broker + three services of one worker; seconds of each phase."""
    started = time.perf_counter()
    _ = worker.broker
    broker_s = time.perf_counter() - started
    context = ParallelTestContext(worker, "bench_docker.py::stack")
    runner = context.services
    try:
        watcher = runner.watcher
        since = time.monotonic()
        running = [runner.start(name, wait=False) for name in STACK]
        for service in running:
            runner.wait_online(service, since=since, timeout=30, watcher=watcher)
        stack_s = time.perf_counter() - started
    finally:
        stop_started = time.perf_counter()
        problems = context.close()
    if problems:
        raise RuntimeError("; ".join(problems))
    return {
        "broker_s": broker_s,
        "stack_s": stack_s,
        "services_stop_s": time.perf_counter() - stop_started,
    }


def _stack_times(runs: int, root: Path) -> list[dict[str, float]]:
    results = []
    for _ in range(runs):
        worker = _worker("gw0", new_run_id(), root)
        try:
            results.append(_bring_up_stack(worker))
        finally:
            close_started = time.perf_counter()
            errors = worker.close()
            results[-1]["worker_close_s"] = time.perf_counter() - close_started
        if errors:
            raise RuntimeError("; ".join(errors))
    return results


def _one_worker(worker_id: str, run_id: str, root: str, ready: Any, go: Any, out: Any) -> None:
    worker = _worker(worker_id, run_id, Path(root))
    ready.put(worker_id)
    go.wait(120)
    started = time.perf_counter()
    try:
        phases = _bring_up_stack(worker)
        error = None
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a failure
        phases, error = {}, f"{type(exc).__name__}: {exc}"
    close_started = time.perf_counter()
    errors = worker.close()
    phases["close_s"] = time.perf_counter() - close_started
    phases["total_s"] = time.perf_counter() - started
    out.put((worker_id, phases, error or ("; ".join(errors) if errors else None)))


def _concurrent(count: int, slots: int, root: Path) -> dict[str, Any]:
    os.environ[API_SLOTS_ENV] = str(slots)  # inherited by the spawned workers
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    ready = ctx.Queue()
    go = ctx.Event()
    run_id = new_run_id()
    procs = [
        ctx.Process(target=_one_worker, args=(f"gw{n}", run_id, str(root), ready, go, out))
        for n in range(count)
    ]
    for proc in procs:
        proc.start()
    # Every interpreter has imported everything and built its worker: release them together.
    for _ in procs:
        ready.get(timeout=120)
    started = time.perf_counter()
    go.set()
    results = [out.get(timeout=300) for _ in procs]
    wall = time.perf_counter() - started
    for proc in procs:
        proc.join(60)
    ok = [phases for _, phases, error in results if error is None]
    stacks = sorted(p["stack_s"] for p in ok)
    return {
        "workers": count,
        "api_slots": slots,
        "succeeded": len(ok),
        "failed": [f"{w}: {e}" for w, _, e in results if e],
        "stack_ready_median_s": statistics.median(stacks) if stacks else None,
        "stack_ready_max_s": max(stacks) if stacks else None,
        "broker_ready_max_s": max((p["broker_s"] for p in ok), default=None),
        "close_max_s": max((phases["close_s"] for _, phases, _ in results), default=None),
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="broker starts to time")
    parser.add_argument("--stack-runs", type=int, default=5, help="single-worker stacks to time")
    parser.add_argument("--workers", type=int, default=12, help="concurrent worker processes")
    parser.add_argument(
        "--slots", default="8,0", help="comma list of Docker API slot counts to compare (0 = off)"
    )
    parser.add_argument("--out", type=Path, default=Path(".isolation/bench/docker.json"))
    args = parser.parse_args(argv)
    console = Console()
    problem = engine_problem()
    if problem is not None:
        console.print(f"[red]no Docker engine: {problem}")
        return 2
    slot_counts = [int(raw) for raw in args.slots.split(",") if raw.strip()]
    results: dict[str, Any] = {"runs": args.runs, "stack_runs": args.stack_runs}
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        root = Path(tmp)
        with console.status(f"broker container start-to-ready x{args.runs}"):
            cold, warm = _broker_times(args.runs, root)
        results["broker_ready_first_s"] = cold
        results["broker_ready_median_s"] = statistics.median(warm)
        results["broker_ready_max_s"] = max(warm)
        with console.status(f"three-service stack of one worker x{args.stack_runs}"):
            stacks = _stack_times(args.stack_runs, root)
        results["stack"] = stacks
        results["stack_ready_median_s"] = statistics.median(s["stack_s"] for s in stacks)
        results["stack_ready_max_s"] = max(s["stack_s"] for s in stacks)
        results["stack_stop_median_s"] = statistics.median(s["services_stop_s"] for s in stacks)
        results["concurrent"] = []
        for slots in slot_counts:
            with console.status(f"{args.workers} workers' stacks at once, API slots {slots}"):
                results["concurrent"].append(_concurrent(args.workers, slots, root))

    table = Table(title="docker backend benchmark (this machine, this run)")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("target", justify="right")
    table.add_column("ok")
    failed = False

    def row(label: str, value: float, limit: float | None) -> None:
        nonlocal failed
        ok = limit is None or value <= limit
        failed |= not ok
        table.add_row(
            label,
            f"{value:.2f} s",
            f"<= {limit:.1f} s" if limit is not None else "-",
            "yes" if ok else "NO",
        )

    row("broker start-to-ready, median (warm)", results["broker_ready_median_s"], 2.0)
    row("broker start-to-ready, max (warm)", results["broker_ready_max_s"], None)
    row("broker first start (network + image check)", results["broker_ready_first_s"], None)
    row("3-service stack of one worker ready, median", results["stack_ready_median_s"], 5.0)
    row("3-service stack of one worker ready, max", results["stack_ready_max_s"], None)
    row("stopping the 3 services, median", results["stack_stop_median_s"], None)
    for conc in results["concurrent"]:
        ok = conc["succeeded"] == conc["workers"] and not conc["failed"]
        failed |= not ok
        table.add_row(
            f"{conc['workers']} stacks at once (API slots {conc['api_slots'] or 'off'})",
            f"{conc['succeeded']}/{conc['workers']} ok, median {conc['stack_ready_median_s'] or 0:.2f} s, "
            f"max {conc['stack_ready_max_s'] or 0:.2f} s, wall {conc['wall_s']:.1f} s",
            f"{conc['workers']}/{conc['workers']}",
            "yes" if ok else "NO",
        )
        for failure in conc["failed"]:
            console.print(f"[red]{failure}")
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    console.print(f"written {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
