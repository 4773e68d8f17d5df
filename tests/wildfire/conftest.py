"""Fixtures for the wildfire service tests.

The broker, the per-test topic namespace, the namespaced ``mqtt_client`` and
``parallel_test_context`` come from the isolation plugin (``parallel_isolation``).
This file adds what only these tests need: in-process services that stop at
teardown, ``python -m`` child processes that are always reaped, and the one
named polling helper (:func:`wait_until`) for conditions that no message
announces.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from wildfire.common import MqttService

S = TypeVar("S", bound=MqttService)

FAST_HEALTH = "0.2"


def poll_until(condition: Callable[[], object], *, timeout: float = 5.0, what: str = "") -> None:
    """Poll ``condition`` every 10 ms until it is truthy; fail after ``timeout``.

    Only for conditions no message announces (a counter, a log record, a
    thread ending).  Anything visible on the broker is waited for with
    ``mqtt_client.wait_for`` instead.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout:.1f} s: {what or condition!r}")
        pause.wait(0.01)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """``wait_until(condition, timeout=5.0, what="")``: see :func:`poll_until`."""
    return poll_until


class ServiceStarter(Protocol):
    def __call__(
        self, cls: type[S], *, prefix: str | None = None, ready: bool = True, **knobs: Any
    ) -> S: ...


@pytest.fixture
def service_env(parallel_test_context: Any) -> Callable[..., dict[str, str]]:
    """``service_env(name, **knobs)``: the test's env for a service, fast health."""

    def build(name: str, **knobs: Any) -> dict[str, str]:
        knobs.setdefault("HEALTH_INTERVAL", FAST_HEALTH)
        knobs.setdefault("RECONNECT_MIN_DELAY", 1)
        return dict(parallel_test_context.service_env(name, **knobs))

    return build


@pytest.fixture
def start_service(service_env: Callable[..., dict[str, str]]) -> Iterator[ServiceStarter]:
    """Start in-process services in this test's namespace; stop them at teardown.

    ``prefix`` overrides TOPIC_PREFIX (e.g. a sub-namespace); ``ready=False``
    skips waiting for the broker's acknowledgement of the subscriptions.
    """
    started: list[MqttService] = []

    def start(
        cls: type[S], *, prefix: str | None = None, ready: bool = True, **knobs: Any
    ) -> S:
        env = service_env(cls.SERVICE_NAME, **knobs)
        if prefix is not None:
            env["TOPIC_PREFIX"] = prefix
        service = cls(cls.CONFIG_CLASS.from_env(env))
        started.append(service)
        service.start()
        if ready and not service.wait_ready(10.0):
            pytest.fail(f"{cls.SERVICE_NAME} did not come online within 10 s ({env})")
        return service

    yield start
    for service in reversed(started):
        service.stop()


@dataclass
class ServiceProcess:
    """A ``python -m wildfire.<module>`` child and its captured stderr."""

    module: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 2.0) -> tuple[int, float]:
        """SIGTERM; return (exit status, seconds until exit)."""
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            tail = self.log()[-2000:]
            pytest.fail(f"{self.module} ignored SIGTERM for {timeout} s; log:\n{tail}")
        return code, time.monotonic() - began


@pytest.fixture
def spawn_service(
    service_env: Callable[..., dict[str, str]], tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    """Run ``python -m wildfire.<module>`` with the test's env; killed at teardown."""
    children: list[ServiceProcess] = []

    def spawn(module: str, *, env: dict[str, str] | None = None, **knobs: Any) -> ServiceProcess:
        full_env = {**os.environ, **(env if env is not None else service_env(module, **knobs))}
        log_path = tmp_path / f"{module}-{len(children)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"wildfire.{module}"],
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        child = ServiceProcess(module, proc, log_path)
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(5)


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A 127.0.0.1 port held bound but not listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture
def wildfire_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog capturing every wildfire logger from DEBUG up."""
    caplog.set_level(logging.DEBUG, logger="wildfire")
    return caplog


def log_lines(caplog: pytest.LogCaptureFixture, text: str, level: int = 0) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if text in r.getMessage() and r.levelno >= level
    ]


@pytest.fixture
def find_log() -> Callable[..., list[str]]:
    """``find_log(caplog, text, level=0)``: captured messages containing ``text``."""
    return log_lines
