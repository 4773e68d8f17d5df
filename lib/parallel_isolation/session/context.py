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
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from parallel_isolation.project import Project, find_project
from parallel_isolation.services.catalog import ServiceCatalog, specs_from_project
from parallel_isolation.services.process import ProcessStartError, TestProcess, resolve_executable
from parallel_isolation.services.runner import Launcher, ServiceRunner
from parallel_isolation.services.spec import EnvNames, ServiceSpec
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

    def __init__(
        self, identity: Identity, settings: Settings, *, project: Project | None = None
    ) -> None:
        self.identity = identity
        self.settings = settings
        self._project = project
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
        self.process_serial = itertools.count(1)  # log file numbers of popen'd processes
        self._catalog: ServiceCatalog | None = None
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

    def broker_backend(self) -> str | BackendFactory:
        """The ``backend`` argument of this worker's :class:`TestMQTTBroker`."""
        if self.backend_name != "docker":
            return self.backend_name
        return self.docker_broker_backend()

    def docker_broker_backend(self, base: str | None = None) -> BackendFactory:
        """A docker broker backend factory bound to this worker's container manager.

        For a broker of a test's own in a container, whatever the run's
        backend; ``base`` names the container (default ``mqtt-broker``).
        """
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
            from parallel_isolation.images import project_image_check

            self._containers = DockerContainerManager(
                self.identity,
                artifacts=self.artifacts,
                events=self.events,
                publish_host=self.settings.publish_host,
                state_dir=self.allocator.state_dir,
                image_check=project_image_check(
                    self.events, self.project, record=self.artifacts.images_checked_path
                ),
            )
        return self._containers

    @property
    def project(self) -> Project:
        """The project's rootdir and ``[tool.parallel-isolation]`` table (images, services).

        The plugin passes the run's; a context made by hand finds it from the
        current directory, the way pytest finds its rootdir.
        """
        if self._project is None:
            self._project = find_project()
        return self._project

    @property
    def service_catalog(self) -> ServiceCatalog:
        """The services the project's pyproject.toml registers (read once)."""
        if self._catalog is None:
            self._catalog = ServiceCatalog(specs_from_project(self.project))
        return self._catalog

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
        """Stop everything this worker started; returns the errors met.

        Every step runs whatever the earlier ones met (an engine gone, a full
        disk): what can be torn down is.  Events the disk refused are among
        the errors, naming the file.
        """
        errors = _run_cleanups(self._cleanups)
        steps: list[tuple[str, Callable[[], list[str] | None]]] = [
            ("cross-talk spy", self._stop_spy),
            ("broker", self._stop_broker),
            ("docker objects", self._close_containers),
            ("port reservations", self.allocator.release_all),
        ]
        for label, step in steps:
            try:
                errors.extend(step() or [])
            except Exception as error:  # noqa: BLE001 - keep tearing down, report all
                errors.append(f"{label}: {error}")
                log.warning("closing %s failed: %s", label, error)
        self.events.emit("worker_finished", errors=errors)
        return [*errors, *self.events.problems()]

    def _stop_spy(self) -> None:
        spy_, self._spy = self._spy, None
        if spy_ is not None:
            spy_.stop()

    def _stop_broker(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            broker.stop()

    def _close_containers(self) -> list[str]:
        containers, self._containers = self._containers, None
        return [] if containers is None else containers.close()


class ParallelTestContext:
    """Per-test view: the test's namespace, clients and ports.

    Everything acquired through it (clients, ports, registered cleanups) is
    released by :meth:`close`, which the fixture calls at teardown.
    """

    __test__ = False

    def __init__(
        self, worker: WorkerContext, nodeid: str, *, services: Iterable[ServiceSpec] = ()
    ) -> None:
        self.worker = worker
        self.nodeid = nodeid
        self.namespace = worker.namespace.for_test(nodeid)
        self._clients: list[NamespacedClient] = []
        self._ports: list[int] = []
        self._cleanups: list[tuple[str, Cleanup]] = []
        self._services: ServiceRunner | None = None
        self._extra_services = tuple(services)
        self._catalog: ServiceCatalog | None = None
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

    @property
    def rootdir(self) -> Path:
        """The project's rootdir (relative service ``cwd`` values start there)."""
        return self.worker.project.rootdir

    def service_values(self, service: str, *, in_container: bool = False) -> dict[str, str]:
        """What a service of this test is told: ``host``, ``port``, ``url``, ``prefix``,
        ``client_id`` (a new one per call), ``name``, ``python`` and ``rootdir``.

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
        return {
            "host": str(host),
            "port": str(port),
            "url": f"mqtt://{host}:{port}",
            "prefix": self.namespace.prefix,
            "client_id": self.client_id(service),
            "name": service,
            "python": sys.executable,
            "rootdir": str(self.rootdir),
        }

    def service_env(
        self,
        service: str,
        *,
        in_container: bool = False,
        names: EnvNames | None = None,
        **extra: Any,
    ) -> dict[str, str]:
        """Environment of a service for this test: the broker and namespace, plus ``extra``.

        By default ``MQTT_BROKER``, ``MQTT_PORT``, ``TOPIC_PREFIX``,
        ``MQTT_CLIENT_ID`` and ``SERVICE_NAME``; ``names`` (an
        :class:`~parallel_isolation.services.spec.EnvNames`) chooses others.
        """
        values = self.service_values(service, in_container=in_container)
        env = (names or EnvNames()).apply(values)
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
            self._services = ServiceRunner(
                self, catalog=self.service_catalog, launcher=self.worker.service_launcher()
            )
        return self._services

    @property
    def service_catalog(self) -> ServiceCatalog:
        """The services this test can start by name: the project's and the fixture's."""
        if self._catalog is None:
            self._catalog = self.worker.service_catalog.with_specs(self._extra_services)
        return self._catalog

    def popen(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        grace: float = 5.0,
    ) -> TestProcess:
        """Start ``argv`` as this test's own process, with the toolkit's guarantees.

        It carries the owner markers (validate and cleanup-orphans see it),
        dies with its worker, logs stdout and stderr to ``<logs>/<name>-NNN.log``
        and is stopped at teardown (SIGTERM, ``grace`` seconds, SIGKILL).
        ``env`` is added to this process's environment (or replaces it when
        ``inherit_env`` is false); ``name`` defaults to the program's name.
        """
        args = [os.fspath(arg) for arg in argv]
        if not args:
            msg = "popen: argv is empty; give the program to run as its first element"
            raise ProcessStartError(msg)
        label = name or Path(args[0]).name
        where = Path(cwd) if cwd is not None else None
        full_env = {**(os.environ if inherit_env else {}), **(env or {})}
        full_env.update(ownership.marker_env(self.identity, f"process:{label}"))
        owner = f"process {label!r} of {self.nodeid}"
        program = resolve_executable(args[0], cwd=where, env=full_env, owner=owner)
        serial = next(self.worker.process_serial)
        log_path = self.artifacts.log_path(f"{label}-{serial:03d}.log")
        process = TestProcess(
            label, [program, *args[1:]], log_path=log_path, env=full_env, cwd=where, grace=grace
        ).start()
        events = self.worker.events
        events.emit(
            "process_started",
            test=self.nodeid,
            name=label,
            pid=process.pid,
            argv=process.argv,
            log=str(log_path),
        )

        def stop() -> None:
            code = process.stop()
            events.emit("process_stopped", test=self.nodeid, name=label, exit_code=code)

        self.add_cleanup(f"stop {process.describe()}", stop)
        return process

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
            client.loop_stop()  # NamespacedClient's: safe when the thread ends at once
        self._clients.clear()
        for port in self._ports:
            self.worker.allocator.release(port)
        self._ports.clear()
        return errors
