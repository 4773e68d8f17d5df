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
* breakdown: the integration suite on the docker backend, serial and -n 12
  (``--breakdown-workers``), each run watched by ``cpu_breakdown.ProcSampler``
  (CPU of dockerd, containerd, shims, runc, docker-proxy, the pytest processes,
  the broker and service containers, from /proc and the containers' cgroups)
  and counted by ``docker_ops`` (every engine request of the pytest processes:
  count and client-side time per operation, and who made it).  The busy-CPU
  target (-n 12 <= 1.3 x serial) is printed next to the figures.
  ``--profile DIR`` runs the -n 12 suite once more under py-spy (all
  processes, native frames off) and writes where the Python CPU goes.
  ``--backend process`` samples the same runs on the process (default)
  backend: where its CPU goes, and so the floor under its wall ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cpu_breakdown
import docker_ops
from bench_suite import BASE_ARGS, ROOT, SUITE_ENV, _junit
from rich.console import Console
from rich.table import Table

from parallel_isolation.containers.engine import engine_problem
from parallel_isolation.containers.slots import API_SLOTS_ENV
from parallel_isolation.identity import Identity, new_run_id
from parallel_isolation.mqtt.brokers import TestMQTTBroker
from parallel_isolation.session.context import ParallelTestContext, WorkerContext
from parallel_isolation.settings import DEFAULT_BROKER_IMAGE as BROKER_IMAGE
from parallel_isolation.settings import Settings

STACK = ("camera_detector", "fire_consensus", "gpio_trigger")
BENCH_DIR = Path(__file__).resolve().parent
TARGET_BUSY_RATIO = 1.3  # docker busy CPU at -n 12 <= 1.3 x serial's
ENGINE_CLASSES = cpu_breakdown.ENGINE_CLASSES
RUN_CLASSES = (*cpu_breakdown.OWN_CLASSES, *ENGINE_CLASSES)


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


# --- where the CPU goes: the suite under the sampler and the op counter ---------------


def _merge_ops(directory: Path) -> dict[str, Any]:
    """Sum the ``docker_ops`` files of every process of one run."""
    ops: dict[str, dict[str, float]] = {}
    callers: dict[str, dict[str, float]] = {}
    containers: dict[str, dict[str, str]] = {}
    processes = 0
    for path in sorted(directory.glob("ops-*.json")):
        data = json.loads(path.read_text())
        processes += 1
        for op, fig in data["ops"].items():
            entry = ops.setdefault(op, {"count": 0, "total_s": 0.0, "max_s": 0.0})
            entry["count"] += fig["count"]
            entry["total_s"] += fig["total_s"]
            entry["max_s"] = max(entry["max_s"], fig["max_s"])
        for key, fig in data["callers"].items():
            entry = callers.setdefault(key, {"count": 0, "total_s": 0.0})
            entry["count"] += fig["count"]
            entry["total_s"] += fig["total_s"]
        containers.update(data["containers"])
    return {
        "processes": processes,
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1]["count"])),
        "callers": dict(sorted(callers.items(), key=lambda kv: -kv[1]["count"])),
        "containers": containers,
    }


def _suite_argv(workers: int, run_id: str, junit: Path, backend: str = "docker") -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        *BASE_ARGS,
        "-p",
        "docker_ops",
        "-n",
        str(workers),
        f"--testrunuid={run_id}",
        f"--junitxml={junit}",
        "--isolation-backend",
        backend,
    ]


def _suite_env(ops_dir: Path, library: Path | None = None) -> dict[str, str]:
    """The suite's environment; ``library`` (a ``lib`` directory) shadows the installed one."""
    entries = [str(library)] if library is not None else []
    entries += [str(BENCH_DIR), SUITE_ENV.get("PYTHONPATH", "")]
    return {
        **SUITE_ENV,
        docker_ops.ENV: str(ops_dir),
        "PYTHONPATH": os.pathsep.join(e for e in entries if e),
    }


