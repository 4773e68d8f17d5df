"""Start the system under test as child processes or containers, one API for both.

A :class:`ServiceSpec` says how to run a service (a Python module for the
process mode, an image and command for the container mode) and how to tell
it is ready (by default its retained ``system/<name>/lwt`` "online", published
*after* the start).  :class:`ServiceRunner` starts specs with the test's
``service_env()``, captures their logs into the run's artifacts, and stops
everything it started at teardown.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from parallel_isolation.host.proc import ChildProcess, tail
from parallel_isolation.mqtt.client import MessageTimeout, NamespacedClient
from parallel_isolation.ownership import marker_env

if TYPE_CHECKING:
    from parallel_isolation.artifacts import EventLog, RunArtifacts
    from parallel_isolation.identity import Identity

__all__ = [
    "WILDFIRE_SERVICES",
    "Launcher",
    "RunningService",
    "ServiceError",
    "ServiceHost",
    "ServiceRunner",
    "ServiceSpec",
]


class ServiceError(RuntimeError):
    """A service did not start, or stopped badly; the message carries its log tail."""


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service of the system under test."""

    name: str
    module: str
    image: str = "parallel-isolation/wildfire-services:latest"
    ready_topic: str = ""
    ready_payload: bytes = b"online"
    defaults: dict[str, str] = field(default_factory=dict)

    @property
    def container_base(self) -> str:
        return self.name.replace("_", "-")

    @property
    def command(self) -> list[str]:
        return ["python3", "-m", self.module]

    @property
    def readiness_topic(self) -> str:
        return self.ready_topic or f"system/{self.name}/lwt"


def _wildfire(name: str) -> ServiceSpec:
    return ServiceSpec(name=name, module=f"wildfire.{name}")


WILDFIRE_SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in map(
        _wildfire, ["camera_detector", "fire_consensus", "gpio_trigger", "camera_simulator"]
    )
}


@runtime_checkable
class RunningService(Protocol):
    """A started service, whatever runs it."""

    spec: ServiceSpec
    env: dict[str, str]

    @property
    def mode(self) -> str: ...

    def is_running(self) -> bool: ...

    def stop(self, grace: float = 5.0) -> int | None: ...

    def kill(self) -> None: ...

    def log_text(self) -> str: ...

    def describe(self) -> str: ...


class ProcessService:
    """A service as a child process (``python -m <module>``)."""

    mode = "process"

    def __init__(
        self, spec: ServiceSpec, env: dict[str, str], log_path: Path, markers: dict[str, str]
    ) -> None:
        self.spec = spec
        self.env = env
        self.log_path = log_path
        full_env = {**os.environ, **markers, **env, "PYTHONUNBUFFERED": "1"}
        self._child = ChildProcess(
            [sys.executable, "-m", spec.module], log_path=log_path, env=full_env
        )

    def start(self) -> None:
        self._child.start()

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def is_running(self) -> bool:
        return self._child.is_running()

    def stop(self, grace: float = 5.0) -> int | None:
        return self._child.stop(grace=grace)

    def kill(self) -> None:
        self._child.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log_path, lines)

    def describe(self) -> str:
        return f"{self.spec.name} (process pid {self.pid}, log {self.log_path})"


class ServiceHost(Protocol):
    """What a :class:`ServiceRunner` needs of the test it starts services for.

    :class:`~parallel_isolation.session.context.ParallelTestContext` is one.
    """

    nodeid: str

    @property
    def identity(self) -> Identity: ...

    @property
    def artifacts(self) -> RunArtifacts: ...

    @property
    def events(self) -> EventLog: ...

    def mqtt_client(self, name: str = "client") -> NamespacedClient: ...

    def service_env(
        self, service: str, *, in_container: bool = False, **extra: Any
    ) -> dict[str, str]: ...


class Launcher(Protocol):
    """Starts a service some other way than as a child process (e.g. as a container)."""

    def __call__(self, spec: ServiceSpec, env: dict[str, str], *, test: str) -> RunningService: ...


