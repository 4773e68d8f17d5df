"""Log scan: broker and service logs of every worker, and the failure texts of tests."""

from __future__ import annotations

from pathlib import Path

from parallel_isolation.validate.base import ScanEnv, ScanResult
from parallel_isolation.validate.model import Finding, Severity
from parallel_isolation.validate.patterns import (
    PATTERNS,
    TEST,
    LogPattern,
    classify_log,
    parse_log_stamp,
)
from parallel_isolation.validate.rundata import Record, RunData, WorkerData

__all__ = ["scan_logs"]

PORT_EVENTS = {"port_retry", "port_conflict", "port_in_use"}
PORT_WINDOW_S = 10.0
_MAX_PER_FILE_AND_CODE = 50


def _excused(pattern: LogPattern, worker: WorkerData, ts: float | None) -> bool:
    if pattern.excuse == "port-retried":
        return worker.events_near(PORT_EVENTS, ts, PORT_WINDOW_S)
    if pattern.excuse == "broker-down":
        return worker.broker_down_at(ts)
    return False


def _attribute(worker: WorkerData, ts: float | None, resolution: float) -> tuple[str | None, str]:
    """The test a log line belongs to, and a note when its timestamp is too coarse to be sure.

    A whole-second stamp means "some time in that second": the tests that
    overlap the second are candidates; the one overlapping most is named.
    """
    if ts is None:
        return None, ""
    if resolution < 0.01:
        return worker.test_at(ts), ""
    candidates = sorted(worker.tests_during(ts, ts + resolution), key=lambda c: -c[1])
    if not candidates:
        return None, ""
    if len(candidates) == 1:
        return candidates[0][0], ""
    others = ", ".join(test for test, _ in candidates[1:3])
    return candidates[0][0], f" (log stamped to {resolution:g} s; also running then: {others})"


def _match(line: str, source: str) -> tuple[LogPattern, str] | None:
    for pattern in PATTERNS:
        if source not in pattern.sources:
            continue
        found = pattern.regex.search(line)
        if found is not None:
            return pattern, line.strip()
    return None


def _traceback_summary(lines: list[str], index: int) -> str:
    """The exception line that closes the traceback starting at ``lines[index]``."""
    line = lines[index]
    if "\\n" in line:  # one-line form (newlines escaped by the services' formatter)
        parts = [p for p in line.split("\\n") if p.strip()]
        return parts[-1].strip().strip('"') if parts else line.strip()
    for follow in lines[index + 1 : index + 200]:
        if follow and not follow[0].isspace() and not follow.startswith("Traceback"):
            return follow.strip()
    return line.strip()


def _scan_file(run: RunData, worker: WorkerData, path: Path) -> list[Finding]:
    source = classify_log(path.name)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    relative = str(path.relative_to(run.path))
    findings: list[Finding] = []
    per_code: dict[str, int] = {}
    last_ts: float | None = None
    resolution = 0.0
    for number, line in enumerate(lines, start=1):
        stamp = parse_log_stamp(line)
        if stamp is not None:
            last_ts, resolution = stamp
        hit = _match(line, source)
        if hit is None:
            continue
        pattern, text = hit
        count = per_code.get(pattern.code, 0) + 1
        per_code[pattern.code] = count
        if count > _MAX_PER_FILE_AND_CODE:
            continue
        if pattern.code == "traceback":
            text = f"{text[:120]} ... {_traceback_summary(lines, number - 1)}"
        excused = _excused(pattern, worker, last_ts)
        severity = Severity.INFO if excused else pattern.severity
        message = f"{pattern.title}: {text[:300]}"
        if excused and pattern.excuse:
            message += f" (expected: {pattern.excuse})"
        test, note = _attribute(worker, last_ts, resolution)
        message += note
        findings.append(
            Finding(
                severity=severity,
                code=f"log.{pattern.code}",
                scanner="logs",
                message=message,
                worker=worker.worker_id,
                test=test,
                file=relative,
                line=number,
                ts=last_ts,
                hint=None if excused else pattern.hint,
            )
        )
    for code, count in per_code.items():
        if count > _MAX_PER_FILE_AND_CODE:
            findings.append(
                Finding(
                    Severity.INFO,
                    f"log.{code}",
                    "logs",
                    f"{count - _MAX_PER_FILE_AND_CODE} more {code!r} lines not listed",
                    worker=worker.worker_id,
                    file=relative,
                )
            )
    return findings


def _scan_failure(worker: WorkerData, event: Record) -> list[Finding]:
    text = str(event.get("failure") or "")
    if not text:
        return []
    findings = []
    seen: set[str] = set()
    for line in text.splitlines():
        hit = _match(line, TEST)
        if hit is None or hit[0].code in seen:
            continue
        pattern, matched = hit
        seen.add(pattern.code)
        findings.append(  # a test that failed on it is never excused
            Finding(
                severity=pattern.severity,
                code=f"test.{pattern.code}",
                scanner="logs",
                message=f"{pattern.title} made the test fail: {matched[:300]}",
                worker=worker.worker_id,
                test=str(event.get("test")),
                file=event.file,
                line=event.line,
                ts=event.ts,
                hint=pattern.hint,
            )
        )
    return findings


def scan_logs(run: RunData, env: ScanEnv) -> ScanResult:
    """Match every log line (and every test failure text) against the pattern table."""
    result = ScanResult()
    files = 0
    for worker in run.workers.values():
        for path in worker.logs:
            files += 1
            result.findings.extend(_scan_file(run, worker, path))
        for event in worker.events:
            if event.kind == "test_finished" and event.get("failure"):
                result.findings.extend(_scan_failure(worker, event))
    result.section = {
        "files": files,
        "patterns": [
            {
                "code": p.code,
                "title": p.title,
                "regex": p.regex.pattern,
                "severity": p.severity.label,
                "sources": sorted(p.sources),
                "excuse": p.excuse,
            }
            for p in PATTERNS
        ],
    }
    return result