def _suite_run(
    workers: int,
    root: Path,
    interval: float,
    console: Console,
    *,
    library: Path | None = None,
    backend: str = "docker",
) -> dict[str, Any]:
    """One run of the integration suite on ``backend``, sampled and counted.

    ``library``: run another version of the library (its ``lib`` directory),
    for A/B comparisons; the tests are this checkout's.
    """
    run_id = new_run_id()
    ops_dir = root / f"ops-{run_id}"
    junit = root / f"suite-docker-n{workers}-{run_id}.xml"
    sampler = cpu_breakdown.ProcSampler(interval=interval).start()
    started = time.perf_counter()
    proc = subprocess.Popen(
        _suite_argv(workers, run_id, junit, backend),
        cwd=ROOT,
        env=_suite_env(ops_dir, library),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sampler.set_root(proc.pid)
    output, _ = proc.communicate()
    wall = time.perf_counter() - started
    sampler.stop()
    ops = _merge_ops(ops_dir)
    roles = {cid: info["role"] for cid, info in ops["containers"].items()}
    cpu = sampler.report(roles)
    figures = _junit(junit) if junit.exists() else None
    if proc.returncode != 0:
        console.print(output[-3000:], markup=False, highlight=False)
    ours = sum(cpu["classes_s"].get(k, 0.0) for k in RUN_CLASSES)
    engine = sum(cpu["classes_s"].get(k, 0.0) for k in ENGINE_CLASSES)
    return {
        "backend": backend,
        "workers": workers,
        "run_id": run_id,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 3),
        "passed": figures.passed if figures else 0,
        "failed": figures.failed if figures else 0,
        "this_run_cpu_s": round(ours, 3),
        "engine_cpu_s": round(engine, 3),
        "containers_created": len(ops["containers"]),
        "cpu": cpu,
        "docker_ops": ops,
    }


def _profile_run(
    workers: int, root: Path, out_dir: Path, console: Console, backend: str = "docker"
) -> dict[str, Any]:
    """The suite under py-spy (every Python process of the pytest tree); on-CPU samples."""
    run_id = new_run_id()
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"pyspy-{backend}-n{workers}.txt"
    argv = [
        "py-spy",
        "record",
        "--subprocesses",
        "--nonblocking",
        "--rate",
        "100",
        "--format",
        "raw",
        "-o",
        str(raw),
        "--",
        *_suite_argv(workers, run_id, root / f"profile-{run_id}.xml", backend),
    ]
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=ROOT, env=_suite_env(root / f"ops-{run_id}"), capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0 or not raw.exists():
        console.print(done.stdout[-2000:] + done.stderr[-2000:], markup=False, highlight=False)
        return {"error": f"py-spy exit {done.returncode}", "wall_s": wall}
    return {"wall_s": round(wall, 3), "raw": str(raw), "rate_hz": 100, **_collapse(raw)}


def _process_kind(frames: list[str]) -> str:
    """From py-spy's process frames (controller; zygote; forked worker): what the process is."""
    chain = [f for f in frames if f.startswith("process ")]
    last = chain[-1] if chain else ""
    if "zygote.py launch" in last:
        return "launcher"
    if "zygote.py serve" in last:
        return "worker" if len(chain) >= 3 else "zygote"
    if "-m pytest" in last:
        return "controller" if len(chain) == 1 else "worker (not forked)"
    return "other"


def _collapse(raw: Path, top: int = 30) -> dict[str, Any]:
    """From py-spy's collapsed stacks: on-CPU samples by process kind, module, function.

    "function (self)" is the innermost Python frame; "through" counts a sample
    for every distinct function of this project or of a test anywhere on its
    stack (inclusive time), which shows which of the library's steps costs most.
    """
    by_kind: dict[str, int] = {}
    leaves: dict[str, int] = {}
    modules: dict[str, int] = {}
    through: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        kind = _process_kind(frames)
        by_kind[kind] = by_kind.get(kind, 0) + count
        code = [f for f in frames if not f.startswith("process ")]
        leaf = code[-1] if code else "(no Python frame)"
        leaves[leaf] = leaves.get(leaf, 0) + count
        where = leaf.partition(" (")[2].rstrip(")")
        module = where.split(":")[0]
        for marker in ("site-packages/", "lib/python3.11/", "lib/"):
            if marker in module:
                module = module.split(marker, 1)[1]
                break
        module = "/".join(module.split("/")[:2])
        modules[module] = modules.get(module, 0) + count
        seen = set()
        for frame in code:
            name, _, place = frame.partition(" (")
            if "parallel_isolation" in place or "tests/" in place or "conftest" in place:
                key = f"{name} ({place.split(':')[0].rsplit('/', 1)[-1]})"
                if key not in seen:
                    seen.add(key)
                    through[key] = through.get(key, 0) + count

    def best(table: dict[str, int]) -> list[tuple[str, int]]:
        return sorted(table.items(), key=lambda kv: -kv[1])[:top]

    return {
        "samples": total,
        "by_process_kind": best(by_kind),
        "by_module": best(modules),
        "by_function_self": best(leaves),
        "by_project_function_inclusive": best(through),
    }


