"""The tests verdict of a run: outcomes, failed tests with their failure and logs, slowest tests.

Read from what the recorder wrote (``test_started`` / ``test_finished``
events with outcome, duration and failure excerpt) and the controller's
``run.json`` (pytest's exit status, start and end of the run).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from parallel_isolation.validate.model import FAILING_OUTCOMES, FailedTest, TestOutcomes
from parallel_isolation.validate.patterns import parse_log_stamp
from parallel_isolation.validate.rundata import RunData, TestSpan, WorkerData

__all__ = ["SLOWEST", "failure_summary", "summarize_tests"]

SLOWEST = 10
"""How many of the slowest tests the report lists."""
_STAMP_LINES = 20


def failure_summary(text: str) -> str:
    """The failure in one line: pytest's last ``E`` line, else the last non-empty line."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E ")]
    chosen = errors[-1] if errors else (lines[-1] if lines else "")
    return chosen[1:].strip() if chosen.startswith("E ") else chosen.strip()


def _first_stamp(path: Path) -> float | None:
    try:
        with path.open(errors="replace") as handle:
            for _, line in zip(range(_STAMP_LINES), handle, strict=False):
                stamp = parse_log_stamp(line)
                if stamp is not None:
                    return stamp[0]
    except OSError:
        return None
    return None


def _logs_during(run: RunData, worker: WorkerData, span: TestSpan) -> tuple[str, ...]:
    """Log files of ``worker`` written while ``span`` ran (first stamp .. last write)."""
    found = []
    end = span.end if span.end is not None else float("inf")
    for path in worker.logs:
        try:
            last = path.stat().st_mtime
        except OSError:
            continue
        first = _first_stamp(path)
        begin = first if first is not None else last
        # Whole-second stamps: a second of slack on each side.
        if begin <= end + 1.0 and last >= span.start - 1.0:
            found.append(str(path.relative_to(run.path)))
    return tuple(found)


def summarize_tests(run: RunData) -> TestOutcomes:
    """Counts per outcome, the failed tests (in start order), the slowest tests, the duration."""
    record = run.record or {}
    exitstatus = record.get("exitstatus")
    started = record.get("started")
    finished = record.get("finished")
    spans = run.spans()
    counts = Counter(span.outcome for span in spans)
    failed = []
    for span in spans:
        if span.outcome not in FAILING_OUTCOMES:
            continue
        worker = run.workers[span.worker]
        summary = failure_summary(span.failure)
        if not summary and span.outcome == "crashed":
            summary = "the worker died while this test ran"
        failed.append(
            FailedTest(
                test=span.test,
                worker=span.worker,
                outcome=span.outcome,
                summary=summary,
                failure=span.failure,
                file=span.file,
                line=span.line,
                logs=_logs_during(run, worker, span),
                duration_s=None if span.end is None else round(span.end - span.start, 3),
            )
        )
    timed = [s for s in spans if s.end is not None]
    timed.sort(key=lambda s: (s.end or 0.0) - s.start, reverse=True)
    slowest = [
        {
            "test": s.test,
            "worker": s.worker,
            "outcome": s.outcome,
            "duration_s": round((s.end or 0.0) - s.start, 3),
        }
        for s in timed[:SLOWEST]
    ]
    if isinstance(started, int | float) and isinstance(finished, int | float):
        duration: float | None = round(float(finished) - float(started), 3)
    elif spans:
        duration = round(max((s.end or s.start) for s in spans) - spans[0].start, 3)
    else:
        duration = None
    return TestOutcomes(
        counts=dict(counts),
        failed=failed,
        slowest=slowest,
        exitstatus=int(exitstatus) if isinstance(exitstatus, int) else None,
        started=float(started)
        if isinstance(started, int | float)
        else (spans[0].start if spans else None),
        duration_s=duration,
    )
