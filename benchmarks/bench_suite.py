"""Suite benchmark: the migrated integration suite serial vs -n 4/12/24, per backend.

Run: ``python benchmarks/bench_suite.py`` (or ``nox -s bench``).  Everything is
measured here, in this one run, on this machine:

* wall time per worker count and backend, speed-up = serial / parallel;
* per-worker setup (session start -> the worker's first test), broker and
  service start-to-ready from the run's event log;
* the critical path: the longest test and the longest unit (from JUnit); a
  unit is one test, or all tests of one ``xdist_group`` (loadgroup runs a
  group on one worker, one test after the other, so no schedule can split it);
* the lower bound ``max(longest unit + worker setup, serial / workers)`` (and,
  as the same formula with the longest test, ``by test``);
* busy CPU of the whole machine during the run (``/proc/stat``, so the Docker
  engine's share counts too) and the floor it sets: busy CPU / CPUs;
* peak memory: the largest sum of RSS over the pytest process tree (workers,
  brokers, services; containers' memory lives in the engine and is sampled
  from ``docker stats`` only when asked, as it is slow).

Writes JSON and a PNG chart (speed-up vs workers, with the ideal line) and
prints a table with the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import uuid
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from parallel_isolation.artifacts import read_events

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / ".isolation" / "runs"
_DEV = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["parallel-isolation-dev"]
# Run the suite exactly as the nox sessions do.
BASE_ARGS = ["tests/integration", "-q", "-p", "no:cacheprovider", *_DEV["integration-args"]]
SUITE_ENV = {**os.environ, **_DEV["integration-env"]}
TARGET_RATIO = 0.35
TARGET_BOUND = 1.5
TARGET_MEMORY_GIB = 4.0


@dataclass
class Measurement:
    backend: str
    workers: int
    wall_s: float
    exit_code: int
    passed: int
    failed: int
    skipped: int
    longest_test_s: float
    longest_test: str
    longest_unit_s: float
    longest_unit: str
    busy_cpu_s: float | None
    peak_rss_mib: float
    worker_setup_median_s: float | None
    broker_ready_median_s: float | None
    service_ready_median_s: float | None
    run_id: str
    extra: dict[str, Any] = field(default_factory=dict)


class MemorySampler:
    """Peak of the summed RSS of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                total = root.memory_info().rss
                for child in root.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.Error:
                        continue
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self._stop.wait(self.interval)


@dataclass
class JunitFigures:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    longest_test_s: float = 0.0
    longest_test: str = ""
    longest_unit_s: float = 0.0
    longest_unit: str = ""


def _junit(path: Path) -> JunitFigures:
    """Outcomes, the longest test and the longest unit (a test, or an xdist_group's tests)."""
    tree = ET.parse(path)
    figures = JunitFigures()
    units: dict[str, float] = {}
    for case in tree.iter("testcase"):
        duration = float(case.get("time", 0.0))
        name = f"{case.get('classname')}::{case.get('name')}"
        if duration > figures.longest_test_s:
            figures.longest_test_s, figures.longest_test = duration, name
        # Under loadgroup xdist names grouped tests "<test>@<group>".
        test, _, group = str(case.get("name")).rpartition("@")
        unit = f"xdist_group {group}" if test and group else name
        units[unit] = units.get(unit, 0.0) + duration
        if case.find("skipped") is not None:
            figures.skipped += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            figures.failed += 1
        else:
            figures.passed += 1
    if units:
        figures.longest_unit, figures.longest_unit_s = max(units.items(), key=lambda kv: kv[1])
    return figures


def _busy_cpu_s() -> float | None:
    """Busy CPU seconds of the whole machine so far (all CPUs), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...
    ticks = [int(value) for value in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def _run_figures(run_id: str) -> tuple[float | None, float | None, float | None]:
    """Worker setup, broker ready and service ready medians from the run's artifacts."""
    run_dir = RUNS / run_id
    try:
        started = float(json.loads((run_dir / "run.json").read_text())["started"])
    except (OSError, ValueError, KeyError):
        return None, None, None
    setups, brokers, services = [], [], []
    for events_file in run_dir.glob("*/events.jsonl"):
        events = read_events(events_file)
        first = next((e["ts"] for e in events if e.get("kind") == "test_started"), None)
        if first is not None:
            setups.append(first - started)
        brokers += [
            e["ready_s"] for e in events if e.get("kind") == "broker_started" and e.get("ready_s")
        ]
        services += [e["ready_s"] for e in events if e.get("kind") == "service_online"]
    return _median(setups), _median(brokers), _median(services)


