"""Foreign occupants before the run: a mosquitto on 1883, listeners inside the workers' blocks."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from parallel_isolation.host.ports import read_reservations
from parallel_isolation.mqtt.brokers import find_mosquitto, wait_until_ready

from .conftest import SUITES, Project, cleanup, codes, findings, html_report, validate

# Fault tests run one at a time (`-p no:xdist`; an xdist_group would do once loadgroup
# works again on pytest 9, pytest-xdist#1386): a fault test's deliberate leaks must not
# reach another fault test's run through a reused port.
pytestmark = pytest.mark.slow

BLOCK = 100
WORKERS = 4


class ForeignMosquitto:
    """A mosquitto that is not ours: no markers, started and stopped by pid here."""

    def __init__(self, port: int, workdir: Path) -> None:
        binary = find_mosquitto()
        if binary is None:
            pytest.skip("mosquitto is not installed")
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / f"foreign-{port}.conf"
        config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        self.port = port
        self.log = (workdir / f"foreign-{port}.log").open("wb")
        env = {"PATH": "/usr/sbin:/usr/bin:/bin"}  # no ISOLATION_* markers
        self.proc = subprocess.Popen(
            [binary, "-c", str(config)], stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        wait_until_ready(
            "127.0.0.1",
            port,
            timeout=10,
            alive=lambda: self.proc.poll() is None,
            client_id="foreign",
        )

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_base() -> int:
    """A port base whose first ports of 4 blocks are free and unreserved right now."""
    reserved = {r.port for r in read_reservations()}
    for base in range(36000, 60000, 1000):
        wanted = [base + w * BLOCK + k for w in range(WORKERS) for k in range(4)]
        if not reserved.intersection(wanted) and all(_free(port) for port in wanted):
            return base
    pytest.skip("no port range with 4 free blocks found between 36000 and 60000")


@pytest.fixture
def base() -> int:
    return _pick_base()


@pytest.fixture
def occupants(tmp_path: Path, base: int) -> Iterator[tuple[list[int], list[ForeignMosquitto]]]:
    listeners: list[socket.socket] = []
    brokers: list[ForeignMosquitto] = []
    occupied: list[int] = []
    try:
        if _free(1883):
            brokers.append(ForeignMosquitto(1883, tmp_path / "foreign"))
        for worker in range(WORKERS):  # the first port of every block, and gw0's second
            for port in (base + worker * BLOCK, *((base + 1,) if worker == 0 else ())):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                sock.listen()
                listeners.append(sock)
                occupied.append(port)
        broker_port = base + 2 * BLOCK + 1  # gw2's second port: a foreign broker
        brokers.append(ForeignMosquitto(broker_port, tmp_path / "foreign"))
        occupied.append(broker_port)
        yield occupied, brokers
    finally:
        for sock in listeners:
            sock.close()
        for broker in brokers:
            broker.stop()


def test_run_passes_around_foreign_occupants(
    project_factory: Callable[[Path], Project],
    occupants: tuple[list[int], list[ForeignMosquitto]],
    base: int,
) -> None:
    occupied, brokers = occupants
    project = project_factory(SUITES / "realistic")
    run = project.run("-n", str(WORKERS), f"--isolation-port-base={base}")
    assert run.returncode == 0, run.stdout
    run_id = project.run_id()
    events = project.events(run_id)
    in_use = {e["port"]: e for e in events if e["kind"] == "port_in_use"}
    assert set(occupied) <= set(in_use), (
        f"retries visible for every occupied port: {sorted(in_use)}"
    )
    assert "mosquitto" in in_use[base + 2 * BLOCK + 1]["occupant"]
    brokers_at = {e["port"] for e in events if e["kind"] == "broker_started"}
    assert len(brokers_at) == 4
    assert not brokers_at & set(occupied)
    assert 1883 not in brokers_at
    assert all(broker.running() for broker in brokers), "nobody touched the foreign brokers"

    result = validate(project, run_id)
    html_report(project, run_id)
    assert result.code == 0, result.output
    assert {f["code"] for f in findings(result, "event.port-in-use")} == {"event.port-in-use"}
    assert not codes(result, "error")

    reaped = cleanup(project, "--run", run_id)
    assert reaped.code == 0
    assert all(broker.running() for broker in brokers)
    foreign = {broker.proc.pid for broker in brokers}
    assert not [
        d for d in reaped.data["decisions"] if any(str(pid) in d["name"] for pid in foreign)
    ]
