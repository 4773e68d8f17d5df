"""ParallelTestContext: everything a test needs to stay out of its siblings' way.

:class:`WorkerContext` holds one worker's resources for the whole session
(identity, settings, port allocator, event log, broker).  Each test gets a
:class:`ParallelTestContext` on top of it with its own topic namespace, its
own clients and ports, all released when the test ends.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parallel_isolation import naming, ownership
from parallel_isolation.artifacts import EventLog, RunArtifacts
from parallel_isolation.host.locks import ResourceLocks
from parallel_isolation.host.ports import PortAllocator
from parallel_isolation.identity import Identity
from parallel_isolation.mqtt import spy
from parallel_isolation.mqtt.brokers import BackendFactory, TestMQTTBroker, resolve_backend_name
from parallel_isolation.mqtt.client import NamespacedClient, connect_client
from parallel_isolation.mqtt.spy import CrossTalkSpy
from parallel_isolation.mqtt.topics import TopicNamespace
from parallel_isolation.services.runner import Launcher, ServiceRunner
from parallel_isolation.settings import Settings

if TYPE_CHECKING:
    # The Docker SDK is imported only on the docker backend (it costs every worker CPU).
    from parallel_isolation.containers.manager import DockerContainerManager

__all__ = ["ParallelTestContext", "WorkerContext"]

log = logging.getLogger(__name__)
Cleanup = Callable[[], None]


def _run_cleanups(cleanups: list[tuple[str, Cleanup]]) -> list[str]:
    """Run (last added first) and forget ``cleanups``; keep going past failures."""
    errors: list[str] = []
    for label, cleanup in reversed(cleanups):
        try:
            cleanup()
        except Exception as error:  # noqa: BLE001 - keep cleaning, report all
            errors.append(f"{label}: {error}")
            log.warning("cleanup %s failed: %s", label, error)
    cleanups.clear()
    return errors


def probe_host_for(settings: Settings) -> str | None:
    """Where the allocator's bind probe can see port conflicts.

    Locally that is 127.0.0.1.  With the Docker backend against a remote
    engine (``DOCKER_HOST`` over tcp or ssh) the ports are published on the
    engine's host, which a local bind cannot probe: the allocator then relies
    on the reservation files and on retrying Docker's "port is already
    allocated".
    """
    engine = os.environ.get("DOCKER_HOST", "")
    remote = settings.backend == "docker" and engine.startswith(("tcp://", "ssh://"))
    if remote or settings.publish_host not in {"127.0.0.1", "localhost"}:
        return None
    return "127.0.0.1"


class WorkerContext:
    """One worker's session-wide resources.  Create once per process."""

    def __init__(self, identity: Identity, settings: Settings) -> None:
        self.identity = identity
        self.settings = settings
        self.artifacts = RunArtifacts(settings.artifacts_root, identity)
        self.events: EventLog = self.artifacts.event_log()
        self.allocator = PortAllocator(
            identity,
            base=settings.port_base,
            block_size=settings.block_size,
            state_dir=settings.state_path,
            events=self.events,
            probe_host=probe_host_for(settings),
        )
        self.namespace = TopicNamespace.for_worker(identity)
        self.locks = ResourceLocks(identity, state_dir=settings.state_path, events=self.events)
        self.backend_name = resolve_backend_name(settings.backend)
        self._broker: TestMQTTBroker | None = None
        self._spy: CrossTalkSpy | None = None
        self._containers: DockerContainerManager | None = None
        self._serial = itertools.count(1)
        self._cleanups: list[tuple[str, Cleanup]] = []
        self.events.emit(
            "worker_started",
            run=identity.run_id,
            pid=identity.owner.pid,
            owner_start=identity.owner.start_time,
            host=identity.owner.host,
            backend=self.backend_name,
            namespace=self.namespace.prefix,
        )

    # -- names --------------------------------------------------------

    def container_name(self, service: str) -> str:
        return naming.resource_name(service, self.identity)

    def network_name(self, base: str = "isolation-net") -> str:
        return naming.resource_name(base, self.identity)

    def client_id(self, base: str = "client") -> str:
        return naming.client_id(base, self.identity, next(self._serial))

    # -- broker -------------------------------------------------------

    @property
    def broker(self) -> TestMQTTBroker:
        """The worker's broker, started on first use."""
        if self._broker is None:
            broker = TestMQTTBroker(
                identity=self.identity,
                allocator=self.allocator,
                workdir=self.artifacts.logs_dir,
                backend=self.broker_backend(),
                events=self.events,
            )
            broker.start()
            self._broker = broker
            self._watch(broker)
        return self._broker

    def broker_backend(self, base: str | None = None) -> str | BackendFactory:
        """The ``backend`` argument of a :class:`TestMQTTBroker` of this worker's kind.

        On the docker backend that is a factory bound to the worker's container
        manager (``base`` names the container, default ``mqtt-broker``); on the
        others the backend's name.
        """
        if self.backend_name != "docker":
            return self.backend_name
        from parallel_isolation.containers.broker import DockerBrokerBackend

        options: dict[str, Any] = {"manager": self.containers}
        if base is not None:
            options["base"] = base
        return functools.partial(DockerBrokerBackend, **options)

    def _watch(self, broker: TestMQTTBroker) -> None:
        """Start the cross-talk spy on the worker's (new) broker."""
        if self._spy is not None:
            self._spy.stop()
            self._spy = None
        if broker.port is None:
            return
        identity = self.identity
        self._spy = spy.watch(
            host=broker.host,
            port=broker.port,
            client_id=f"isolation-spy-{identity.worker_id}-{identity.run_id}",
            allowed=(self.namespace.prefix,),
            out_path=self.artifacts.crosstalk_path,
            events=self.events,
            thread_name=f"{ownership.SESSION_THREAD_PREFIX}-spy-{identity.worker_id}",
        )

    def flush_crosstalk(self, timeout: float = 2.0) -> bool:
        """Wait until the spy has seen everything published before now (False: no spy)."""
        return self._spy is not None and self._spy.flush(timeout)

    # -- docker -------------------------------------------------------

    @property
    def containers(self) -> DockerContainerManager:
        """The worker's Docker container manager, created on first use, closed with the worker."""
        if self._containers is None or self._containers.closed:
            from parallel_isolation.containers.manager import DockerContainerManager
            from parallel_isolation.images.core import project_image_check

            self._containers = DockerContainerManager(
                self.identity,
                artifacts=self.artifacts,
                events=self.events,
                publish_host=self.settings.publish_host,
                state_dir=self.allocator.state_dir,
                image_check=project_image_check(self.events),
            )
        return self._containers

    def service_launcher(self) -> Launcher | None:
        """How the worker's services start: containers on the docker backend, else processes."""
        if self.backend_name != "docker":
            return None
        from parallel_isolation.containers.services import ContainerLauncher

        return ContainerLauncher(self.containers)

    def recover_broker(self) -> str | None:
        """After a test: if the broker died unexpectedly, restart it on its port.

        Returns a report of the crash (with the broker's last log lines) for
        the test during which it happened, or None when all is well.
        """
        broker = self._broker
        if broker is None or not broker.crashed():
            return None
        report = f"the worker's broker crashed during this test:\n{broker.log_tail(15)}"
        self.events.emit("broker_crashed", port=broker.port, log_tail=broker.log_tail(10))
        try:
            broker.resume()
        except Exception as error:  # noqa: BLE001 - reported below, next test will retry
            report += f"\nand could not be restarted: {error}"
            self._broker = None
            broker.stop()
        return report

    def add_cleanup(self, label: str, cleanup: Cleanup) -> None:
        """Run ``cleanup`` at session end (last added, first run)."""
        self._cleanups.append((label, cleanup))

    def close(self) -> list[str]:
        """Stop everything this worker started; returns the errors met."""
        errors = _run_cleanups(self._cleanups)
        if self._spy is not None:
            self._spy.stop()
            self._spy = None
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        if self._containers is not None:
            errors.extend(self._containers.close())
            self._containers = None
        self.allocator.release_all()
        self.events.emit("worker_finished", errors=errors)
        return errors


