"""Start a project's services as child processes or containers, one API for both.

:class:`ServiceRunner` starts services by name from the project's
:class:`~parallel_isolation.services.catalog.ServiceCatalog` (or a
:class:`~parallel_isolation.services.spec.ServiceSpec` given directly) with
the test's broker and namespace in the variables the service reads, waits
until it is ready the way it says so, captures its log into the run's
artifacts, and stops everything it started at teardown.  A service that
cannot start, exits at once or is not ready in time is stopped and reported
with its log tail; nothing is left running.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from parallel_isolation.host.proc import ChildProcess, tail
from parallel_isolation.mqtt.client import NamespacedClient
from parallel_isolation.ownership import marker_env
from parallel_isolation.services.catalog import ServiceCatalog, UnknownServiceError
from parallel_isolation.services.process import (
    ProcessStartError,
    resolve_executable,
    wait_for_log,
)
from parallel_isolation.services.readiness import make_probe
from parallel_isolation.services.spec import (
    MqttReady,
    PortReady,
    ServiceConfigError,
    ServiceSpec,
)

if TYPE_CHECKING:
    from parallel_isolation.artifacts import EventLog, RunArtifacts
    from parallel_isolation.identity import Identity

__all__ = [
    "Launcher",
    "RunningService",
    "ServiceError",
    "ServiceHost",
    "ServiceRunner",
    "ServiceSpec",
]


class ServiceError(RuntimeError):
    """A service did not start, was not ready in time, or stopped badly.

    The message names the service, what went wrong, what to change, and
    carries its log tail.
    """


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

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str: ...

    def describe(self) -> str: ...


class ProcessService:
    """A service as a child process of the worker."""

    mode = "process"

    def __init__(
        self,
        spec: ServiceSpec,
        env: dict[str, str],
        argv: list[str],
        *,
        log_path: Path,
        full_env: dict[str, str],
        cwd: Path | None,
    ) -> None:
        self.spec = spec
        self.env = env
        self.argv = argv
        self.log_path = log_path
        self._child = ChildProcess(argv, log_path=log_path, env=full_env, cwd=cwd)

    def start(self) -> None:
        self._child.start()

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def exit_code(self) -> int | None:
        return self._child.returncode()

    def is_running(self) -> bool:
        return self._child.is_running()

    def address(self) -> str:
        """The host its ports are reached on."""
        return "127.0.0.1"

    def stop(self, grace: float = 5.0) -> int | None:
        return self._child.stop(grace=grace)

    def kill(self) -> None:
        self._child.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log_path, lines)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Its log once ``text`` is in it; :class:`TimeoutError` with the log's end
        when it is not within ``timeout`` seconds (or the service ended without it)."""
        return wait_for_log(self, text, timeout)

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

    @property
    def rootdir(self) -> Path: ...

    def mqtt_client(self, name: str = "client") -> NamespacedClient: ...

    def service_values(self, service: str, *, in_container: bool = False) -> dict[str, str]: ...

    def port(self, purpose: str = "test") -> int: ...


class Launcher(Protocol):
    """Starts a service some other way than as a child process (e.g. as a container)."""

    def __call__(
        self, spec: ServiceSpec, env: dict[str, str], *, test: str, command: list[str] | None
    ) -> RunningService: ...


