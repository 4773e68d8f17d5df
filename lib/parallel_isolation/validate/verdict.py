"""The isolation verdict at the end of a pytest run, for pytest's own terminal summary.

When a run that used the toolkit ends, the controller (or the only process,
without xdist) judges it with the validator: cross-talk, leaked threads,
processes and sockets per test, what was left at session end, log patterns,
and the run's Docker objects when it used Docker.  The summary names the run,
its workers, the findings by severity with the first few, where the
artifacts are and the command for the full report.

``--isolation-fail-on`` decides whether findings fail the session:

* ``error`` (the default): isolation errors (cross-talk, a leak, a leftover,
  a client-id clash) make the exit code 1 even when every test passed.  They
  mean the results cannot be trusted: a test may have passed on another
  test's message, or left something that makes the next one pass or fail.
  Warnings (a slow lock, a dead worker already reported by pytest) do not.
* ``warning``: warnings fail it too, and so does evidence that could not be read.
* ``never``: pytest's exit code is left as it is; the summary still shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from parallel_isolation.console import natural_sorted
from parallel_isolation.settings import FAIL_ON_CHOICES, parse_fail_on
from parallel_isolation.validate.base import ScanEnv
from parallel_isolation.validate.core import SCANNERS, validate_dir
from parallel_isolation.validate.docker_scan import DOCKER_EVENTS
from parallel_isolation.validate.model import Report, Severity, group_findings
from parallel_isolation.validate.rundata import default_artifacts_root

__all__ = [
    "FAIL_ON_CHOICES",
    "FAIL_ON_DEFAULT",
    "RunVerdict",
    "full_report_command",
    "judge",
    "parse_fail_on",
    "summary_lines",
]

FAIL_ON_DEFAULT = "error"
TOP_GROUPS = 5
"""How many finding groups the terminal summary lists."""

Line = tuple[str, dict[str, bool]]


@dataclass(frozen=True)
class RunVerdict:
    """A run's isolation verdict as judged at its end."""

    report: Report
    fail_on: str
    artifacts_root: Path

    @property
    def fails_session(self) -> bool:
        """True when the findings must turn a green session red (see ``--isolation-fail-on``)."""
        counts = self.report.counts()
        if self.fail_on == "error":
            return counts["error"] > 0
        if self.fail_on == "warning":
            return counts["error"] + counts["warning"] > 0 or bool(self.report.problems)
        return False


def _used_docker(run_dir: Path, backend: str) -> bool:
    if backend == "docker":
        return True
    for events in run_dir.glob("*/events.jsonl"):
        try:
            text = events.read_text(errors="replace")
        except OSError:
            continue
        if any(f'"kind": "{kind}"' in text for kind in DOCKER_EVENTS):
            return True
    return False


def judge(
    run_dir: Path,
    *,
    backend: str,
    fail_on: str = FAIL_ON_DEFAULT,
    artifacts_root: Path,
    state_dir: Path | None = None,
) -> RunVerdict:
    """Validate the run that just ended (the Docker scan only when the run used Docker)."""
    scanners = dict(SCANNERS)
    if not _used_docker(run_dir, backend):
        scanners.pop("docker", None)
    threshold = Severity.WARNING if fail_on == "warning" else Severity.ERROR
    report = validate_dir(
        run_dir, env=ScanEnv(state_dir=state_dir), fail_on=threshold, scanners=scanners
    )
    return RunVerdict(report=report, fail_on=fail_on, artifacts_root=artifacts_root)


def full_report_command(run_id: str, artifacts_root: Path) -> str:
    """The exact command that prints the full report of ``run_id``."""
    command = f"parallel-isolation validate --run {run_id}"
    if artifacts_root.absolute() != default_artifacts_root().absolute():
        command += f" --artifacts {artifacts_root}"
    return command


def summary_lines(verdict: RunVerdict, *, elapsed_s: float | None = None) -> list[Line]:
    """The terminal summary: (text, pytest TerminalWriter markup) per line; text is literal."""
    report = verdict.report
    counts = report.counts()
    workers = natural_sorted(report.sections.get("run", {}).get("workers", []))
    if report.problems:
        state, colour = "COULD NOT FULLY VALIDATE", {"purple": True, "bold": True}
    elif counts["error"]:
        state, colour = "FINDINGS", {"red": True, "bold": True}
    elif counts["warning"]:
        state, colour = "WARNINGS", {"yellow": True, "bold": True}
    else:
        state, colour = "CLEAN", {"green": True, "bold": True}
    took = f" (judged in {elapsed_s:.2f} s)" if elapsed_s is not None else ""
    lines: list[Line] = [
        (
            f"run {report.run_id} · {len(workers)} workers ({', '.join(workers[:4])}"
            f"{', ...' if len(workers) > 4 else ''}) · isolation: {state}",
            colour,
        ),
        (
            f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} info{took}",
            {},
        ),
    ]
    for problem in report.problems:
        lines.append((f"  {problem}", {"purple": True}))
    groups = group_findings(f for f in report.sorted_findings() if f.severity > Severity.INFO)
    for group in groups[:TOP_GROUPS]:
        first = group.example
        count = f" x{group.count}" if group.count > 1 else ""
        markup = {"red": True} if group.severity == Severity.ERROR else {"yellow": True}
        lines.append(
            (f"  {group.severity.label.upper():7} {group.code}{count}: {first.message}", markup)
        )
        place = "  ".join(p for p in (first.worker, first.test, first.where) if p)
        if place:
            lines.append((f"          {place}", {}))
    if len(groups) > TOP_GROUPS:
        rest = sum(group.count for group in groups[TOP_GROUPS:])
        lines.append((f"  ... {rest} more in {len(groups) - TOP_GROUPS} groups", {}))
    lines.append((f"artifacts: {report.run_dir}", {}))
    lines.append(
        (
            f"full report: {full_report_command(report.run_id, verdict.artifacts_root)}"
            " (--format html for the HTML report)",
            {},
        )
    )
    if verdict.fails_session:
        lines.append(
            (
                f"the session fails on these findings (--isolation-fail-on {verdict.fail_on}; "
                "'never' keeps pytest's exit code)",
                {"red": True, "bold": True},
            )
        )
    return lines


def timed_judge(
    run_dir: Path,
    *,
    backend: str,
    fail_on: str,
    artifacts_root: Path,
    state_dir: Path | None,
) -> tuple[RunVerdict, float]:
    """:func:`judge` and the seconds it took."""
    started = time.perf_counter()
    verdict = judge(
        run_dir,
        backend=backend,
        fail_on=fail_on,
        artifacts_root=artifacts_root,
        state_dir=state_dir,
    )
    return verdict, time.perf_counter() - started
