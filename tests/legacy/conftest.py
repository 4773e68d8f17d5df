"""Fixtures of the legacy integration suite: how it looked before isolation.

Everything here is deliberately parallel-unsafe, as the upstream suite was:
one broker on the fixed port 18833 (reused if something already listens
there), services with fixed MQTT client ids, bare topics.  The files pass when
run serially (``nox -s integration-legacy``); under ``-n 4`` they collide, and
that is what ``invoke migrate`` and ``invoke validate`` are shown on.

Not collected by default runs: ``testpaths`` names only tests/unit and
tests/integration.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

LEGACY_HOST = "localhost"
LEGACY_PORT = 18833
LOG_DIR = Path("/tmp/wildfire-legacy-logs")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LEGACY_HOST, port)) == 0


class LegacyBroker:
    """mosquitto on the fixed port; reuses a broker that is already there."""

    host = LEGACY_HOST
    port = LEGACY_PORT

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if _port_open(self.port):
            return  # "someone already started it" - the upstream shortcut
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = (LOG_DIR / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([binary, "-p", str(self.port), "-v"], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("legacy broker did not open port 18833")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def mqtt_broker():
    broker = LegacyBroker()
    broker.start()
    yield broker
    broker.stop()


class LegacyServices:
    """Services as child processes with fixed client ids on the fixed broker."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, module: str, client_id: str, **env: str) -> subprocess.Popen[bytes]:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        full_env = {
            **os.environ,
            "MQTT_BROKER": LEGACY_HOST,
            "MQTT_PORT": str(LEGACY_PORT),
            "MQTT_CLIENT_ID": client_id,
            **env,
        }
        log = (LOG_DIR / f"{client_id}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", module], env=full_env, stdout=log, stderr=log)
        self.procs[client_id] = proc
        time.sleep(1.0)  # give it time to connect
        return proc

    def stop(self, client_id: str) -> None:
        proc = self.procs.pop(client_id)
        proc.terminate()
        proc.wait(10)

    def stop_all(self) -> None:
        for client_id in list(self.procs):
            self.stop(client_id)


@pytest.fixture
def legacy_services(mqtt_broker):
    services = LegacyServices()
    yield services
    services.stop_all()
