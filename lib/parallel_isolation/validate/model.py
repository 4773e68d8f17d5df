"""The validator's vocabulary: severities, findings and the report."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EXIT_CLEAN", "EXIT_FINDINGS", "EXIT_UNVALIDATED", "Finding", "Report", "Severity"]

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_UNVALIDATED = 2


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

    def exit_code(self) -> int:
        if self.problems:
            return EXIT_UNVALIDATED
        if any(finding.severity >= self.fail_on for finding in self.findings):
            return EXIT_FINDINGS
        return EXIT_CLEAN

    @property
    def verdict(self) -> str:
        return {
            EXIT_CLEAN: "clean",
            EXIT_FINDINGS: "findings",
            EXIT_UNVALIDATED: "could not validate",
        }[self.exit_code()]

    def counts(self) -> dict[str, int]:
        counts = {severity.label: 0 for severity in Severity}
        for finding in self.findings:
            counts[finding.severity.label] += 1
        return counts

    def sorted_findings(self) -> list[Finding]:
        return sorted(
            self.findings,
            key=lambda f: (-int(f.severity), f.scanner, f.worker or "", f.ts or 0.0, f.code),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "verdict": self.verdict,
            "exit_code": self.exit_code(),
            "fail_on": self.fail_on.label,
            "counts": self.counts(),
            "findings": [finding.as_dict() for finding in self.sorted_findings()],
            "notes": list(self.notes),
            "problems": list(self.problems),
            "sections": self.sections,
            "elapsed_s": round(self.elapsed_s, 3),
        }