def _print_breakdown(runs: list[dict[str, Any]], console: Console) -> dict[str, Any]:
    """Tables: CPU by class and Docker operations, serial and parallel side by side."""
    labels = [("serial" if r["workers"] == 0 else f"-n {r['workers']}") for r in runs]
    backend = runs[0].get("backend", "docker")
    cpu_table = Table(title=f"{backend} backend, integration suite: CPU seconds by process class")
    cpu_table.add_column("class")
    for label in labels:
        cpu_table.add_column(label, justify="right")
    if len(runs) > 1:
        cpu_table.add_column(f"{labels[-1]} - {labels[0]}", justify="right")
    classes = [k for k in cpu_breakdown.ORDER if any(r["cpu"]["classes_s"].get(k) for r in runs)]

    def cells(values: list[float]) -> list[str]:
        out = [f"{v:.2f}" for v in values]
        if len(values) > 1:
            out.append(f"{values[-1] - values[0]:+.2f}")
        return out

    for klass in classes:
        cpu_table.add_row(klass, *cells([r["cpu"]["classes_s"].get(klass, 0.0) for r in runs]))
    cpu_table.add_row(
        "= engine (dockerd .. docker-proxy)", *cells([r["engine_cpu_s"] for r in runs])
    )
    cpu_table.add_row(
        "= this run (pytest tree, its containers, engine)",
        *cells([r["this_run_cpu_s"] for r in runs]),
    )
    cpu_table.add_row("= machine busy (/proc/stat)", *cells([r["cpu"]["busy_cpu_s"] for r in runs]))
    cpu_table.add_row("wall s", *cells([r["wall_s"] for r in runs]))
    cpu_table.add_row("containers created", *cells([float(r["containers_created"]) for r in runs]))
    console.print(cpu_table)
    for run, label in zip(runs, labels, strict=True):
        load = run["cpu"]["load_before"]
        console.print(
            f"{label}: run {run['run_id']}, {run['passed']} passed, {run['failed']} failed, "
            f"exit {run['exit_code']}; load average before {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
            f"sampler {run['cpu']['sweeps']} sweeps, {run['cpu']['sweep_cost_s']:.2f} s CPU",
            markup=False,
            highlight=False,
        )
    inside = Table(title="inside the containers, by program (CPU s, from per-process samples)")
    inside.add_column("program")
    for label in labels:
        inside.add_column(label, justify="right")
    programs = sorted(
        {k for r in runs for k in r["cpu"]["container_programs_s"]},
        key=lambda k: -runs[-1]["cpu"]["container_programs_s"].get(k, 0.0),
    )
    for program in programs:
        inside.add_row(
            program, *[f"{r['cpu']['container_programs_s'].get(program, 0.0):.2f}" for r in runs]
        )
    console.print(inside)
    ops_table = Table(title="Docker engine requests of the pytest processes (client-side time)")
    ops_table.add_column("operation")
    for label in labels:
        ops_table.add_column(f"{label} count", justify="right")
        ops_table.add_column(f"{label} total s", justify="right")
        ops_table.add_column(f"{label} mean ms", justify="right")
    names = sorted(
        {op for r in runs for op in r["docker_ops"]["ops"]},
        key=lambda op: -runs[-1]["docker_ops"]["ops"].get(op, {}).get("count", 0),
    )
    for op in names:
        row = []
        for run in runs:
            fig = run["docker_ops"]["ops"].get(op)
            if fig is None:
                row += ["0", "-", "-"]
            else:
                mean = 1000 * fig["total_s"] / fig["count"]
                row += [str(fig["count"]), f"{fig['total_s']:.2f}", f"{mean:.1f}"]
        ops_table.add_row(op, *row)
    totals = []
    for run in runs:
        count = sum(f["count"] for f in run["docker_ops"]["ops"].values())
        total = sum(f["total_s"] for f in run["docker_ops"]["ops"].values())
        totals += [str(count), f"{total:.2f}", "-"]
    ops_table.add_row("all requests", *totals)
    console.print(ops_table)
    callers = Table(title=f"who sends the requests ({labels[-1]}, top 25 by count)")
    callers.add_column("operation | caller < caller's caller < ...")
    callers.add_column("count", justify="right")
    callers.add_column("total s", justify="right")
    for key, fig in list(runs[-1]["docker_ops"]["callers"].items())[:25]:
        callers.add_row(key, str(fig["count"]), f"{fig['total_s']:.2f}")
    console.print(callers)
    summary: dict[str, Any] = {}
    serial = next((r for r in runs if r["workers"] == 0), None)
    for run, label in zip(runs, labels, strict=True):
        if serial is None or run is serial:
            continue
        ratio_ours = run["this_run_cpu_s"] / serial["this_run_cpu_s"]
        ratio_busy = run["cpu"]["busy_cpu_s"] / serial["cpu"]["busy_cpu_s"]
        extra = run["workers"] - 1
        per_worker = (run["this_run_cpu_s"] - serial["this_run_cpu_s"]) / extra if extra else 0.0
        summary[label] = {
            "cpu_ratio_this_run": round(ratio_ours, 3),
            "cpu_ratio_machine_busy": round(ratio_busy, 3),
            "extra_cpu_per_extra_worker_s": round(per_worker, 3),
            "wall_ratio": round(run["wall_s"] / serial["wall_s"], 3),
        }
        ok = "yes" if ratio_ours <= TARGET_BUSY_RATIO else "NO"
        console.print(
            f"{label}: this run's CPU {run['this_run_cpu_s']:.1f} s vs serial "
            f"{serial['this_run_cpu_s']:.1f} s = {ratio_ours:.2f} x (target <= "
            f"{TARGET_BUSY_RATIO} x: {ok}); machine busy {ratio_busy:.2f} x; "
            f"{per_worker:+.2f} s CPU per extra worker; wall {run['wall_s']:.1f} s = "
            f"{run['wall_s'] / serial['wall_s']:.2f} of serial (wall figures: see nox -s bench)",
            markup=False,
            highlight=False,
        )
    return summary


