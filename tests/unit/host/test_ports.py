from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from parallel_isolation.artifacts import EventLog, read_events
from parallel_isolation.host.ports import (
    PortAllocator,
    PortExhaustedError,
    Reservation,
    is_port_conflict,
    read_reservations,
)
from parallel_isolation.identity import Identity, Owner


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def base(parallel_test_context) -> int:  # type: ignore[no-untyped-def]
    """A base far from the suite's own blocks, distinct per xdist worker."""
    return 40000 + parallel_test_context.identity.worker_number * 700


def _ident(worker: str = "gw0", run: str = "aaaabbbb") -> Identity:
    return Identity.resolve(run_id=run, worker_id=worker)


_ALLOCATE_MANY = """
import json, sys
from pathlib import Path
from parallel_isolation.identity import Identity
from parallel_isolation.host.ports import PortAllocator
state, base, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
allocator = PortAllocator(Identity.resolve(run_id="aaaabbbb", worker_id="gw0"), base=base, block_size=100, state_dir=Path(state))
print(json.dumps([allocator.allocate("stress") for _ in range(count)]), flush=True)
sys.stdin.read()  # hold the reservations until the parent closes stdin
"""


def test_concurrent_processes_never_get_the_same_port(state: Path, base: int) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ALLOCATE_MANY, str(state), str(base), "12"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        results = [json.loads(proc.stdout.readline()) for proc in procs]  # type: ignore[union-attr]
    finally:
        for proc in procs:
            proc.communicate(timeout=30)
    ports = [p for batch in results for p in batch]
    assert len(ports) == 72
    assert len(set(ports)) == 72, "a port was handed out twice"
    assert all(base <= p < base + 100 for p in ports), "all fit in the shared block"


def test_own_block_first_and_reservation_records_owner(state: Path, base: int) -> None:
    ident = _ident("gw3")
    allocator = PortAllocator(ident, base=base, block_size=10, state_dir=state)
    port = allocator.allocate("broker")
    assert port == base + 30
    (reservation,) = read_reservations(state)
    assert reservation.port == port
    assert reservation.owner == ident.owner
    assert (reservation.run_id, reservation.worker_id, reservation.purpose) == (
        "aaaabbbb",
        "gw3",
        "broker",
    )
    allocator.release(port)
    assert read_reservations(state) == []