class ServiceRunner:
    """Starts services for one test; stops all of them at teardown.

    Services are looked up by name in ``catalog``.  Without a ``launcher``
    every service runs as a child process; with one (the worker's container
    launcher on the Docker backend) a service that has an image runs through
    it as a container, and one without an image still runs as a process.
    """

    def __init__(
        self,
        context: ServiceHost,
        *,
        catalog: ServiceCatalog | None = None,
        launcher: Launcher | None = None,
    ) -> None:
        self.context = context
        self.catalog = catalog if catalog is not None else ServiceCatalog()
        self.launcher = launcher
        self.mode = "process" if launcher is None else "container"
        self.started: list[RunningService] = []
        self._watcher: NamespacedClient | None = None
        self._watched: set[str] = set()
        self._serial = 0

    @property
    def watcher(self) -> NamespacedClient:
        """A client in the test's namespace that sees every service's lwt and health."""
        if self._watcher is None:
            watcher = self.context.mqtt_client("service-watch")
            watcher.subscribe([("system/+/lwt", 1), ("system/+/health", 0)])
            self._watcher = watcher
            self._watched |= {"system/+/lwt", "system/+/health"}
        return self._watcher

    def _watch(self, topic: str) -> NamespacedClient:
        """The watcher, subscribed to ``topic`` (unless a filter it has covers it)."""
        watcher = self.watcher
        covered = topic in self._watched or (
            topic.startswith("system/") and topic.endswith("/lwt") and topic.count("/") == 2
        )
        if not covered:
            watcher.subscribe((topic, 1))
            self._watched.add(topic)
        return watcher

    def spec(self, service: str | ServiceSpec) -> ServiceSpec:
        """The registered service of that name (or ``service`` itself)."""
        if isinstance(service, ServiceSpec):
            return service
        try:
            return self.catalog[service]
        except UnknownServiceError as error:
            raise ServiceError(str(error)) from None

    def start(
        self,
        service: str | ServiceSpec,
        *,
        wait: bool = True,
        timeout: float | None = None,
        **env: Any,
    ) -> RunningService:
        """Start ``service`` with the test's broker and namespace plus ``env``; wait until ready.

        ``timeout`` overrides the readiness's own deadline; ``env`` values are
        added to the service's environment (after its registered ``env``).
        """
        spec = self.spec(service)
        extra = {**spec.env, **{key: str(value) for key, value in env.items()}}
        return self._start(spec, extra, wait=wait, timeout=timeout)

    def _start(
        self, spec: ServiceSpec, extra: dict[str, str], *, wait: bool, timeout: float | None
    ) -> RunningService:
        container = self.launcher is not None and bool(spec.image)
        mqtt_topic = (
            spec.ready.topic.replace("{name}", spec.name)
            if isinstance(spec.ready, MqttReady)
            else None
        )
        # Subscribed before the start: the ready message may come at once.
        watcher = self._watch(mqtt_topic) if wait and mqtt_topic else None
        values = self.context.service_values(spec.name, in_container=container)
        env = {**spec.env_names.apply(values), **extra}
        port: int | None = None
        if isinstance(spec.ready, PortReady):
            port = spec.ready.port
            if spec.ready.env is not None:
                if spec.ready.env in extra:
                    port = int(extra[spec.ready.env])
                else:
                    port = self.context.port(f"service {spec.name}")
                    env[spec.ready.env] = str(port)
        since = time.monotonic()
        running = self._launch(spec, env, values, container=container)
        self.started.append(running)
        self.context.events.emit(
            "service_started",
            test=self.context.nodeid,
            service=spec.name,
            mode=running.mode,
            detail=running.describe(),
        )
        if wait:
            limit = timeout if timeout is not None else spec.ready.timeout
            try:
                self._wait_ready(running, since=since, timeout=limit, watcher=watcher, port=port)
            except ServiceError:
                self._stop(running)
                raise
            self.context.events.emit(
                "service_online",
                test=self.context.nodeid,
                service=spec.name,
                ready_s=round(time.monotonic() - since, 4),
            )
        return running

    def _launch(
        self, spec: ServiceSpec, env: dict[str, str], values: dict[str, str], *, container: bool
    ) -> RunningService:
        if container:
            assert self.launcher is not None
            command = spec.container_argv(values)
            return self.launcher(spec, env, test=self.context.nodeid, command=command)
        rootdir = self.context.rootdir
        cwd = None if spec.cwd is None else rootdir / spec.cwd
        if cwd is not None and not cwd.is_dir():
            msg = (
                f"service {spec.name!r}: its cwd {spec.cwd!r} is not a directory ({cwd}); "
                "cwd is relative to the project's rootdir"
            )
            raise ServiceError(msg)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        full_env.update(marker_env(self.context.identity, f"service:{spec.name}"))
        try:
            argv = spec.process_argv(values)
            argv[0] = resolve_executable(
                argv[0], cwd=cwd, env=full_env, owner=f"service {spec.name!r}"
            )
        except (ServiceConfigError, ProcessStartError) as error:
            raise ServiceError(f"{error} ({_origin(spec)})") from None
        log_path = self._new_log(spec.name)
        service = ProcessService(spec, env, argv, log_path=log_path, full_env=full_env, cwd=cwd)
        try:
            service.start()
        except OSError as error:
            msg = f"service {spec.name!r}: cannot start {argv[0]!r}: {error} ({_origin(spec)})"
            raise ServiceError(msg) from None
        return service

    def _new_log(self, name: str) -> Path:
        """A log file no earlier start in this worker used (a log readiness reads it whole)."""
        while True:
            self._serial += 1
            path = self.context.artifacts.log_path(f"{name}-{self._serial:03d}.log")
            if not path.exists():
                return path

    def _wait_ready(
        self,
        running: RunningService,
        *,
        since: float,
        timeout: float,
        watcher: NamespacedClient | None,
        port: int | None,
    ) -> None:
        spec = running.spec
        address = getattr(running, "address", lambda: "127.0.0.1")
        try:
            probe = make_probe(
                spec.ready,
                service=running,
                name=spec.name,
                watcher=lambda topic: watcher or self._watch(topic),
                since=since,
                address=address,
                port=port,
            )
        except ServiceConfigError as error:
            raise ServiceError(f"service {spec.name!r}: {error} ({_origin(spec)})") from None
        what = spec.ready.describe(spec.name)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if probe.wait(min(0.25, max(remaining, 0.0))):
                return
            if not running.is_running():
                code = getattr(running, "exit_code", lambda: None)()
                status = f" with status {code}" if code is not None else ""
                msg = (
                    f"service {spec.name!r} exited{status} before it was ready (waiting for "
                    f"{what}): {running.describe()}; look at its log below, fix its command or "
                    f"environment ({_origin(spec)})\n{_tail_text(running)}"
                )
                raise ServiceError(msg)
            if remaining <= 0:
                seen = probe.detail()
                msg = (
                    f"service {spec.name!r} was not ready within {timeout:.1f} s: {what} never "
                    f"came{'; ' + seen if seen else ''}; {running.describe()}. Fix the service or "
                    f"its readiness, or give it longer (ready-timeout, or start(timeout=...)) "
                    f"({_origin(spec)})\n{_tail_text(running)}"
                )
                raise ServiceError(msg)

    def wait_online(
        self,
        running: RunningService,
        *,
        since: float,
        timeout: float = 20.0,
        watcher: NamespacedClient | None = None,
    ) -> None:
        """Wait for ``running`` to be ready (its readiness, signs after ``since`` only)."""
        spec = running.spec
        topic = (
            spec.ready.topic.replace("{name}", spec.name)
            if isinstance(spec.ready, MqttReady)
            else None
        )
        client = watcher or (self._watch(topic) if topic else None)
        port = spec.ready.port if isinstance(spec.ready, PortReady) else None
        if isinstance(spec.ready, PortReady) and spec.ready.env is not None:
            port = int(running.env[spec.ready.env])
        self._wait_ready(running, since=since, timeout=timeout, watcher=client, port=port)

    def restart(self, running: RunningService, *, timeout: float | None = None) -> RunningService:
        """Stop ``running`` and start the same service with the same environment."""
        self._stop(running)
        derived = set(running.spec.env_names.mapping().values())
        extra = {k: v for k, v in running.env.items() if k not in derived}
        return self._start(running.spec, extra, wait=True, timeout=timeout)

    def _stop(self, running: RunningService) -> int | None:
        code = running.stop()
        if running in self.started:
            self.started.remove(running)
        self.context.events.emit(
            "service_stopped",
            test=self.context.nodeid,
            service=running.spec.name,
            exit_code=code,
        )
        return code

    def stop_all(self) -> list[str]:
        """Stop every service this runner started; returns problems met."""
        problems: list[str] = []
        for running in reversed(list(self.started)):
            try:
                code = self._stop(running)
            except Exception as error:  # noqa: BLE001 - stop the others, report this one
                problems.append(f"{running.describe()} could not be stopped: {error}")
                continue
            if code not in (0, None, -15):
                problems.append(f"{running.describe()} exited with {code}")
        self.started.clear()
        return problems


def _origin(spec: ServiceSpec) -> str:
    return f"registered in {spec.origin}" if spec.origin else "given directly as a ServiceSpec"


def _tail_text(running: RunningService, lines: int = 25) -> str:
    text = running.log_text()
    body = "\n".join(text.splitlines()[-lines:]) or "(empty)"
    return f"its log (last {lines} lines):\n{body}"
