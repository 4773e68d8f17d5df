"""Every listener a broker opens is on 127.0.0.1 only; root's process broker runs unprivileged."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import psutil
import pytest

from parallel_isolation.mqtt.brokers import ProcessBackend, TestMQTTBroker, find_mosquitto
from parallel_isolation.session.context import WorkerContext

LOCAL_BACKENDS = ["process", "embedded"] if find_mosquitto() else ["embedded"]


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_broker_listens_on_loopback_only(
    backend: str, isolation_worker: WorkerContext, tmp_path: Path
) -> None:
    with TestMQTTBroker(
        identity=isolation_worker.identity,
        allocator=isolation_worker.allocator,
        workdir=tmp_path / "broker",
        backend=backend,
        name="listener-test-broker",
    ) as broker:
        pid = broker.backend.pid  # type: ignore[attr-defined]
        process = psutil.Process(pid)
        listening = [
            c
            for p in (process, *process.children(recursive=True))
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert [c.laddr.port for c in listening] == [broker.port]
        assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


@pytest.mark.skipif(find_mosquitto() is None, reason="the process backend needs mosquitto")
@pytest.mark.skipif(os.geteuid() != 0, reason="only root's broker switches users")
def test_roots_process_broker_runs_as_an_unprivileged_user(
    isolation_worker: WorkerContext, tmp_path: Path
) -> None:
    expected = next(u for u in ProcessBackend.USERS if _exists(u))
    with TestMQTTBroker(
        identity=isolation_worker.identity,
        allocator=isolation_worker.allocator,
        workdir=tmp_path / "broker",
        backend="process",
        name="unprivileged-broker",
    ) as broker:
        process = psutil.Process(broker.backend.pid)  # type: ignore[attr-defined]
        assert process.uids().real == process.uids().effective == pwd.getpwnam(expected).pw_uid
        assert process.cmdline()[-2:] == ["-c", "/dev/stdin"]
        config = next((tmp_path / "broker").glob("mosquitto-*.conf")).read_text()
        assert "user root" not in config
        assert f"listener {broker.port} 127.0.0.1" in config


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
