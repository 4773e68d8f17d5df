"""Two runs at the same time on one host, each -n 6: both pass, no cross-talk, no conflict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import RUN_TIMEOUT_S, SUITES, Project, codes, extra_suites, html_report, validate

# Fault tests run one at a time (`-p no:xdist`; an xdist_group would do once loadgroup
# works again on pytest 9, pytest-xdist#1386): a fault test's deliberate leaks must not
# reach another fault test's run through a reused port.
pytestmark = pytest.mark.slow

SAFE_SUITES = [
    pytest.param(SUITES / "realistic", id="realistic"),
    *extra_suites("ISOLATION_FAULTS_SAFE_SUITES"),
]


def _port_intervals(events: list[dict[str, Any]]) -> dict[int, list[tuple[float, float]]]:
    """port -> [(reserved, released)] from one run's events."""
    open_at: dict[int, float] = {}
    spans: dict[int, list[tuple[float, float]]] = {}
    for event in sorted(events, key=lambda e: e["ts"]):
        if event["kind"] in {"port_reserved", "port_reclaimed"}:
            open_at[event["port"]] = event["ts"]
        elif event["kind"] == "port_released" and event["port"] in open_at:
            spans.setdefault(event["port"], []).append((open_at.pop(event["port"]), event["ts"]))
    for port, since in open_at.items():
        spans.setdefault(port, []).append((since, float("inf")))
    return spans


@pytest.mark.parametrize("suite", SAFE_SUITES)
def test_two_runs_at_once(project_factory: Callable[[Path, str], Project], suite: Path) -> None:
    first = project_factory(suite, "run-a")
    second = project_factory(suite, "run-b")
    args = ("-n", "6", "-p", "isolation_record_always")
    procs = [first.start(*args), second.start(*args)]
    outputs = [proc.communicate(timeout=RUN_TIMEOUT_S)[0] for proc in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output
    runs = [first.run_id(), second.run_id()]
    assert runs[0] != runs[1]

    for project, run_id in zip((first, second), runs, strict=True):
        result = validate(project, run_id)
        html_report(project, run_id)
        assert result.code == 0, result.output
        assert "crosstalk" not in codes(result)
        assert not [c for c in codes(result) if "conflict" in c or "clash" in c]

    events = [first.events(runs[0]), second.events(runs[1])]
    ports = [_port_intervals(e) for e in events]
    for port in set(ports[0]) & set(ports[1]):
        for a_start, a_end in ports[0][port]:
            for b_start, b_end in ports[1][port]:
                assert a_end <= b_start or b_end <= a_start, (
                    f"port {port} held by both runs at once"
                )
    namespaces = [{e["namespace"] for e in run if e["kind"] == "test_namespace"} for run in events]
    assert not namespaces[0] & namespaces[1]
    assert all(
        ns.startswith(f"test/{run_id}/")
        for run_id, found in zip(runs, namespaces, strict=True)
        for ns in found
    )
    workers = [{e["worker"] for e in run if e["kind"] == "worker_started"} for run in events]
    assert all(len(found) == 6 for found in workers)
