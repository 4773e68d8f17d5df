"""A/B of two versions of the library on the docker backend, interleaved in one run.

Run: ``python benchmarks/bench_ab.py --a main [--b WORKTREE] [--workers 0,12] [--rounds 2]``
(or ``nox -s bench-ab -- --a main``).  ``--a``/``--b`` name a git revision
(its ``lib/`` is exported to a temporary directory and put first on
``PYTHONPATH``) or ``WORKTREE`` (the library of this checkout, as installed).
The tests, the images and the suite's options are this checkout's for both.

Each round runs every (version, -n) pair once, A and B alternating (the order
flips every round), each sampled as ``bench_docker``'s breakdown does: wall,
this run's CPU (the pytest tree, its containers, the engine), and the parts
other runs on the host cannot inflate (the pytest tree, this run's containers,
the shims and runc calls of this run's containers), the engine's CPU and the
machine's busy CPU (both shared), and the number of engine requests.  Printed: the
median of each figure per version and the ratio B / A, with the load average.
Absolute figures move with the machine's load; the ratios, taken from runs
that alternate within minutes, much less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from bench_docker import _suite_run
from bench_suite import ROOT
from rich.console import Console
from rich.table import Table

WORKTREE = "WORKTREE"


def _export(revision: str, into: Path) -> Path | None:
    """``lib/`` of ``revision`` in ``into``; None for the worktree itself."""
    if revision == WORKTREE:
        return None
    archive = into / f"{revision.replace('/', '_')}.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(archive), revision, "lib"],
        cwd=ROOT,
        check=True,
    )
    target = into / revision.replace("/", "_")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target / "lib"


PYTEST_CLASSES = ("pytest controller", "pytest workers", "zygote + launchers")
CONTAINER_CLASSES = ("broker containers", "service containers", "task containers")
# Attributed to this run's containers by id: not inflated by other runs on the host
# (dockerd, containerd and their children are shared, so their figures are).
OWN_ENGINE_CLASSES = ("containerd-shim", "runc (+ hooks)")


def _figures(run: dict[str, Any]) -> dict[str, float]:
    ops = run["docker_ops"]["ops"]
    classes = run["cpu"]["classes_s"]
    return {
        "wall_s": run["wall_s"],
        "this_run_cpu_s": run["this_run_cpu_s"],
        "pytest_cpu_s": sum(classes.get(k, 0.0) for k in PYTEST_CLASSES),
        "containers_cpu_s": sum(classes.get(k, 0.0) for k in CONTAINER_CLASSES),
        "shim_runc_cpu_s": sum(classes.get(k, 0.0) for k in OWN_ENGINE_CLASSES),
        "engine_cpu_s": run["engine_cpu_s"],
        "busy_cpu_s": run["cpu"]["busy_cpu_s"],
        "engine_requests": float(sum(f["count"] for f in ops.values())),
        "containers": float(run["containers_created"]),
        "failed": float(run["failed"] + (run["exit_code"] != 0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--a", default="main", help="git revision, or WORKTREE")
    parser.add_argument("--b", default=WORKTREE, help="git revision, or WORKTREE")
    parser.add_argument("--workers", default="0,12", help="comma list of -n values (0 = serial)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sample-interval", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path(".isolation/bench/ab.json"))
    args = parser.parse_args(argv)
    console = Console(width=160)
    counts = [int(raw) for raw in args.workers.split(",") if raw.strip()]
    results: dict[str, dict[int, list[dict[str, float]]]] = {"A": {}, "B": {}}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        root = Path(tmp)
        libraries = {"A": _export(args.a, root), "B": _export(args.b, root)}
        for round_index in range(args.rounds):
            order = ["A", "B"] if round_index % 2 == 0 else ["B", "A"]
            for workers in counts:
                for version in order:
                    label = f"round {round_index + 1}/{args.rounds}: {version} -n {workers}"
                    with console.status(label):
                        run = _suite_run(
                            workers,
                            root,
                            args.sample_interval,
                            console,
                            library=libraries[version],
                        )
                    figures = _figures(run)
                    results[version].setdefault(workers, []).append(figures)
                    console.print(
                        f"{label}: wall {figures['wall_s']:.1f} s, CPU {figures['this_run_cpu_s']:.1f} s, "
                        f"{figures['engine_requests']:.0f} requests, failed {figures['failed']:.0f}",
                        markup=False,
                    )
    summary = _report(results, counts, args, console)
    load = [round(v, 2) for v in load_before]
    console.print(f"load average before {load}, after {[round(v, 2) for v in os.getloadavg()]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"a": args.a, "b": args.b, "runs": results, "summary": summary, "load_before": load}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"written {args.out}", markup=False)
    failed = any(f["failed"] for runs in results.values() for rs in runs.values() for f in rs)
    return 1 if failed else 0


def _report(
    results: dict[str, dict[int, list[dict[str, float]]]],
    counts: list[int],
    args: argparse.Namespace,
    console: Console,
) -> dict[str, Any]:
    table = Table(title=f"A = {args.a}, B = {args.b}: medians of {args.rounds} interleaved rounds")
    for column in ("figure", *[f"{v} -n {n}" for n in counts for v in ("A", "B")], "B / A"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    summary: dict[str, Any] = {}
    keys = (
        "wall_s",
        "this_run_cpu_s",
        "pytest_cpu_s",
        "containers_cpu_s",
        "shim_runc_cpu_s",
        "engine_cpu_s",
        "busy_cpu_s",
        "engine_requests",
    )
    for key in keys:
        row = []
        ratios = []
        for workers in counts:
            a = statistics.median(f[key] for f in results["A"][workers])
            b = statistics.median(f[key] for f in results["B"][workers])
            row += [f"{a:.1f}", f"{b:.1f}"]
            ratios.append(f"-n {workers}: {b / a:.2f}" if a else "-")
            summary.setdefault(key, {})[workers] = {
                "a": a,
                "b": b,
                "b_over_a": b / a if a else None,
            }
        table.add_row(key, *row, "; ".join(ratios))
    if 0 in counts:
        for workers in counts:
            if workers == 0:
                continue
            for version in ("A", "B"):
                serial = results[version][0]
                parallel = results[version][workers]
                wall = statistics.median(f["wall_s"] for f in parallel) / statistics.median(
                    f["wall_s"] for f in serial
                )
                cpu = statistics.median(f["this_run_cpu_s"] for f in parallel) / statistics.median(
                    f["this_run_cpu_s"] for f in serial
                )
                summary.setdefault("vs_serial", {}).setdefault(version, {})[workers] = {
                    "wall": wall,
                    "cpu": cpu,
                }
                table.add_row(
                    f"{version}: -n {workers} / serial",
                    *[""] * (2 * len(counts)),
                    f"wall {wall:.2f}, CPU {cpu:.2f}",
                )
    console.print(table)
    return summary


if __name__ == "__main__":
    sys.exit(main())