class ParallelTestContext:
    """Per-test view: the test's namespace, clients and ports.

    Everything acquired through it (clients, ports, registered cleanups) is
    released by :meth:`close`, which the fixture calls at teardown.
    """

    __test__ = False

    def __init__(self, worker: WorkerContext, nodeid: str) -> None:
        self.worker = worker
        self.nodeid = nodeid
        self.namespace = worker.namespace.for_test(nodeid)
        self._clients: list[NamespacedClient] = []
        self._ports: list[int] = []
        self._cleanups: list[tuple[str, Cleanup]] = []
        self._services: ServiceRunner | None = None
        worker.events.emit("test_namespace", test=nodeid, namespace=self.namespace.prefix)

    # -- identity and names --------------------------------------------

    @property
    def identity(self) -> Identity:
        return self.worker.identity

    @property
    def worker_id(self) -> str:
        return self.worker.identity.worker_id

    @property
    def run_id(self) -> str:
        return self.worker.identity.run_id

    @property
    def artifacts(self) -> RunArtifacts:
        return self.worker.artifacts

    @property
    def events(self) -> EventLog:
        return self.worker.events

    @property
    def logs_dir(self) -> Path:
        return self.worker.artifacts.logs_dir

    def container_name(self, service: str) -> str:
        return self.worker.container_name(service)

    def network_name(self, base: str = "isolation-net") -> str:
        return self.worker.network_name(base)

    def client_id(self, base: str = "client") -> str:
        return self.worker.client_id(base)

    def labels(self, role: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return ownership.labels_for(self.identity, role, extra)

    # -- resources ------------------------------------------------------

    @property
    def broker(self) -> TestMQTTBroker:
        return self.worker.broker

    def port(self, purpose: str = "test") -> int:
        """A port reserved for this test, released at teardown."""
        port = self.worker.allocator.allocate(f"{purpose} ({self.nodeid})")
        self._ports.append(port)
        return port

    def service_env(
        self, service: str, *, in_container: bool = False, **extra: Any
    ) -> dict[str, str]:
        """Environment of a system-under-test service for this test.

        ``in_container`` gives the addresses a container on the worker's
        network uses (the broker's container name and its inner port).
        """
        broker = self.broker
        if in_container:
            inner = getattr(broker.backend, "container_address", None)
            if inner is None:
                msg = f"the {broker.backend_name} broker is not reachable from containers"
                raise RuntimeError(msg)
            host, port = inner
        else:
            host, port = broker.host, broker.port
        env = {
            "MQTT_BROKER": str(host),
            "MQTT_PORT": str(port),
            "TOPIC_PREFIX": self.namespace.prefix,
            "MQTT_CLIENT_ID": self.client_id(service),
            "SERVICE_NAME": service,
            "LOG_LEVEL": "INFO",
        }
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def mqtt_client(
        self,
        name: str = "client",
        *,
        namespace: TopicNamespace | None = None,
        will: tuple[str, bytes | str, int, bool] | None = None,
        timeout: float = 10.0,
    ) -> NamespacedClient:
        """A connected client in this test's namespace, disconnected at teardown."""
        broker = self.broker
        assert broker.port is not None
        client = connect_client(
            broker.host,
            broker.port,
            client_id=self.client_id(name),
            namespace=namespace or self.namespace,
            will=will,
            timeout=timeout,
        )
        self._clients.append(client)
        return client

    def exclusive(
        self, resource: str, *, timeout: float = 120.0
    ) -> contextlib.AbstractContextManager[float]:
        """Hold a single shared resource (e.g. ``"gpio"``) exclusively across all workers."""
        return self.worker.locks.hold(resource, timeout=timeout, holder=self.nodeid)

    @property
    def services(self) -> ServiceRunner:
        """Starts the system under test: containers on the docker backend, else processes."""
        if self._services is None:
            self._services = ServiceRunner(self, launcher=self.worker.service_launcher())
        return self._services

    def add_cleanup(self, label: str, cleanup: Cleanup) -> None:
        """Run ``cleanup`` at the end of this test (last added, first run)."""
        self._cleanups.append((label, cleanup))

    def close(self) -> list[str]:
        errors: list[str] = []
        if self._services is not None:
            errors.extend(self._services.stop_all())
            self._services = None
        errors.extend(_run_cleanups(self._cleanups))
        for client in self._clients:
            client.disconnect()
            client.loop_stop()
        self._clients.clear()
        for port in self._ports:
            self.worker.allocator.release(port)
        self._ports.clear()
        return errors
