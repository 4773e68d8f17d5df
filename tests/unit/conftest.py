"""Owners for the library's tests: a process that is certainly dead, and this one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parallel_isolation.identity import Owner


def make_dead_owner() -> Owner:
    """The owner record of a process that has certainly exited."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    owner = Owner.of_pid(proc.pid)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(10)
    return owner


@pytest.fixture
def dead_owner() -> Owner:
    return make_dead_owner()


@pytest.fixture
def live_owner() -> Owner:
    return Owner.current()


@pytest.fixture(autouse=True)
def _inner_runs_choose_their_own_requirements(request: pytest.FixtureRequest) -> None:
    """A pytester run states what it requires: CI's ISOLATION_REQUIRE_DOCKER=1
    (which makes the outer suite fail instead of skip without an engine) would
    otherwise turn an inner run that is meant to skip into a usage error."""
    if "pytester" in request.fixturenames:
        mp = request.getfixturevalue("monkeypatch")
        mp.delenv("ISOLATION_REQUIRE_DOCKER", raising=False)
