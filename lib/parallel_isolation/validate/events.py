"""Event scan: leaks per test, broker crashes, port and name conflicts, dead workers, cross-talk."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from parallel_isolation.validate.base import ScanEnv, ScanResult
from parallel_isolation.validate.model import Finding, Severity
from parallel_isolation.validate.rundata import Record, RunData, WorkerData

__all__ = ["scan_crosstalk", "scan_events"]

SPY_LAG_S = 0.25
"""How late the spy may see a message after it was published (broker send delays)."""
CLEANUP_HINT = "run `parallel-isolation cleanup-orphans` to remove what a dead owner left"

# kind -> (severity, code, message template, hint); fields of the event fill the template.
EVENT_RULES: dict[str, tuple[Severity, str, str, str | None]] = {
    "broker_crashed": (
        Severity.ERROR,
        "broker-crashed",
        "the worker's broker crashed (port {port})",
        "read the broker log; the test running at the time is named",
    ),
    "port_exhausted": (
        Severity.ERROR,
        "port-exhausted",
        "no free port for {purpose!r} after {tried} tries",
        "free ports or choose another --isolation-port-base",
    ),
    "name_conflict": (
        Severity.ERROR,
        "name-conflict",
        "Docker name conflict on {name!r} with {owner}: {action}",
        "names must come from ctx.container_name()/network_name(); an older object holds it",
    ),
    "lock_timeout": (
        Severity.WARNING,
        "lock-timeout",
        "waited {waited_s} s for exclusive resource {resource!r} and gave up",
        None,
    ),
    "spy_failed": (
        Severity.WARNING,
        "spy-failed",
        "cross-talk spy could not start on port {port}: {error} (cross-talk on this worker unchecked)",
        None,
    ),
    "port_retry": (
        Severity.INFO,
        "port-retry",
        "port {port} was taken while starting {purpose!r}; retried on another port",
        None,
    ),
    "port_in_use": (
        Severity.INFO,
        "port-in-use",
        "port {port} skipped: in use by {occupant}",
        None,
    ),
    "port_conflict": (Severity.INFO, "port-conflict", "port {port} quarantined: {reason}", None),
    "port_reclaimed": (
        Severity.INFO,
        "port-reclaimed",
        "port {port} reclaimed from {previous}",
        None,
    ),
    "port_fallback_block": (
        Severity.INFO,
        "port-fallback",
        "port {port} for {purpose!r} came from another worker's block",
        None,
    ),
}

LEAK_TEXT = {
    "thread": "thread {name!r} still alive after teardown",
    "process": "child process {name!r} (pid {pid}) still running after teardown",
    "listening_socket": "socket listening on port {port} still open after teardown",
}


class _Default(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _format(template: str, data: dict[str, Any]) -> str:
    return template.format_map(_Default(data))


def _leak(worker: WorkerData, event: Record) -> Finding:
    what = str(event.get("what", "resource"))
    text = _format(LEAK_TEXT.get(what, "{what} {name!r} still alive after teardown"), event.data)
    hint = {
        "thread": "stop the service/client the test started (a timer or network thread)",
        "process": "stop the process at teardown (ctx.add_cleanup or the services runner)",
        "listening_socket": "close the socket at teardown; take ports from ctx.port()",
    }.get(what)
    return Finding(
        Severity.ERROR,
        f"leak.{what}",
        "leaks",
        text,
        worker=worker.worker_id,
        test=str(event.get("test")) if event.get("test") else None,
        file=event.file,
        line=event.line,
        ts=event.ts,
        hint=hint,
    )


def _dead_worker(run: RunData, worker: WorkerData) -> Finding | None:
    if worker.finished or worker.owner is None or worker.alive():
        return None
    crashed = [span.test for span in worker.spans if span.outcome == "crashed"]
    during = f" while running {crashed[-1]}" if crashed else ""
    reaped = run.reaped()
    message = f"worker {worker.worker_id} (pid {worker.owner.pid}) died{during}"
    if reaped:
        return Finding(
            Severity.INFO,
            "worker-died",
            "events",
            message + f"; cleanup-orphans reaped {len(reaped)} leftover(s) of this run afterwards",
            worker=worker.worker_id,
            test=crashed[-1] if crashed else None,
            ts=worker.last_ts(),
        )
    return Finding(
        Severity.WARNING,
        "worker-died",
        "events",
        message + "; what it held is reported by the docker and resource scans",
        worker=worker.worker_id,
        test=crashed[-1] if crashed else None,
        ts=worker.last_ts(),
        hint=CLEANUP_HINT,
    )


def scan_events(run: RunData, env: ScanEnv) -> ScanResult:
    """Findings from every worker's event log, plus the test timeline."""
    result = ScanResult()
    outcomes: Counter[str] = Counter()
    overheads: list[float] = []
    cpu_overheads: list[float] = []
    in_progress = []
    for worker in run.workers.values():
        for event in worker.events:
            if event.kind == "test_finished":
                cpu = event.get("overhead_cpu_ms")
                if isinstance(cpu, int | float):
                    cpu_overheads.append(float(cpu))
                continue
            if event.kind == "leak":
                result.findings.append(_leak(worker, event))
                continue
            rule = EVENT_RULES.get(event.kind)
            if rule is None:
                continue
            severity, code, template, hint = rule
            if event.kind == "name_conflict" and event.get("action") != "refused":
                # A dead owner's object reclaimed, or our own leftover removed: handled.
                severity, hint = Severity.INFO, None
            test = event.get("test")
            result.findings.append(
                Finding(
                    severity,
                    f"event.{code}",
                    "events",
                    _format(template, event.data),
                    worker=worker.worker_id,
                    test=str(test) if test else worker.test_at(event.ts),
                    file=event.file,
                    line=event.line,
                    ts=event.ts,
                    hint=hint,
                )
            )
        dead = _dead_worker(run, worker)
        if dead is not None:
            result.findings.append(dead)
        if not worker.finished and worker.alive():
            in_progress.append(worker.worker_id)
        for span in worker.spans:
            outcomes[span.outcome] += 1
            if span.overhead_ms is not None:
                overheads.append(span.overhead_ms)
    if in_progress:
        result.problems.append(
            f"the run is still in progress (workers {', '.join(sorted(in_progress))} are alive); "
            "validate it after it finished"
        )
    if not run.recorded and not in_progress:
        result.findings.append(
            Finding(
                Severity.WARNING,
                "run-unrecorded",
                "events",
                "the run has no run.json: its controller did not finish (killed?)",
                hint=CLEANUP_HINT,
            )
        )
    result.section = {
        "tests": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "overhead_ms": _stats(overheads),
        "overhead_cpu_ms": _stats(cpu_overheads),
        "host": _host(run),
        "timeline": [span.as_dict() for span in run.spans()],
    }
    return result


