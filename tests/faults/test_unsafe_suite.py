"""A parallel-unsafe suite under -n 4: validate reports the real conflicts and cross-talk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from parallel_isolation.host.ports import PortAllocator
from parallel_isolation.session.context import WorkerContext

from .conftest import SUITES, Project, codes, extra_suites, findings, html_report, validate

# Fault tests run one at a time (`-p no:xdist`; an xdist_group would do once loadgroup
# works again on pytest 9, pytest-xdist#1386): a fault test's deliberate leaks must not
# reach another fault test's run through a reused port.
pytestmark = pytest.mark.slow

UNSAFE = SUITES / "unsafe"
FIXED_PORT_BASE = 39000


def test_validate_catches_the_real_faults(
    project_factory: Callable[[Path], Project], isolation_worker: WorkerContext
) -> None:
    project = project_factory(UNSAFE)
    # The "fixed" port comes from the allocator too (a range of its own), so
    # that only this run collides on it.
    allocator = PortAllocator(isolation_worker.identity, base=FIXED_PORT_BASE, block_size=50)
    fixed = allocator.allocate("the unsafe suite's fixed port")
    try:
        run = project.run("-n", "4", env={"UNSAFE_FIXED_PORT": str(fixed)})
    finally:
        allocator.release(fixed)
    assert run.returncode == 1, run.stdout
    assert "3 failed" in run.stdout, run.stdout
    run_id = project.run_id()
    result = validate(project, run_id)
    html_report(project, run_id)
    assert result.code == 1, result.output
    errors = codes(result, "error")

    clash = findings(result, "log.client-id-clash")
    assert clash, result.output
    assert {f["test"] for f in clash} == {"test_unsafe_suite.py::test_fixed_client_id"}
    assert all("fire_consensus" in f["message"] for f in clash)

    crosstalk = findings(result, "crosstalk")
    topics = {f["message"].split("'")[1] for f in crosstalk}
    assert "fire/detection" in topics
    assert any(t.startswith("system/fire_consensus/") for t in topics), "the service had no prefix"
    bare = [f for f in crosstalk if "'fire/detection'" in f["message"]]
    assert all(
        "test_unsafe_suite.py::test_bare_topics" in f"{f['test']} {f['also']}" for f in bare
    ), bare

    in_use = findings(result, "test.address-in-use")
    assert len(in_use) == 3
    assert all(f["test"].startswith("test_unsafe_suite.py::test_fixed_port") for f in in_use)
    sockets = findings(result, "leak.listening_socket")
    assert [f["message"] for f in sockets] == [
        f"socket listening on port {fixed} still open after teardown"
    ]

    threads = {f["message"].split("'")[1] for f in findings(result, "leak.thread")}
    assert "fire_consensus-scheduler" in threads
    assert all(
        f["test"] == "test_unsafe_suite.py::test_service_never_stopped"
        for f in findings(result, "leak.thread")
    )
    assert "worker-died" not in errors


@pytest.mark.parametrize("suite", extra_suites("ISOLATION_FAULTS_UNSAFE_SUITES"))
def test_validate_finds_faults_in_other_unsafe_suites(
    project_factory: Callable[[Path], Project], suite: Path
) -> None:
    """The lead's legacy files (or any unsafe suite) under -n 4: validate must not say clean."""
    project = project_factory(suite)
    project.run("-n", "4", "-p", "isolation_record_always")
    run_id = project.run_id()
    result = validate(project, run_id)
    html_report(project, run_id)
    assert result.code == 1, result.output
    assert codes(result, "error"), result.output
