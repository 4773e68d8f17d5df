"""Recorder benchmark: the per-test path every test pays (leak marks and snapshots).

Run: ``python benchmarks/bench_recorder.py [--tests N] [--out FILE]`` (or
``nox -s bench-recorder``).  The path is what the recorder does around each
test: a look before the setup and its snapshot, the leak check after the
teardown and its snapshot.  It is timed twice:

* ``quiet``: nothing else starts processes;
* ``churn``: a helper starts and ends short-lived processes all the time, as
  a Docker run does on the host (runtimes, shims, health checks): every one
  takes a pid, and a tracker that examines every pid allocated since its last
  look pays for each;
* ``churn+child``: the same with a long-lived child (as the process
  backend's broker is), so the tracker must look at what the host started.

Every figure is measured here, in this run, with the load average beside it;
the target is a median of at most 5 ms per test (``--target-ms``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from parallel_isolation.host.procfs import ChildTracker, last_pid
from parallel_isolation.recording.leaks import LeakTracker
from parallel_isolation.recording.snapshots import take_snapshot

CHURN = "while :; do /bin/true; done"
_SHARES_LOOK = "look" in inspect.signature(take_snapshot).parameters


def _per_test_path(tests: int, test_seconds: float) -> dict[str, Any]:
    tracker = ChildTracker()
    leaks = LeakTracker(tracker, grace=0.0)
    costs: list[float] = []
    pids_between: list[int] = []
    examined_before = getattr(tracker, "examined", None)
    for index in range(tests):
        first_pid = last_pid() or 0
        started = time.perf_counter()
        mark = leaks.begin()
        if _SHARES_LOOK:
            take_snapshot("before", test=f"t{index}", children=tracker, look=mark)
        else:
            take_snapshot("before", test=f"t{index}", children=tracker)
        paid = time.perf_counter() - started
        time.sleep(test_seconds)  # the test itself: the host allocates pids meanwhile
        resumed = time.perf_counter()
        found = leaks.end(mark)
        after = getattr(leaks, "after", None)
        if _SHARES_LOOK and after is not None:
            take_snapshot("after", test=f"t{index}", children=tracker, look=after)
        else:
            take_snapshot("after", test=f"t{index}", children=tracker)
        paid += time.perf_counter() - resumed
        assert found == [], found
        costs.append(paid * 1000)
        pids_between.append((last_pid() or 0) - first_pid)
    ordered = sorted(costs)
    examined = getattr(tracker, "examined", None)
    return {
        "tests": tests,
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 3),
        "max_ms": round(ordered[-1], 3),
        "pids_allocated_per_test": round(statistics.median(pids_between)),
        "stat_reads": None
        if examined is None or examined_before is None
        else examined - examined_before,
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=40, help="tests per condition [40]")
    parser.add_argument(
        "--test-seconds", type=float, default=0.5, help="how long each 'test' lasts [0.5]"
    )
    parser.add_argument("--target-ms", type=float, default=5.0, help="median target [5]")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"library": str(Path(inspect.getfile(take_snapshot)).parent.parent)}
    results["quiet"] = _per_test_path(args.tests, args.test_seconds)
    # The churn runs outside our process tree (its shell exits at once and the
    # loop is adopted by init), as a Docker run's processes are.
    launcher = subprocess.run(
        ["/bin/sh", "-c", f"( {CHURN} ) >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    churn = int(launcher.stdout.strip())
    try:
        time.sleep(0.2)
        results["churn"] = _per_test_path(args.tests, args.test_seconds)
        # A worker with a child (the process backend's broker) must look at
        # what the host started; one without (Docker backend) need not.
        child = subprocess.Popen(["/bin/sleep", "3600"])
        try:
            results["churn+child"] = _per_test_path(args.tests, args.test_seconds)
        finally:
            child.kill()
            child.wait(10)
    finally:
        os.kill(churn, signal.SIGKILL)
    for condition in ("quiet", "churn", "churn+child"):
        figures = results[condition]
        verdict = "within" if figures["median_ms"] <= args.target_ms else "OVER"
        load = ", ".join(f"{value:.1f}" for value in figures["load_average"])
        print(
            f"{condition:11}  per-test recorder path: median {figures['median_ms']:.2f} ms, "
            f"p95 {figures['p95_ms']:.2f} ms, max {figures['max_ms']:.2f} ms "
            f"({verdict} the {args.target_ms:g} ms target); "
            f"{figures['pids_allocated_per_test']} pids allocated per test on the host, "
            f"stat reads {figures['stat_reads']}; load average {load}"
        )
    results["target_ms"] = args.target_ms
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