# --- the engine's own cost per object: the floor under any library ----------------------

ENGINE_VARIANTS = {
    "network create + remove": {},
    "broker as the toolkit runs it (worker network, published port, init)": {
        "network": True,
        "port": True,
        "init": True,
    },
    "same without init": {"network": True, "port": True, "init": False},
    "same without published port": {"network": True, "port": False, "init": True},
    "default bridge, no port, no init": {"network": False, "port": False, "init": False},
    "no network (none), no init": {"network": "none", "port": False, "init": False},
    "exec of a process in a running container": {"exec": True},
}


def _engine_lifecycle(
    client: Any, variant: dict[str, Any], name: str, labels: dict[str, str], network: str
) -> tuple[str, float]:
    """One object through its life on the engine: (container id or '', seconds to running).

    The seconds run from ``docker create`` to mosquitto's ``running`` line, polled
    every 5 ms (the network create, for the network; the exec, for an exec).
    """
    started = time.perf_counter()
    if not variant:
        net = client.networks.create(name, driver="bridge", labels=labels)
        ready = time.perf_counter() - started
        net.remove()
        return "", ready
    if variant.get("exec"):
        return "", 0.0
    options: dict[str, Any] = {"labels": labels, "detach": True, "init": variant["init"]}
    if variant["network"] is True:
        options["network"] = network
    elif variant["network"] == "none":
        options["network_mode"] = "none"
    if variant["port"]:
        options["ports"] = {"1883/tcp": ("127.0.0.1", None)}
    container = client.containers.create(BROKER_IMAGE, name=name, **options)
    try:
        container.start()
        deadline = time.monotonic() + 30
        while b" running" not in container.logs(tail=5) and time.monotonic() < deadline:
            time.sleep(0.005)
        ready = time.perf_counter() - started
        container.stop(timeout=3)
    finally:
        container.remove(force=True)
    return str(container.id), ready


