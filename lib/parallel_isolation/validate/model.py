"""The validator's vocabulary: severities, findings, test outcomes and the report.

A report carries two verdicts that are never mixed up:

* **tests**: what pytest said about the tests (passed, failed, errors, the
  failed tests with their failure text and logs), read from the run's events;
* **isolation**: what the validator found (clean, findings, could not
  validate).  The exit code of ``validate`` is the isolation verdict's.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from parallel_isolation.console import EXIT_CLEAN, EXIT_COULD_NOT, EXIT_FINDINGS, natural_key

__all__ = [
    "EXIT_CLEAN",
    "EXIT_FINDINGS",
    "EXIT_UNVALIDATED",
    "FailedTest",
    "Finding",
    "FindingGroup",
    "Report",
    "Severity",
    "TestOutcomes",
    "group_findings",
]

EXIT_UNVALIDATED = EXIT_COULD_NOT
FAILING_OUTCOMES = ("failed", "error", "crashed")


class Severity(enum.IntEnum):
    """How bad a finding is.  ``info`` never fails a run; the threshold is configurable."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, raw: str) -> Severity:
        try:
            return cls[raw.strip().upper()]
        except KeyError:
            msg = f"severity must be one of info, warning, error; got {raw!r}"
            raise ValueError(msg) from None


@dataclass(frozen=True)
class Finding:
    """One thing the validator found, with where and when it was seen."""

    severity: Severity
    code: str
    scanner: str
    message: str
    worker: str | None = None
    test: str | None = None
    file: str | None = None
    line: int | None = None
    ts: float | None = None
    hint: str | None = None
    also: str | None = None
    """Another test that may be the source (e.g. one that ended just before)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.label,
            "code": self.code,
            "scanner": self.scanner,
            "message": self.message,
            "worker": self.worker,
            "test": self.test,
            "file": self.file,
            "line": self.line,
            "ts": self.ts,
            "hint": self.hint,
            "also": self.also,
        }

    @property
    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True)
class FindingGroup:
    """Findings of one severity and code, shown once with a count and their places."""

    severity: Severity
    code: str
    findings: tuple[Finding, ...]

    @property
    def count(self) -> int:
        return len(self.findings)

    @property
    def example(self) -> Finding:
        return self.findings[0]


def group_findings(findings: Iterable[Finding]) -> list[FindingGroup]:
    """Findings grouped by (severity, code), worst first, each group in report order."""
    groups: dict[tuple[Severity, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.severity, finding.code), []).append(finding)
    return [
        FindingGroup(severity, code, tuple(members))
        for (severity, code), members in sorted(
            groups.items(), key=lambda item: (-int(item[0][0]), -len(item[1]), item[0][1])
        )
    ]


@dataclass(frozen=True)
class FailedTest:
    """A test that failed, errored or died with its worker, and where to read about it."""

    __test__ = False

    test: str
    worker: str
    outcome: str
    summary: str
    """The failure in one line (pytest's last ``E`` line, or the last line)."""
    failure: str = ""
    file: str | None = None
    line: int | None = None
    logs: tuple[str, ...] = ()
    """Log files (relative to the run directory) written while the test ran."""
    duration_s: float | None = None

    @property
    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def as_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "worker": self.worker,
            "outcome": self.outcome,
            "summary": self.summary,
            "failure": self.failure,
            "file": self.file,
            "line": self.line,
            "logs": list(self.logs),
            "duration_s": self.duration_s,
        }


@dataclass
class TestOutcomes:
    """The tests verdict: outcome counts, the failed tests, the slowest, how long the run took."""

    __test__ = False

    counts: dict[str, int] = field(default_factory=dict)
    failed: list[FailedTest] = field(default_factory=list)
    slowest: list[dict[str, Any]] = field(default_factory=list)
    exitstatus: int | None = None
    """pytest's exit status from ``run.json`` (None when the run was not recorded)."""
    started: float | None = None
    duration_s: float | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def verdict(self) -> str:
        """``failed``, ``passed``, ``no tests`` or ``unknown`` (no events, no exit status)."""
        if any(self.counts.get(outcome) for outcome in FAILING_OUTCOMES):
            return "failed"
        if self.exitstatus not in (None, 0, 5):
            return "failed"
        if self.total == 0:
            return "unknown" if self.exitstatus is None else "no tests"
        return "passed"

    def describe(self) -> str:
        """``42 passed, 2 skipped`` (outcomes in a fixed order) plus pytest's exit status."""
        order = ["passed", "failed", "error", "crashed", "skipped", "xfailed", "xpassed"]
        names = order + sorted(k for k in self.counts if k not in order)
        text = ", ".join(f"{self.counts[k]} {k}" for k in names if self.counts.get(k)) or "no tests"
        if self.exitstatus is not None:
            text += f" (pytest exit {self.exitstatus})"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "counts": dict(self.counts),
            "total": self.total,
            "failed": [test.as_dict() for test in self.failed],
            "slowest": list(self.slowest),
            "exitstatus": self.exitstatus,
            "started": self.started,
            "duration_s": self.duration_s,
        }


@dataclass
class Report:
    """Everything one validation found, ready to render."""

    run_id: str
    run_dir: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    fail_on: Severity = Severity.WARNING
    tests: TestOutcomes = field(default_factory=TestOutcomes)
    loaded: bool = False
    """The run's artifacts were read (False: nothing could be validated at all)."""

    def exit_code(self) -> int:
        """The isolation verdict as an exit code: 0 clean, 1 findings, 2 could not validate."""
        if self.problems:
            return EXIT_UNVALIDATED
        if any(finding.severity >= self.fail_on for finding in self.findings):
            return EXIT_FINDINGS
        return EXIT_CLEAN

    @property
    def verdict(self) -> str:
        """The isolation verdict: ``clean``, ``findings`` or ``could not (fully) validate``."""
        code = self.exit_code()
        if code == EXIT_UNVALIDATED:
            return "could not fully validate" if self.loaded else "could not validate"
        return "clean" if code == EXIT_CLEAN else "findings"

    def counts(self) -> dict[str, int]:
        counts = {severity.label: 0 for severity in Severity}
        for finding in self.findings:
            counts[finding.severity.label] += 1
        return counts

    def sorted_findings(self) -> list[Finding]:
        return sorted(
            self.findings,
            key=lambda f: (
                -int(f.severity),
                f.scanner,
                natural_key(f.worker or ""),
                f.ts or 0.0,
                f.code,
            ),
        )

    def visible(self, min_severity: Severity = Severity.INFO) -> list[Finding]:
        """Sorted findings at or above ``min_severity``."""
        return [f for f in self.sorted_findings() if f.severity >= min_severity]

    def as_dict(self) -> dict[str, Any]:
        # "verdict", "exit_code" and "counts" at the top are the isolation
        # verdict's (the shard merge reads them); "tests" is the other verdict.
        return {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "verdict": self.verdict,
            "exit_code": self.exit_code(),
            "isolation": {
                "verdict": self.verdict,
                "exit_code": self.exit_code(),
                "counts": self.counts(),
            },
            "tests": self.tests.as_dict(),
            "fail_on": self.fail_on.label,
            "counts": self.counts(),
            "findings": [finding.as_dict() for finding in self.sorted_findings()],
            "notes": list(self.notes),
            "problems": list(self.problems),
            "sections": self.sections,
            "elapsed_s": round(self.elapsed_s, 3),
        }
