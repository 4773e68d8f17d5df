"""Resource scan: snapshot diffs per worker and for the run, and what the run left on the host."""

from __future__ import annotations

from collections import Counter
from typing import Any

from parallel_isolation.host.ports import read_reservations
from parallel_isolation.validate.base import ScanEnv, ScanResult
from parallel_isolation.validate.discover import (
    find_marked_processes,
    find_owned_dirs,
    owner_alive,
)
from parallel_isolation.validate.events import CLEANUP_HINT
from parallel_isolation.validate.model import Finding, Severity
from parallel_isolation.validate.rundata import Record, RunData, WorkerData

__all__ = ["FD_GROWTH_LIMIT", "METRICS", "scan_resources"]

FD_GROWTH_LIMIT = 10
"""More open file descriptors at session end than at start by this many is a warning."""

METRICS = ("rss", "threads", "py_threads", "fds", "sockets", "children")


def _first(worker: WorkerData, phase: str) -> Record | None:
    return next((s for s in worker.snapshots if s.get("phase") == phase), None)


def _last(worker: WorkerData, phase: str) -> Record | None:
    return next((s for s in reversed(worker.snapshots) if s.get("phase") == phase), None)


def _metric(record: Record | None, key: str) -> int | None:
    if record is None:
        return None
    value = record.get(key)
    if isinstance(value, list):
        return len(value)
    return int(value) if isinstance(value, int | float) else None


def _diff_worker(worker: WorkerData) -> tuple[dict[str, Any], list[Finding]]:
    start = _first(worker, "session_start")
    end = _last(worker, "session_end")
    summary: dict[str, Any] = {
        "tests": len(worker.spans),
        "finished": worker.finished,
        "start": {key: _metric(start, key) for key in METRICS},
        "end": {key: _metric(end, key) for key in METRICS},
    }
    summary["delta"] = {
        key: (
            None
            if summary["end"][key] is None or summary["start"][key] is None
            else summary["end"][key] - summary["start"][key]
        )
        for key in METRICS
    }
    summary["series"] = [
        {
            "ts": s.ts,
            "rss": s.get("rss"),
            "threads": s.get("threads"),
            "fds": s.get("fds"),
            "children": len(s.get("children") or []),
        }
        for s in worker.snapshots
    ]
    findings: list[Finding] = []
    if start is None or end is None:
        return summary, findings
    at_end = end

    def found(code: str, message: str, hint: str | None = None) -> Finding:
        return Finding(
            Severity.WARNING,
            f"resources.{code}",
            "resources",
            message,
            worker=worker.worker_id,
            file=at_end.file,
            line=at_end.line,
            ts=at_end.ts,
            hint=hint,
        )

    children = end.get("children") or []
    if children:
        findings.append(
            found(
                "children-at-end",
                f"worker {worker.worker_id} ended its session with {len(children)} child "
                f"process(es) still running: pids {children}",
                "every process a test starts must be stopped at its teardown",
            )
        )
    before = Counter(start.get("thread_names") or [])
    after = Counter(end.get("thread_names") or [])
    extra = sorted((after - before).elements())
    if extra:
        findings.append(
            found(
                "threads-at-end",
                f"worker {worker.worker_id} ended with {len(extra)} thread(s) more than it "
                f"started with: {', '.join(extra[:10])}",
                "see the per-test leak findings for the test that started them",
            )
        )
    new_ports = sorted(set(end.get("listening") or []) - set(start.get("listening") or []))
    if new_ports:
        findings.append(
            found(
                "listening-at-end",
                f"worker {worker.worker_id} still listened on port(s) {new_ports} at session end",
            )
        )
    fds = summary["delta"]["fds"]
    if isinstance(fds, int) and fds > FD_GROWTH_LIMIT:
        findings.append(
            found(
                "fd-growth",
                f"worker {worker.worker_id} ended with {fds} more open file descriptors than it started with",
                "files, sockets or pipes opened by tests and never closed",
            )
        )
    return summary, findings


def _owner_state(alive: bool | None) -> tuple[Severity, str]:
    if alive:
        return Severity.INFO, "its owner is alive (run in progress?)"
    if alive is None:
        return Severity.ERROR, "its owner is unknown"
    return Severity.ERROR, "its owner is dead"


def scan_resources(run: RunData, env: ScanEnv) -> ScanResult:
    """Snapshot diffs; leftover reservations, marked processes and temp dirs of the run."""
    result = ScanResult()
    workers: dict[str, Any] = {}
    totals: Counter[str] = Counter()
    for worker in run.workers.values():
        summary, findings = _diff_worker(worker)
        workers[worker.worker_id] = summary
        result.findings.extend(findings)
        for key, value in summary["delta"].items():
            if isinstance(value, int):
                totals[key] += value
    state = env.state_path(run)
    reservations = [r for r in read_reservations(state) if r.run_id == run.run_id]
    for reservation in reservations:
        severity, why = _owner_state(owner_alive(reservation.owner))
        result.findings.append(
            Finding(
                severity,
                "resources.port-reservation",
                "resources",
                f"port {reservation.port} ({reservation.purpose}) is still reserved by worker "
                f"{reservation.worker_id}; {why}",
                worker=reservation.worker_id,
                file=str(reservation.path),
                ts=reservation.created,
                hint=CLEANUP_HINT if severity >= Severity.WARNING else None,
            )
        )
    processes = find_marked_processes(run.run_id) if env.scan_processes else []
    for proc in processes:
        severity, why = _owner_state(owner_alive(proc.owner) if proc.owner else None)
        result.findings.append(
            Finding(
                severity,
                "resources.marked-process",
                "resources",
                f"{proc.describe()} is still running; {why}",
                worker=proc.worker or None,
                ts=proc.create_time,
                hint=CLEANUP_HINT if severity >= Severity.WARNING else None,
            )
        )
    dirs = find_owned_dirs(state, run.run_id)
    for owned in dirs:
        severity, why = _owner_state(owner_alive(owned.owner) if owned.owner else None)
        result.findings.append(
            Finding(
                severity,
                "resources.temp-dir",
                "resources",
                f"{owned.describe()} still exists; {why}",
                worker=owned.worker or None,
                file=str(owned.path),
                ts=owned.created,
                hint=CLEANUP_HINT if severity >= Severity.WARNING else None,
            )
        )
    result.section = {
        "workers": workers,
        "run_delta": dict(totals),
        "state_dir": str(state),
        "reservations_left": len(reservations),
        "marked_processes_left": len(processes),
        "temp_dirs_left": len(dirs),
        "processes_scanned": env.scan_processes,
    }
    return result
