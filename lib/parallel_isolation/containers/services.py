"""Services of the system under test as containers on the worker's network."""

from __future__ import annotations

from parallel_isolation.containers.manager import DockerContainerManager, ManagedContainer
from parallel_isolation.services.process import wait_for_log
from parallel_isolation.services.spec import ServiceSpec

__all__ = ["ContainerLauncher", "ContainerService"]


class ContainerService:
    """A service of the system under test running in a container."""

    mode = "container"

    def __init__(self, spec: ServiceSpec, env: dict[str, str], container: ManagedContainer) -> None:
        self.spec = spec
        self.env = env
        self.container = container

    @property
    def name(self) -> str:
        return self.container.name

    def is_running(self) -> bool:
        # Asked every half second while the service comes online: from the container's
        # output stream, not the engine (see ManagedContainer.seems_running).
        return self.container.seems_running()

    def stop(self, grace: float = 5.0) -> int | None:
        return self.container.stop(grace=grace)

    def kill(self) -> None:
        self.container.kill()

    def address(self) -> str:
        """The container's address on the worker's network (its ports are reached there)."""
        self.container.container.reload()
        networks = self.container.container.attrs["NetworkSettings"]["Networks"]
        return next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), "")

    def log_text(self) -> str:
        return self.container.logs()

    def log_tail(self, lines: int = 20) -> str:
        return self.container.log_tail(lines)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Its log once ``text`` is in it; :class:`TimeoutError` with the log's end
        when it is not within ``timeout`` seconds (or the container ended without it).

        The container's output arrives through its log stream, a moment after
        the service wrote it: this waits on the stream, not on a clock.
        """
        follower = self.container.follower
        if follower is None or follower.error is not None or self.container.removed:
            return wait_for_log(self, text, timeout)  # no stream: read the log again

        def on_stream() -> str | None:
            assert follower is not None
            follower.wait_for(text, timeout)
            now = self.log_text()
            return now if text in now else None

        return wait_for_log(self, text, timeout, on_stream)

    def describe(self) -> str:
        return f"{self.spec.name} ({self.container.describe()}, log {self.container.log_path})"


class ContainerLauncher:
    """Starts services from their image on one manager's network (the container mode)."""

    mode = "container"

    def __init__(self, manager: DockerContainerManager) -> None:
        self.manager = manager

    def __call__(
        self, spec: ServiceSpec, env: dict[str, str], *, test: str, command: list[str] | None
    ) -> ContainerService:
        """Run ``spec``'s image with ``command`` and ``env``, labelled with the test's node id."""
        manager = self.manager
        manager.ensure_images([spec.image])
        container = manager.run(
            manager.unique_name(spec.container_base),
            spec.image,
            role=f"service:{spec.name}",
            command=command,
            environment=env,
            check_image=False,
            test=test,
        )
        return ContainerService(spec, env, container)