def test_foreign_listener_is_skipped_and_logged(state: Path, base: int, tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.jsonl", "gw0")
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", base))
        foreign.listen()
        allocator = PortAllocator(
            _ident(), base=base, block_size=10, state_dir=state, events=events
        )
        assert allocator.allocate("broker") == base + 1
    kinds = [(e["kind"], e.get("port")) for e in read_events(tmp_path / "events.jsonl")]
    assert ("port_in_use", base) in kinds
    assert ("port_reserved", base + 1) in kinds


def _dead_owner() -> Owner:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner.of_pid(child.pid)
    child.wait()
    return owner


def _plant(state: Path, port: int, owner: Owner, run: str = "deadbeef") -> None:
    (state / "ports").mkdir(parents=True, exist_ok=True)
    record = {
        "port": port,
        "owner": owner.as_dict(),
        "run_id": run,
        "worker_id": "gw0",
        "purpose": "planted",
        "created": time.time(),
    }
    (state / "ports" / f"{port}.json").write_text(json.dumps(record))


def test_stale_reservation_of_dead_owner_is_reclaimed(
    state: Path, base: int, tmp_path: Path
) -> None:
    _plant(state, base, _dead_owner())
    events = EventLog(tmp_path / "ev.jsonl", "gw0")
    allocator = PortAllocator(_ident(), base=base, block_size=10, state_dir=state, events=events)
    assert allocator.allocate("broker") == base
    assert Reservation.load(state / "ports" / f"{base}.json").owner == Owner.current()  # type: ignore[union-attr]
    assert "port_reclaimed" in [e["kind"] for e in read_events(tmp_path / "ev.jsonl")]


def test_live_owner_reservation_is_respected(state: Path, base: int) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _plant(state, base, Owner.of_pid(sleeper.pid))
        allocator = PortAllocator(_ident(), base=base, block_size=10, state_dir=state)
        assert allocator.allocate("broker") == base + 1
        assert Reservation.load(state / "ports" / f"{base}.json").owner.pid == sleeper.pid  # type: ignore[union-attr]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_full_block_falls_back_to_the_next(state: Path, base: int) -> None:
    first = PortAllocator(_ident("gw0"), base=base, block_size=3, state_dir=state)
    taken = [first.allocate("x") for _ in range(3)]
    assert taken == [base, base + 1, base + 2]
    assert first.allocate("x") == base + 3  # gw1's block, the next one


def test_exhaustion_is_a_clear_error(state: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for port in range(65530, 65536):
            _plant(state, port, Owner.of_pid(sleeper.pid), run="cafe0001")
        allocator = PortAllocator(_ident(), base=65530, block_size=3, state_dir=state)
        with pytest.raises(PortExhaustedError) as info:
            allocator.allocate("broker")
    finally:
        sleeper.kill()
        sleeper.wait()
    text = str(info.value)
    assert "no free port for 'broker'" in text
    assert "tried 6 ports" in text
    assert "run cafe0001" in text
    assert f"pid {sleeper.pid}" in text
    assert "--isolation-port-base" in text


def test_with_port_retries_conflicts_and_quarantines(state: Path, base: int) -> None:
    allocator = PortAllocator(_ident(), base=base, block_size=10, state_dir=state)
    attempts: list[int] = []

    def launch(port: int) -> str:
        attempts.append(port)
        if len(attempts) < 3:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return "up"

    port, result = allocator.with_port("broker", launch)
    assert result == "up"
    assert attempts == [base, base + 1, base + 2]
    assert port == base + 2
    assert allocator.held == {base + 2: "broker"}
    assert allocator.allocate("next") == base + 3, "quarantined ports are not reused"


def test_with_port_releases_on_other_errors(state: Path, base: int) -> None:
    allocator = PortAllocator(_ident(), base=base, block_size=10, state_dir=state)

    def launch(port: int) -> None:
        raise RuntimeError("image missing")

    with pytest.raises(RuntimeError, match="image missing"):
        allocator.with_port("broker", launch)
    assert allocator.held == {}
    assert read_reservations(state) == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.EADDRINUSE, "Address already in use"), True),
        (
            RuntimeError(
                "driver failed: Bind for 127.0.0.1:20000 failed: port is already allocated"
            ),
            True,
        ),
        (RuntimeError("listen tcp 127.0.0.1:20000: bind: address already in use"), True),
        (OSError(errno.ECONNREFUSED, "refused"), False),
        (RuntimeError("No such image"), False),
    ],
)
def test_port_conflict_classification(error: BaseException, expected: bool) -> None:
    assert is_port_conflict(error) is expected


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"block_size": 0}, "block size"), ({"base": 80}, "port base")]
)
def test_bad_configuration(state: Path, kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PortAllocator(_ident(), state_dir=state, **kwargs)


@pytest.fixture
def two_runs(state: Path, base: int) -> Iterator[tuple[PortAllocator, PortAllocator]]:
    a = PortAllocator(_ident("gw0", "11111111"), base=base, block_size=10, state_dir=state)
    b = PortAllocator(_ident("gw0", "22222222"), base=base, block_size=10, state_dir=state)
    yield a, b
    a.release_all()
    b.release_all()


def test_two_runs_same_worker_id_do_not_collide(
    two_runs: tuple[PortAllocator, PortAllocator],
) -> None:
    a, b = two_runs
    ports = [a.allocate("broker"), b.allocate("broker"), a.allocate("svc"), b.allocate("svc")]
    assert len(set(ports)) == 4


def test_released_port_cools_down_before_reuse(state: Path, base: int) -> None:
    first = PortAllocator(_ident("gw0", "11111111"), base=base, block_size=10, state_dir=state)
    port = first.allocate("broker")
    first.release(port)
    assert read_reservations(state) == [], "a cooling port is held by nobody"
    (cooling,) = read_reservations(state, include_released=True)
    assert cooling.port == port
    assert cooling.released is not None
    other_run = PortAllocator(_ident("gw0", "22222222"), base=base, block_size=10, state_dir=state)
    assert other_run.allocate("broker") == port + 1, "not handed out while cooling down"
    impatient = PortAllocator(
        _ident("gw0", "33333333"), base=base, block_size=10, state_dir=state, release_cooldown=0.0
    )
    assert impatient.allocate("broker") == port, "reclaimed once the cool-down is over"