def measure(backend: str, workers: int, reports: Path, console: Console) -> Measurement:
    run_id = uuid.uuid4().hex[:8]
    junit = reports / f"suite-{backend}-n{workers}.xml"
    dist = ["-n", str(workers)]
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *BASE_ARGS,
        *dist,
        f"--testrunuid={run_id}",
        f"--junitxml={junit}",
        *(["--isolation-backend", backend] if backend != "default" else []),
    ]
    with console.status(f"{backend} backend, {'serial' if workers == 0 else f'-n {workers}'}"):
        started = time.perf_counter()
        cpu_before = _busy_cpu_s()
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=SUITE_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        with MemorySampler(proc.pid) as sampler:
            output, _ = proc.communicate()
        wall = time.perf_counter() - started
        cpu_after = _busy_cpu_s()
    junit_figures = _junit(junit)
    setup, broker, service = _run_figures(run_id)
    if proc.returncode != 0:
        console.print(output[-3000:])
    return Measurement(
        backend=backend,
        workers=workers,
        wall_s=round(wall, 3),
        exit_code=proc.returncode,
        passed=junit_figures.passed,
        failed=junit_figures.failed,
        skipped=junit_figures.skipped,
        longest_test_s=round(junit_figures.longest_test_s, 3),
        longest_test=junit_figures.longest_test,
        longest_unit_s=round(junit_figures.longest_unit_s, 3),
        longest_unit=junit_figures.longest_unit,
        busy_cpu_s=(
            round(cpu_after - cpu_before, 2)
            if cpu_before is not None and cpu_after is not None
            else None
        ),
        peak_rss_mib=round(sampler.peak / 2**20, 1),
        worker_setup_median_s=setup,
        broker_ready_median_s=broker,
        service_ready_median_s=service,
        run_id=run_id,
    )


