"""Evidence scan: what of the run could not be read is never "clean".

A line that is not a JSON object in a worker's events, snapshots or
cross-talk file, an unreadable ``run.json``, a worker the controller saw
record its session whose directory is missing, an event log missing beside
snapshots of tests: each is a *problem* naming the file and line, and the
verdict becomes "could not fully validate" (exit 2): whatever that evidence
held (a leak, cross-talk, a crash) cannot have been checked.

A killed worker leaves at most one partial *last* line (every writer writes
whole lines): that is said as such, info when the worker did not finish
(its death is reported elsewhere) and a warning when it did.
"""

from __future__ import annotations

from collections import defaultdict

from parallel_isolation.validate.base import ScanEnv, ScanResult
from parallel_isolation.validate.model import Finding, Severity
from parallel_isolation.validate.rundata import EvidenceIssue, RunData

__all__ = ["MAX_LINES_PER_FILE", "scan_evidence"]

MAX_LINES_PER_FILE = 3
"""Bad lines named per file; the rest are counted."""


def _partial(run: RunData, issue: EvidenceIssue) -> Finding:
    worker = run.workers.get(issue.worker or "")
    finished = worker is not None and worker.finished
    if finished:
        severity = Severity.WARNING
        why = "although the worker finished its session: a writer was killed or the file was cut"
    else:
        severity = Severity.INFO
        why = "the worker did not finish (killed): its writer died mid-line"
    return Finding(
        severity,
        "evidence.partial-line",
        "evidence",
        f"{issue.where}: partial last line ({why}); the lines before it were read: "
        f"{issue.detail!r}",
        worker=issue.worker,
        file=issue.file,
        line=issue.line,
    )


def scan_evidence(run: RunData, env: ScanEnv) -> ScanResult:
    """Problems for unreadable or missing evidence; findings for partial last lines."""
    result = ScanResult()
    garbage: dict[str, list[EvidenceIssue]] = defaultdict(list)
    for issue in run.issues:
        if issue.kind == "partial-line":
            result.findings.append(_partial(run, issue))
        elif issue.kind == "garbage":
            garbage[issue.file].append(issue)
        elif issue.kind == "crashed-unrecorded":
            result.findings.append(
                Finding(
                    Severity.WARNING,
                    "evidence.worker-unrecorded",
                    "evidence",
                    f"{issue.detail}: nothing of it can be checked",
                    worker=issue.worker,
                    hint="pytest reports the crash; run `invoke cleanup-orphans` for what it held",
                )
            )
        elif issue.kind == "unreadable":
            result.problems.append(f"could not read {issue.where}: {issue.detail}")
        else:
            result.problems.append(f"could not read {issue.file}: {issue.detail}")
    for file, issues in garbage.items():
        named = ", ".join(f"line {i.line} ({i.detail!r})" for i in issues[:MAX_LINES_PER_FILE])
        more = len(issues) - MAX_LINES_PER_FILE
        extra = f" and {more} more" if more > 0 else ""
        result.problems.append(
            f"could not read {file}: {len(issues)} line(s) are not JSON objects: {named}{extra}; "
            "what they held was not checked"
        )
    result.section = {
        "issues": [
            {"kind": i.kind, "file": i.file, "line": i.line, "detail": i.detail} for i in run.issues
        ]
    }
    return result