def _engine_costs(blocks: int, per_block: int, console: Console) -> dict[str, Any]:
    """Engine CPU (dockerd .. runc) per object lifecycle, each variant sampled apart, interleaved.

    Every container runs mosquitto from the project's image: create, start,
    its "running" line, stop (SIGTERM, mosquitto exits at once), remove.  The
    shims and runc calls are this benchmark's (by container id); dockerd,
    containerd and their children are shared with whatever else runs.
    """
    from docker import from_env

    from parallel_isolation import naming, ownership

    client = from_env(timeout=120)
    identity = Identity.resolve(run_id=new_run_id(), worker_id="master")
    labels = ownership.labels_for(identity, "task")
    network = naming.resource_name("bench-engine-net", identity)
    net = client.networks.create(
        network, driver="bridge", labels=ownership.labels_for(identity, "network")
    )
    host = client.containers.run(
        BROKER_IMAGE,
        name=naming.resource_name("bench-engine-host", identity),
        detach=True,
        labels=labels,
        network=network,
    )
    figures: dict[str, list[float]] = {name: [] for name in ENGINE_VARIANTS}
    containers_cpu: dict[str, list[float]] = {name: [] for name in ENGINE_VARIANTS}
    by_class: dict[str, dict[str, list[float]]] = {}
    latency: dict[str, list[float]] = {name: [] for name in ENGINE_VARIANTS}
    serial = 0
    try:
        for block in range(blocks):
            names = list(ENGINE_VARIANTS)
            shift = block % len(names)
            for variant_name in names[shift:] + names[:shift]:
                variant = ENGINE_VARIANTS[variant_name]
                with console.status(f"engine cost, block {block + 1}/{blocks}: {variant_name}"):
                    sampler = cpu_breakdown.ProcSampler(interval=0.25, shim_interval=0.02).start()
                    ids = []
                    for _ in range(per_block):
                        serial += 1
                        name = naming.resource_name(f"bench-engine-{serial}", identity)
                        if variant.get("exec"):
                            began = time.perf_counter()
                            host.exec_run(["true"])
                            latency[variant_name].append(time.perf_counter() - began)
                        else:
                            cid, ready = _engine_lifecycle(client, variant, name, labels, network)
                            ids.append(cid)
                            latency[variant_name].append(ready)
                    time.sleep(0.3)  # let the last shim exit inside the window
                    sampler.stop()
                roles = {cid: "task" for cid in ids if cid}
                roles[str(host.id)] = "task"
                report = sampler.report(roles)
                engine = sum(report["classes_s"].get(k, 0.0) for k in ENGINE_CLASSES)
                figures[variant_name].append(engine / per_block)
                for klass in ENGINE_CLASSES:
                    split = by_class.setdefault(variant_name, {}).setdefault(klass, [])
                    split.append(report["classes_s"].get(klass, 0.0) / per_block)
                containers_cpu[variant_name].append(
                    report["classes_s"].get("task containers", 0.0) / per_block
                )
    finally:
        host.remove(force=True)
        net.remove()
        client.close()
    return {
        name: {
            "engine_cpu_s_median": round(statistics.median(values), 4),
            "engine_cpu_s_all": [round(v, 4) for v in values],
            "container_cpu_s_median": round(statistics.median(containers_cpu[name]), 4),
            "create_to_running_s_median": round(statistics.median(latency[name]), 4),
            "engine_by_class_s_median": {
                klass: round(statistics.median(series), 4)
                for klass, series in by_class.get(name, {}).items()
            },
        }
        for name, values in figures.items()
    }


