"""The artifacts directory on a full filesystem (a small tmpfs), filling up mid-run.

What must hold: the run says clearly, naming the files under the directory,
that records could not be written (and fails, its evidence incomplete);
nothing crashes; and everything of the run is still torn down: no process,
reservation or temp directory of it is left for cleanup-orphans to find.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import SUITES, Project, cleanup

pytestmark = pytest.mark.slow

FREE_BYTES = 24 * 1024  # room for the run's first records, not for all of them


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small-fs"
    mount.mkdir(mode=0o700)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=60, check=False)


def _fill(mount: Path, leave: int) -> None:
    stats = os.statvfs(mount)
    filler = stats.f_bavail * stats.f_frsize - leave
    with (mount / "filler").open("wb") as handle:
        handle.write(b"\0" * max(0, filler))


def test_a_full_artifacts_filesystem_is_a_clear_error_and_everything_is_torn_down(
    project_factory: Callable[[Path], Project], small_tmpfs: Path
) -> None:
    project = project_factory(SUITES / "realistic")
    artifacts = small_tmpfs / "runs"
    _fill(small_tmpfs, FREE_BYTES)
    run_id = uuid.uuid4().hex[:8]
    run = project.run(
        "-n",
        "2",
        "-p",
        "isolation_record_always",
        f"--isolation-artifacts={artifacts}",
        f"--testrunuid={run_id}",
    )
    said = run.stdout + run.stderr
    assert run.returncode != 0, said
    assert "INTERNALERROR" not in said, said
    assert f"parallel-isolation: cannot write {artifacts}/{run_id}/" in said, said
    assert "No space left on device" in said, said
    assert "closing this worker's isolation resources failed" in said, said
    assert f"could not be written to {artifacts}/{run_id}/" in said, said

    left = cleanup(
        Project(project.path), "--run", run_id, "--dry-run", "--artifacts", str(artifacts)
    )
    assert left.data["decisions"] == [], left.output
