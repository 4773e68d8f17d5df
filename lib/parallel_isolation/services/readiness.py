"""Waiting until a started service is ready, whichever way it says so.

Each :mod:`readiness strategy <parallel_isolation.services.spec>` becomes a
probe that waits a short while for its sign and answers yes or no; the runner
asks it again until the deadline, checking between asks that the service is
still running.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from parallel_isolation.mqtt.client import MessageTimeout, NamespacedClient
from parallel_isolation.services.spec import (
    CallableReady,
    LogReady,
    MqttReady,
    PortReady,
    Readiness,
)

__all__ = ["Probe", "make_probe"]


def _pause(seconds: float) -> None:
    threading.Event().wait(max(seconds, 0.0))


class Probe(Protocol):
    """One readiness sign: :meth:`wait` up to ``timeout`` seconds; True once it came."""

    def wait(self, timeout: float) -> bool: ...

    def detail(self) -> str:
        """What was seen last (for the error when the deadline passes), or ''."""
        ...


class _MqttProbe:
    def __init__(self, client: NamespacedClient, topic: str, payload: bytes | None, since: float):
        self.client = client
        self.topic = topic
        self.payload = payload
        self.since = since

    def wait(self, timeout: float) -> bool:
        try:
            self.client.wait_for(
                self.topic,
                lambda m: self.payload is None or m.payload == self.payload,
                timeout=timeout,
                since=self.since,
            )
        except MessageTimeout:
            return False
        return True

    def detail(self) -> str:
        seen = [m.payload for m in self.client.messages(self.topic) if m.received >= self.since]
        return f"messages seen on it since the start: {seen[-3:]!r}" if seen else ""


class _LogProbe:
    def __init__(self, service: Any, pattern: str) -> None:
        self.service = service
        self.pattern = re.compile(pattern)

    def wait(self, timeout: float) -> bool:
        if self.pattern.search(self.service.log_text()):
            return True
        _pause(min(timeout, 0.1))
        return False

    def detail(self) -> str:
        return ""


class _PortProbe:
    def __init__(self, address: Callable[[], str], port: int) -> None:
        self.address = address
        self.port = port
        self.last = ""

    def wait(self, timeout: float) -> bool:
        host = self.address()
        try:
            with socket.create_connection((host, self.port), timeout=max(min(timeout, 0.5), 0.05)):
                return True
        except OSError as error:
            self.last = f"the last attempt on {host}:{self.port}: {error}"
        _pause(min(timeout, 0.1))
        return False

    def detail(self) -> str:
        return self.last


class _CallProbe:
    def __init__(self, check: Callable[[Any], object], service: Any, interval: float) -> None:
        self.check = check
        self.service = service
        self.interval = interval
        self.last = ""

    def wait(self, timeout: float) -> bool:
        try:
            if self.check(self.service):
                return True
            self.last = "the check last returned false"
        except Exception as error:  # noqa: BLE001 - "not yet"; shown if time runs out
            self.last = f"the check last raised {type(error).__name__}: {error}"
        _pause(min(timeout, self.interval))
        return False

    def detail(self) -> str:
        return self.last


def make_probe(
    ready: Readiness,
    *,
    service: Any,
    name: str,
    watcher: Callable[[str], NamespacedClient],
    since: float,
    address: Callable[[], str],
    port: int | None,
) -> Probe:
    """The probe of ``ready`` for the started ``service``.

    ``watcher(topic)`` gives a client subscribed to ``topic`` (before the
    start); ``address()`` the host the service's ports are reached on; ``port``
    the port of a :class:`PortReady` (fixed, or the one reserved for it).
    """
    if isinstance(ready, MqttReady):
        topic = ready.topic.replace("{name}", name)
        return _MqttProbe(watcher(topic), topic, ready.expected(), since)
    if isinstance(ready, LogReady):
        return _LogProbe(service, ready.pattern)
    if isinstance(ready, PortReady):
        assert port is not None
        return _PortProbe(address, port)
    if isinstance(ready, CallableReady):
        return _CallProbe(ready.resolve(), service, ready.interval)
    msg = f"unknown readiness {ready!r}"
    raise TypeError(msg)
