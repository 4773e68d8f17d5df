"""The ``docker`` broker backend: mosquitto in a container on the worker's network."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from parallel_isolation.containers.engine import ContainerError, poll_pause
from parallel_isolation.containers.manager import DockerContainerManager, ManagedContainer
from parallel_isolation.identity import Identity
from parallel_isolation.settings import DEFAULT_BROKER_IMAGE

__all__ = ["BROKER_BASE", "BROKER_INNER_PORT", "DockerBrokerBackend", "await_listening"]

BROKER_BASE = "mqtt-broker"
BROKER_INNER_PORT = 1883


class DockerBrokerBackend:
    """mosquitto in a container on the worker's network.

    Reachable from the host on ``publish_host:<allocated port>`` and from the
    worker's containers as ``mqtt-broker-{worker}-{run8}:1883``.  Every launch
    creates a fresh container on the same name and port; stop removes it after
    saving its logs.
    """

    name = "docker"
    role = "broker"

    def __init__(
        self,
        *,
        identity: Identity,
        workdir: Path,
        log_path: Path,
        manager: DockerContainerManager,
        image: str = DEFAULT_BROKER_IMAGE,
        base: str = BROKER_BASE,
        listen_timeout: float = 15.0,
    ) -> None:
        self.identity = identity
        self.workdir = workdir
        self.manager = manager
        self.image = image
        self.container_name = manager.container_name(base)
        self.log_path = manager.artifacts.log_path(f"{self.container_name}.log")
        self.listen_timeout = listen_timeout
        self.port: int | None = None
        self._container: ManagedContainer | None = None

    @property
    def host(self) -> str:
        return self.manager.publish_host

    @property
    def container_address(self) -> tuple[str, int]:
        """(host, port) of the broker as seen from containers on the worker's network."""
        return self.container_name, BROKER_INNER_PORT

    @property
    def container(self) -> ManagedContainer | None:
        return self._container

    @property
    def network_name(self) -> str:
        return self.manager.network_name

    def launch(self, port: int) -> None:
        self.manager.ensure_images([self.image])
        if self._container is not None and not self._container.removed:
            self.manager.remove(self._container, grace=0.5, reason="relaunch")
        self.port = port
        self._container = self.manager.run(
            self.container_name,
            self.image,
            role=self.role,
            ports={BROKER_INNER_PORT: port},
            check_image=False,
            # mosquitto handles SIGTERM itself and starts no children: as the
            # container's PID 1 it needs no init in front (one process less per start).
            init=False,
        )
        self._await_listening(self._container)

    def _await_listening(self, container: ManagedContainer) -> None:
        """Until mosquitto says it runs (Docker's proxy accepts before it listens).

        A container that exits returns at once: the caller's readiness check
        then reports the crash with the log tail.  The container's log stream
        wakes this wait when the line arrives; polling (which asks again after
        a failed engine call) is the fallback for a container without one.
        """
        follower = container.follower
        if follower is not None:
            follower.wait_for(" running", self.listen_timeout)
            if follower.error is None:
                return
        await_listening(container, self.listen_timeout)

    def is_running(self) -> bool:
        return self._container is not None and self._container.is_running()

    def stop(self, grace: float) -> None:
        if self._container is not None:
            self.manager.remove(self._container, grace=grace)

    def kill(self) -> None:
        if self._container is not None:
            self._container.kill()

    def log_tail(self, lines: int = 20) -> str:
        if self._container is None:
            return ""
        return self._container.log_tail(lines)

    def describe(self) -> str:
        short = self._container.short_id if self._container is not None else "-"
        return (
            f"docker broker {self.container_name} ({short}) on {self.host}:{self.port} -> "
            f"{BROKER_INNER_PORT}, network {self.network_name} (log {self.log_path})"
        )


class _Watched(Protocol):
    def logs(self, tail: int | None = None) -> str: ...

    def is_running(self) -> bool: ...


def await_listening(container: _Watched, timeout: float) -> None:
    """Until mosquitto says it runs, the container exits, or ``timeout`` passes.

    Docker's proxy accepts connections before mosquitto listens, so the log
    line is what counts.  An engine error on one poll (a busy daemon) is not
    the end: the next poll asks again, and after ``timeout`` the caller's
    readiness check reports what is wrong.
    """
    deadline = time.monotonic() + timeout
    pause = 0.01
    while time.monotonic() < deadline:
        try:
            if " running" in container.logs(tail=20) or not container.is_running():
                return
        except ContainerError:
            pass  # this poll failed; the deadline bounds the retries
        poll_pause(pause)
        pause = min(pause * 1.5, 0.05)  # spare the engine when many workers start
