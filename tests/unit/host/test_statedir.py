"""Security of the host-wide state: this user's private directory, and no trust in planted files.

The tests plant what another local user could: a directory of another uid
where ours should be, a directory others may write to, a symbolic link, and a
reservation file of another owner uid (as root the tests can ``chown``; as
another user they skip).
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from parallel_isolation.artifacts import EventLog, UnsafeDirectoryError, read_events
from parallel_isolation.host.locks import ResourceLocks
from parallel_isolation.host.ports import PortAllocator, Reservation, read_reservations, untrusted
from parallel_isolation.host.statedir import checked_state_dir
from parallel_isolation.identity import Identity, Owner
from parallel_isolation.reap.orphans import cleanup_orphans
from parallel_isolation.settings import default_state_dir

OTHER_UID = 54321  # nobody's: a uid this test suite never runs as
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


def _ident() -> Identity:
    return Identity.resolve(run_id="aaaabbbb", worker_id="gw0")


def test_the_default_state_dir_is_this_users_and_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ISOLATION_STATE_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    path = default_state_dir()
    assert path == tmp_path / f"parallel-isolation-{os.geteuid()}"
    assert checked_state_dir() == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


@needs_root
def test_a_state_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "state"
    planted.mkdir(mode=0o700)
    os.chown(planted, OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafeDirectoryError) as caught:
        checked_state_dir(planted)
    message = str(caught.value)
    assert f"the state directory {planted} belongs to uid {OTHER_UID}" in message
    assert "ISOLATION_STATE_DIR" in message
    with pytest.raises(UnsafeDirectoryError):
        PortAllocator(_ident(), state_dir=planted)
    with pytest.raises(UnsafeDirectoryError):
        ResourceLocks(_ident(), state_dir=planted)


def test_a_state_dir_others_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "state"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafeDirectoryError, match=r"writable by other users \(mode 777\)"):
        checked_state_dir(shared)


def test_a_state_dir_that_is_a_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "state"
    link.symlink_to(target)
    with pytest.raises(UnsafeDirectoryError, match="is a symbolic link"):
        checked_state_dir(link)


def test_pytest_stops_with_one_usage_error_on_an_unsafe_state_dir(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-state"
    shared.mkdir()
    shared.chmod(0o777)
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess(f"--isolation-state-dir={shared}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.errlines if str(shared) in line] == [
        f"ERROR: the state directory {shared} is writable by other users (mode 777); not using "
        "it: remove it, or point ISOLATION_STATE_DIR (--isolation-state-dir) at a directory "
        "of your own"
    ]


def test_reservations_and_their_directories_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    allocator = PortAllocator(_ident(), base=45000, block_size=50, state_dir=state)
    port = allocator.allocate("private")
    try:
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "ports").stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "ports" / f"{port}.json").stat().st_mode) == 0o600
    finally:
        allocator.release(port)
    released = state / "ports" / f"{port}.json"  # kept, marked released, cooling down
    assert stat.S_IMODE(released.stat().st_mode) == 0o600


@needs_root
def test_a_reservation_planted_by_another_user_is_not_trusted(
    tmp_path: Path, dead_owner: Owner
) -> None:
    state = tmp_path / "state"
    (state / "ports").mkdir(parents=True, mode=0o700)
    state.chmod(0o700)
    base = 45100
    planted = state / "ports" / f"{base}.json"
    # It claims a dead owner: a reservation of ours saying so would be taken over.
    planted.write_text(
        json.dumps(
            {
                "port": base,
                "owner": dead_owner.as_dict(),
                "run_id": "deadbeef",
                "worker_id": "gw0",
                "purpose": "planted",
                "created": time.time() - 3600,
            }
        )
    )
    os.chown(planted, OTHER_UID, OTHER_UID)
    assert untrusted(planted) == f"belongs to uid {OTHER_UID}, not to this user"
    assert Reservation.load(planted) is None
    assert read_reservations(state) == []

    events = EventLog(tmp_path / "events.jsonl", "gw0")
    allocator = PortAllocator(_ident(), base=base, block_size=10, state_dir=state, events=events)
    try:
        assert allocator.allocate("broker") == base + 1  # the planted port is skipped
    finally:
        allocator.release_all()
    [note] = [e for e in read_events(events.path) if e["kind"] == "port_reservation_untrusted"]
    assert note["port"] == base
    assert planted.exists(), "a file we do not trust was removed"
    assert planted.stat().st_uid == OTHER_UID

    report = cleanup_orphans(run="deadbeef", state_dir=state, include_docker=False)
    assert planted.exists(), "cleanup-orphans acted on a planted reservation"
    assert not [d for d in report.decisions if d.name.startswith(f"port {base} ")]