def _host(run: RunData) -> dict[str, Any]:
    """The host's load average (1 min) at the workers' session starts and ends, and its CPUs."""
    loads: dict[str, list[float]] = {"session_start": [], "session_end": []}
    cpus = None
    for worker in run.workers.values():
        for snapshot in worker.snapshots:
            load = snapshot.get("load")
            phase = str(snapshot.get("phase"))
            if phase in loads and isinstance(load, list) and load:
                loads[phase].append(float(load[0]))
                cpus = snapshot.get("cpus") or cpus
    return {
        "load_start": max(loads["session_start"], default=None),
        "load_end": max(loads["session_end"], default=None),
        "cpus": cpus,
    }


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 3),
        "max": round(ordered[-1], 3),
    }


def scan_crosstalk(run: RunData, env: ScanEnv) -> ScanResult:
    """Messages the spies saw outside their worker's namespaces, grouped by topic."""
    result = ScanResult()
    workers_by_prefix = {f"test/{run.run_id}/{worker_id}/": worker_id for worker_id in run.workers}
    total = 0
    for worker in run.workers.values():
        groups: dict[str, list[Record]] = defaultdict(list)
        for record in worker.crosstalk:
            groups[str(record.get("topic"))].append(record)
        total += len(worker.crosstalk)
        for topic, records in sorted(groups.items()):
            first = records[0]
            near = [worker.test_near(r.ts, SPY_LAG_S) for r in records]
            tests = list(dict.fromkeys(t for t, _ in near if t is not None))
            maybe = list(dict.fromkeys(a for _, a in near if a is not None and a not in tests))
            owner = next(
                (w for prefix, w in workers_by_prefix.items() if topic.startswith(prefix)), None
            )
            origin = f" (namespace of worker {owner})" if owner else " (outside every namespace)"
            also = f"; during {len(tests)} tests" if len(tests) > 1 else ""
            if maybe:
                also += (
                    f" (seen just after {', '.join(maybe[:2])} ended: "
                    "the spy may have stamped it late)"
                )
            result.findings.append(
                Finding(
                    Severity.ERROR,
                    "crosstalk",
                    "crosstalk",
                    f"{len(records)} message(s) on {topic!r}{origin} reached worker "
                    f"{worker.worker_id}'s broker; first payload {str(first.get('payload'))[:60]!r}{also}",
                    worker=worker.worker_id,
                    test=tests[0] if tests else None,
                    also=maybe[0] if maybe else None,
                    file=first.file,
                    line=first.line,
                    ts=first.ts,
                    hint="publish and subscribe through the test's namespace "
                    "(mqtt_client / ctx.mqtt_client / TOPIC_PREFIX), never bare topics",
                )
            )
    spied = sum(1 for w in run.workers.values() if any(e.kind == "spy_started" for e in w.events))
    result.section = {"messages": total, "workers_spied": spied}
    return result
