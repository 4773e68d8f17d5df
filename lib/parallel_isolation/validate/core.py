"""Running the scanners over one run and collecting the report."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from parallel_isolation.console import natural_sorted
from parallel_isolation.validate.base import ScanEnv, Scanner
from parallel_isolation.validate.docker_scan import scan_docker
from parallel_isolation.validate.events import scan_crosstalk, scan_events
from parallel_isolation.validate.evidence import scan_evidence
from parallel_isolation.validate.logs import scan_logs
from parallel_isolation.validate.model import Finding, Report, Severity
from parallel_isolation.validate.outcomes import summarize_tests
from parallel_isolation.validate.resources import scan_resources
from parallel_isolation.validate.rundata import (
    RunData,
    ValidationError,
    load_run,
    resolve_run_dir,
)

__all__ = ["SCANNERS", "validate_dir", "validate_run"]

SCANNERS: dict[str, Scanner] = {
    "evidence": scan_evidence,
    "events": scan_events,
    "logs": scan_logs,
    "crosstalk": scan_crosstalk,
    "docker": scan_docker,
    "resources": scan_resources,
}
"""Name -> scanner, run in this order.  Add entries to extend the validator."""


def validate_dir(
    run_dir: Path,
    *,
    env: ScanEnv | None = None,
    fail_on: Severity = Severity.WARNING,
    scanners: dict[str, Scanner] | None = None,
) -> Report:
    """Validate the run whose artifacts are in ``run_dir``."""
    started = time.perf_counter()
    env = env or ScanEnv()
    report = Report(run_id=run_dir.name, run_dir=str(run_dir), fail_on=fail_on)
    try:
        run = load_run(run_dir)
    except ValidationError as error:
        report.problems.append(str(error))
        report.elapsed_s = time.perf_counter() - started
        return report
    if not run.workers:
        report.problems.append(
            f"{run_dir} holds no worker artifacts (no events, snapshots or logs)"
        )
    report.loaded = True
    report.sections["run"] = {
        "record": run.record,
        "workers": natural_sorted(run.workers),
        "cleanup": [r.data for r in run.cleanup],
    }
    for name, scanner in (scanners or SCANNERS).items():
        begun = time.perf_counter()
        result = scanner(run, env)
        report.findings.extend(result.findings)
        report.notes.extend(result.notes)
        report.problems.extend(result.problems)
        report.sections[name] = {
            **result.section,
            "elapsed_s": round(time.perf_counter() - begun, 4),
        }
    report.findings = _apply_expectations(run, report.findings)
    report.tests = summarize_tests(run)
    report.elapsed_s = time.perf_counter() - started
    return report


def _expected(codes: list[str], code: str) -> bool:
    return any(
        code == want or code.startswith(want + ".") or code.endswith("." + want) for want in codes
    )


def _apply_expectations(run: RunData, findings: list[Finding]) -> list[Finding]:
    """Findings a test declared with ``@pytest.mark.isolation_expect(...)`` become info."""
    expected: dict[tuple[str, str], list[str]] = {}
    for worker, event in run.all_events():
        codes = event.get("expect")
        if event.kind == "test_started" and isinstance(codes, list):
            expected[(worker.worker_id, str(event.get("test")))] = [str(c) for c in codes]
    if not expected:
        return findings
    result = []
    for finding in findings:
        codes = expected.get((finding.worker or "", finding.test or "")) or expected.get(
            (finding.worker or "", finding.also or "")
        )
        if codes and finding.severity > Severity.INFO and _expected(codes, finding.code):
            finding = replace(
                finding,
                severity=Severity.INFO,
                message=finding.message + " (expected: the test is marked isolation_expect)",
                hint=None,
            )
        result.append(finding)
    return result


def validate_run(
    artifacts_root: Path,
    run: str = "latest",
    *,
    env: ScanEnv | None = None,
    fail_on: Severity = Severity.WARNING,
) -> Report:
    """Validate ``run`` (an id, a unique prefix or ``latest``) under ``artifacts_root``."""
    try:
        run_dir = resolve_run_dir(artifacts_root, run)
    except ValidationError as error:
        report = Report(run_id=run, run_dir=str(artifacts_root / run), fail_on=fail_on)
        report.problems.append(str(error))
        return report
    return validate_dir(run_dir, env=env, fail_on=fail_on)