def _chart(results: list[Measurement], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    counts = sorted({m.workers for m in results if m.workers})
    ax.plot(
        [1, *counts], [1, *counts], linestyle="--", color="grey", label="ideal (speed-up = workers)"
    )
    for backend in sorted({m.backend for m in results}):
        serial = next((m for m in results if m.backend == backend and m.workers == 0), None)
        if serial is None:
            continue
        points = [
            (m.workers, serial.wall_s / m.wall_s)
            for m in results
            if m.backend == backend and m.workers
        ]
        (line,) = ax.plot(
            [1] + [w for w, _ in points],
            [1.0] + [s for _, s in points],
            marker="o",
            label=f"{backend} backend",
        )
        # The most that run's busy CPU allowed: serial / (busy CPU / CPUs).
        ceiling = [
            (m.workers, serial.wall_s * (os.cpu_count() or 1) / m.busy_cpu_s)
            for m in results
            if m.backend == backend and m.workers and m.busy_cpu_s
        ]
        if ceiling:
            ax.plot(
                [w for w, _ in ceiling],
                [c for _, c in ceiling],
                linestyle=":",
                color=line.get_color(),
                label=f"{backend}: CPU ceiling (serial / busy-CPU floor)",
            )
    ax.set_xlabel("xdist workers (1 = serial)")
    ax.set_ylabel("speed-up over serial")
    ax.set_ylim(0, max(6.0, max(counts) / 2))
    ax.set_title(f"Integration suite on this machine ({os.cpu_count()} CPUs)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backends",
        default="default,docker",
        help="comma list: default, process, embedded, docker",
    )
    parser.add_argument(
        "--workers", default="0,4,12,24", help="comma list of -n values, 0 = serial"
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".isolation" / "bench" / "suite.json")
    args = parser.parse_args(argv)
    console = Console(width=200)
    reports = args.out.parent
    reports.mkdir(parents=True, exist_ok=True)
    results = [
        measure(backend, int(n), reports, console)
        for backend in args.backends.split(",")
        for n in args.workers.split(",")
    ]
    table = Table(title="integration suite, one run on this machine")
    for column in (
        "backend",
        "workers",
        "wall s",
        "vs serial",
        "longest test s",
        "longest unit s",
        "setup s",
        "bound s",
        "vs bound",
        "vs bound (test)",
        "busy CPU s",
        "vs CPU floor",
        "peak MiB",
        "result",
    ):
        table.add_column(column, justify="right")
    verdicts: list[str] = []
    summary: dict[str, Any] = {}
    for m in results:
        serial = next((s for s in results if s.backend == m.backend and s.workers == 0), None)
        ratio = bound = versus = by_test = None
        cpus = os.cpu_count() or 1
        floor = m.busy_cpu_s / cpus if m.busy_cpu_s else None
        if serial and m.workers:
            ratio = m.wall_s / serial.wall_s
            setup = m.worker_setup_median_s or 0.0
            bound = max(m.longest_unit_s + setup, serial.wall_s / m.workers)
            versus = m.wall_s / bound
            by_test = m.wall_s / max(m.longest_test_s + setup, serial.wall_s / m.workers)
            m.extra = {
                "ratio_vs_serial": round(ratio, 3),
                "lower_bound_s": round(bound, 3),
                "vs_lower_bound": round(versus, 3),
                "vs_lower_bound_by_longest_test": round(by_test, 3),
                "cpu_floor_s": round(floor, 3) if floor else None,
                "cpus": cpus,
            }
        table.add_row(
            m.backend,
            str(m.workers or "serial"),
            f"{m.wall_s:.1f}",
            f"{ratio:.2f}" if ratio else "-",
            f"{m.longest_test_s:.1f}",
            f"{m.longest_unit_s:.1f}",
            f"{m.worker_setup_median_s:.1f}" if m.worker_setup_median_s is not None else "-",
            f"{bound:.1f}" if bound else "-",
            f"{versus:.2f}" if versus else "-",
            f"{by_test:.2f}" if by_test else "-",
            f"{m.busy_cpu_s:.1f}" if m.busy_cpu_s is not None else "-",
            f"{m.wall_s / floor:.2f}" if floor else "-",
            f"{m.peak_rss_mib:.0f}",
            f"{m.passed} passed, {m.failed} failed"
            + ("" if m.exit_code == 0 else f" (exit {m.exit_code})"),
        )
        if m.exit_code != 0:
            verdicts.append(f"{m.backend} -n {m.workers}: exit {m.exit_code}")
        if m.workers == 12 and ratio is not None and versus is not None:
            summary[m.backend] = {
                "ratio": ratio,
                "vs_bound": versus,
                "by_test": by_test,
                "peak_gib": m.peak_rss_mib / 1024,
                "ratio_floor": (floor / serial.wall_s) if floor and serial else None,
            }
    console.print(table)
    for backend, figures in summary.items():
        floor_text = (
            f"; the machine's busy CPU alone allows no less than "
            f"{figures['ratio_floor']:.2f} of serial"
            if figures["ratio_floor"]
            else ""
        )
        console.print(
            f"{backend}: -n 12 / serial = {figures['ratio']:.2f} (target <= {TARGET_RATIO}), "
            f"-n 12 / lower bound = {figures['vs_bound']:.2f} (target <= {TARGET_BOUND}; "
            f"{figures['by_test']:.2f} with the longest test instead of the longest unit), "
            f"peak memory {figures['peak_gib']:.2f} GiB (target <= {TARGET_MEMORY_GIB})"
            f"{floor_text}"
        )
    args.out.write_text(json.dumps([asdict(m) for m in results], indent=2) + "\n")
    chart = args.out.with_suffix(".png")
    _chart(results, chart)
    console.print(f"written {args.out} and {chart}")
    if verdicts:
        console.print("[red]runs failed:[/red] " + "; ".join(verdicts))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