class ServiceRunner:
    """Starts services for one test; stops all of them at teardown.

    Without a ``launcher`` services run as child processes (``mode``
    ``process``); with one (the worker's container launcher on the Docker
    backend) they run through it (``mode`` ``container``).
    """

    def __init__(self, context: ServiceHost, *, launcher: Launcher | None = None) -> None:
        self.context = context
        self.launcher = launcher
        self.mode = "process" if launcher is None else "container"
        self.started: list[RunningService] = []
        self._watcher: NamespacedClient | None = None
        self._serial = 0

    @property
    def watcher(self) -> NamespacedClient:
        """A client in the test's namespace that sees every service's lwt and health."""
        if self._watcher is None:
            watcher = self.context.mqtt_client("service-watch")
            watcher.subscribe([("system/+/lwt", 1), ("system/+/health", 0)])
            self._watcher = watcher
        return self._watcher

    def spec(self, service: str | ServiceSpec) -> ServiceSpec:
        if isinstance(service, ServiceSpec):
            return service
        try:
            return WILDFIRE_SERVICES[service]
        except KeyError:
            known = ", ".join(sorted(WILDFIRE_SERVICES))
            msg = f"unknown service {service!r}; known: {known} (or pass a ServiceSpec)"
            raise ServiceError(msg) from None

    def start(
        self,
        service: str | ServiceSpec,
        *,
        wait: bool = True,
        timeout: float = 20.0,
        **env: Any,
    ) -> RunningService:
        """Start ``service`` with the test's environment plus ``env``; wait until online."""
        spec = self.spec(service)
        return self._start(spec, {**spec.defaults, **env}, wait=wait, timeout=timeout)

    def _start(
        self, spec: ServiceSpec, extra: dict[str, Any], *, wait: bool, timeout: float
    ) -> RunningService:
        watcher = self.watcher
        since = time.monotonic()
        service_env = self.context.service_env(
            spec.name, in_container=self.mode == "container", **extra
        )
        running = self._launch(spec, service_env)
        self.started.append(running)
        self.context.events.emit(
            "service_started",
            test=self.context.nodeid,
            service=spec.name,
            mode=self.mode,
            detail=running.describe(),
        )
        if wait:
            self.wait_online(running, since=since, timeout=timeout, watcher=watcher)
            self.context.events.emit(
                "service_online",
                test=self.context.nodeid,
                service=spec.name,
                ready_s=round(time.monotonic() - since, 4),
            )
        return running

    def _launch(self, spec: ServiceSpec, env: dict[str, str]) -> RunningService:
        if self.launcher is not None:
            return self.launcher(spec, env, test=self.context.nodeid)
        self._serial += 1
        log_path = self.context.artifacts.log_path(f"{spec.name}-{self._serial:03d}.log")
        markers = marker_env(self.context.identity, f"service:{spec.name}")
        service = ProcessService(spec, env, log_path, markers)
        service.start()
        return service

    def wait_online(
        self,
        running: RunningService,
        *,
        since: float,
        timeout: float = 20.0,
        watcher: NamespacedClient | None = None,
    ) -> None:
        """Wait for the service's ready message published after ``since``."""
        spec = running.spec
        client = watcher or self.watcher
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                client.wait_for(
                    spec.readiness_topic,
                    lambda m: m.payload == spec.ready_payload,
                    timeout=min(0.5, max(remaining, 0.0)),
                    since=since,
                )
                return
            except MessageTimeout:
                if not running.is_running():
                    msg = f"{running.describe()} exited before it came online; its log:\n{_tail_text(running)}"
                    raise ServiceError(msg) from None
                if remaining <= 0:
                    msg = (
                        f"{running.describe()} not online on {spec.readiness_topic!r} within {timeout:.1f} s; "
                        f"its log:\n{_tail_text(running)}"
                    )
                    raise ServiceError(msg) from None

    def restart(self, running: RunningService, *, timeout: float = 20.0) -> RunningService:
        """Stop ``running`` and start the same service with the same environment."""
        running.stop()
        self.started.remove(running)
        derived = {"MQTT_CLIENT_ID", "MQTT_BROKER", "MQTT_PORT", "TOPIC_PREFIX", "SERVICE_NAME"}
        extra: dict[str, Any] = {k: v for k, v in running.env.items() if k not in derived}
        return self._start(running.spec, extra, wait=True, timeout=timeout)

    def stop_all(self) -> list[str]:
        """Stop every service this runner started; returns problems met."""
        problems: list[str] = []
        for running in reversed(self.started):
            code = running.stop()
            self.context.events.emit(
                "service_stopped",
                test=self.context.nodeid,
                service=running.spec.name,
                exit_code=code,
            )
            if code not in (0, None, -15):
                problems.append(f"{running.describe()} exited with {code}")
        self.started.clear()
        return problems


def _tail_text(running: RunningService, lines: int = 25) -> str:
    text = running.log_text()
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"
