"""The GitHub workflow: every job that runs the integration suite has a Docker engine and requires it.

A job without an engine would skip every Docker-marked test and still pass;
with ``ISOLATION_REQUIRE_DOCKER`` such a test fails instead.
"""

from __future__ import annotations

import re
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parents[3] / ".github" / "workflows" / "ci.yml"


def jobs() -> dict[str, str]:
    """Each job's text, by job id (the two-space-indented keys under ``jobs:``)."""
    body = WORKFLOW.read_text().split("\njobs:\n", 1)[1]
    parts = re.split(r"^  ([A-Za-z0-9_-]+):\n", body, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_workflow_has_the_suite_jobs() -> None:
    found = jobs()
    assert {"test", "shard"} <= set(found), sorted(found)


def test_every_job_running_the_suite_starts_the_engine_and_requires_docker() -> None:
    running = {name: text for name, text in jobs().items() if "60-integration.sh" in text}
    assert running, "no job runs the integration suite"
    for name, text in running.items():
        steps = [line.strip() for line in text.splitlines() if line.strip().startswith("- run:")]
        order = [step for step in steps if re.search(r"ci/steps/(10-docker|30-images|60-)", step)]
        assert order, f"job {name}: no steps found"
        assert "10-docker.sh" in order[0], f"job {name}: no engine before the suite"
        assert any("30-images.sh" in step for step in order), f"job {name}: no images built"
        assert re.search(r'ISOLATION_REQUIRE_DOCKER: "1"', text), f"job {name}: Docker not required"
