"""Marks written and read back by the one module that owns them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from parallel_isolation.host import procfs
from parallel_isolation.identity import Identity, Owner
from parallel_isolation.ownership import (
    MARKER_ENV,
    MARKER_VARIABLES,
    OWNER_FILE,
    marker_env,
    read_markers,
    read_owner_file,
    write_owner_file,
)


@pytest.fixture
def identity() -> Identity:
    return Identity("abcd1234", "gw3", 3, Owner.current())


def test_markers_read_back_from_a_real_process(identity: Identity) -> None:
    env = {**os.environ, **marker_env(identity, "service:pump")}
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"up\n"  # exec'd: /proc shows its own environment
        markers = read_markers(procfs.environ(child.pid))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
        child.stdout.close()
    assert markers is not None
    assert (markers.run, markers.worker, markers.role) == ("abcd1234", "gw3", "service:pump")
    assert markers.owner is not None
    assert markers.owner.pid == identity.owner.pid
    assert markers.owner.host == identity.owner.host
    assert abs(markers.owner.start_time - identity.owner.start_time) < 0.01


def test_marker_env_sets_every_documented_variable(identity: Identity) -> None:
    assert tuple(marker_env(identity, "broker")) == MARKER_VARIABLES


@pytest.mark.parametrize(
    "env",
    [
        {},
        {MARKER_ENV: "someone-else"},
        {"ISOLATION_RUN_ID": "abcd1234", "ISOLATION_ROLE": "broker"},
    ],
    ids=["nothing", "foreign marker", "variables without the marker"],
)
def test_unmarked_environments_are_not_ours(env: dict[str, str]) -> None:
    assert read_markers(env) is None


def test_marker_with_a_garbled_owner_keeps_its_run_but_no_owner(identity: Identity) -> None:
    env = {**marker_env(identity, "broker"), "ISOLATION_OWNER_PID": "not-a-pid"}
    markers = read_markers(env)
    assert markers is not None
    assert markers.run == "abcd1234"
    assert markers.owner is None


def test_owner_file_round_trip(identity: Identity, tmp_path: Path) -> None:
    path = write_owner_file(tmp_path, identity, "scratch")
    assert path == tmp_path / OWNER_FILE
    record = read_owner_file(tmp_path)
    assert record is not None
    assert (record.run, record.worker, record.purpose) == ("abcd1234", "gw3", "scratch")
    assert record.owner.pid == identity.owner.pid


@pytest.mark.parametrize(
    "content", ["", "not json", "[1, 2]", '{"run_id": "x"}', '{"owner": {"pid": "x"}}']
)
def test_unreadable_owner_files_are_none(tmp_path: Path, content: str) -> None:
    (tmp_path / OWNER_FILE).write_text(content)
    assert read_owner_file(tmp_path) is None


def test_a_directory_without_owner_file_is_none(tmp_path: Path) -> None:
    assert read_owner_file(tmp_path) is None