def _print_engine(costs: dict[str, Any], console: Console) -> None:
    table = Table(title="the engine's CPU per object lifecycle (median of blocks, this run)")
    table.add_column("object")
    table.add_column("engine CPU s", justify="right")
    table.add_column("inside the container s", justify="right")
    table.add_column("create to running s", justify="right")
    short = {
        "dockerd": "dockerd",
        "dockerd children (iptables, proxy, netns)": "children",
        "containerd": "containerd",
        "containerd-shim": "shim",
        "runc (+ hooks)": "runc",
        "docker-proxy": "proxy",
    }
    table.add_column(" / ".join(short.values()), justify="right")
    for name, fig in costs.items():
        split = fig["engine_by_class_s_median"]
        table.add_row(
            name,
            f"{fig['engine_cpu_s_median']:.3f}",
            f"{fig['container_cpu_s_median']:.3f}",
            f"{fig['create_to_running_s_median']:.3f}",
            " / ".join(f"{split.get(k, 0.0):.2f}" for k in short),
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="broker starts to time")
    parser.add_argument("--stack-runs", type=int, default=5, help="single-worker stacks to time")
    parser.add_argument("--workers", type=int, default=12, help="concurrent worker processes")
    parser.add_argument(
        "--slots", default="8,0", help="comma list of Docker API slot counts to compare (0 = off)"
    )
    parser.add_argument(
        "--breakdown-workers",
        default="0,12",
        help="comma list of -n values of the sampled suite runs (0 = serial; empty = none)",
    )
    parser.add_argument(
        "--sample-interval", type=float, default=0.5, help="seconds between /proc sweeps"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="also run the suite at the last --breakdown-workers under py-spy; output here",
    )
    parser.add_argument(
        "--only",
        choices=("all", "micro", "breakdown", "engine"),
        default="all",
        help=(
            "micro: broker, stack and concurrent figures; breakdown: the sampled suite runs; "
            "engine: the engine's CPU per network, container and exec"
        ),
    )
    parser.add_argument(
        "--engine-blocks", type=int, default=3, help="interleaved blocks of the engine figures"
    )
    parser.add_argument(
        "--engine-per-block", type=int, default=4, help="lifecycles per variant and block"
    )
    parser.add_argument(
        "--backend",
        choices=("docker", "process"),
        default="docker",
        help="the backend of the sampled suite runs (process: the default backend's floor)",
    )
    parser.add_argument("--out", type=Path, default=Path(".isolation/bench/docker.json"))
    args = parser.parse_args(argv)
    console = Console(width=180)
    problem = engine_problem()
    if problem is not None:
        console.print(f"no Docker engine: {problem}", markup=False)
        return 2
    results: dict[str, Any] = {"runs": args.runs, "stack_runs": args.stack_runs}
    failed = False
    if args.only in ("all", "micro"):
        failed |= _micro(args, results, console)
    if args.only in ("all", "engine"):
        results["engine"] = _engine_costs(args.engine_blocks, args.engine_per_block, console)
        _print_engine(results["engine"], console)
    if args.only in ("all", "breakdown"):
        counts = [int(raw) for raw in args.breakdown_workers.split(",") if raw.strip()]
        with tempfile.TemporaryDirectory(prefix="bench-docker-suite-") as tmp:
            runs = []
            for workers in counts:
                with console.status(f"{args.backend} backend suite, -n {workers}, sampled"):
                    runs.append(
                        _suite_run(
                            workers,
                            Path(tmp),
                            args.sample_interval,
                            console,
                            backend=args.backend,
                        )
                    )
            results["breakdown"] = runs
            if runs:
                results["breakdown_summary"] = _print_breakdown(runs, console)
                failed |= any(r["exit_code"] != 0 for r in runs)
            if args.profile is not None and counts:
                with console.status(f"{args.backend} backend suite, -n {counts[-1]}, py-spy"):
                    profile = _profile_run(
                        counts[-1], Path(tmp), args.profile, console, args.backend
                    )
                results["profile"] = profile
                _print_profile(profile, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    console.print(f"written {args.out}", markup=False)
    return 1 if failed else 0


def _print_profile(profile: dict[str, Any], console: Console) -> None:
    if "error" in profile:
        console.print(f"profile: {profile['error']}", markup=False)
        return
    total = profile["samples"]
    rate = profile["rate_hz"]
    console.print(
        f"py-spy: {total} on-CPU samples at {rate} Hz (~{total / rate:.1f} s of Python CPU), "
        f"wall {profile['wall_s']:.1f} s under the profiler; raw stacks in {profile['raw']}",
        markup=False,
    )
    for key, title in (
        ("by_process_kind", "process"),
        ("by_module", "module (innermost frame)"),
        ("by_function_self", "function (self)"),
        ("by_project_function_inclusive", "project function (inclusive)"),
    ):
        table = Table(title=f"Python on-CPU samples by {title}")
        table.add_column(title)
        table.add_column("samples", justify="right")
        table.add_column("share", justify="right")
        for name, count in profile[key]:
            table.add_row(name, str(count), f"{100 * count / max(total, 1):.1f} %")
        console.print(table)


def _micro(args: argparse.Namespace, results: dict[str, Any], console: Console) -> bool:
    """Broker start-to-ready, one worker's stack, N stacks at once; True when a target failed."""
    slot_counts = [int(raw) for raw in args.slots.split(",") if raw.strip()]
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
    return failed


if __name__ == "__main__":
    sys.exit(main())
