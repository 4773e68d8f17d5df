"""One worker's Docker objects: its containers and its network, and only those.

A :class:`DockerContainerManager` creates every container and network a
worker uses:

* names: containers ``{base}-{worker_id}-{run8}`` (a serial suffix when the
  same base runs twice at once), the network ``isolation-net-{worker_id}-{run8}``;
* labels: every object carries :func:`~parallel_isolation.ownership.labels_for`
  (tool, run, worker, owner pid and start time, host, role); user labels in
  the reserved namespace are refused;
* ports: published on ``publish_host`` (127.0.0.1) only, taken from the port
  allocator; Docker's "port is already allocated" propagates as the SDK's
  ``APIError`` so :meth:`PortAllocator.with_port` moves to another port;
* name conflicts: an existing object with our name is removed only when its
  labels say it is ours and its owner is dead (or is this very process);
  a live owner or an unlabelled object is an error that names the owner;
* stop: SIGTERM (``init=True`` puts an init process in front), a short grace,
  then SIGKILL; logs are saved to the run's artifacts before removal;
* cleanup at session end selects by labels (tool + run + worker + owner pid and
  start), never by name;
* heavy API calls hold one of the host-wide :class:`~parallel_isolation.containers.slots.ApiSlots`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from parallel_isolation import naming, ownership
from parallel_isolation.artifacts import EventLog, RunArtifacts
from parallel_isolation.containers.engine import (
    ContainerError,
    EngineUnavailableError,
    connect_engine,
    engine_address,
    poll_pause,
)
from parallel_isolation.containers.logstream import LogFollower
from parallel_isolation.containers.slots import ApiSlots
from parallel_isolation.host.ports import is_port_conflict
from parallel_isolation.host.statedir import checked_state_dir
from parallel_isolation.identity import Identity, Owner

__all__ = [
    "IMAGE_HINT",
    "NETWORK_BASE",
    "ContainerError",
    "DaemonError",
    "DockerContainerManager",
    "EngineUnavailableError",
    "ImageMissingError",
    "ManagedContainer",
    "NameConflictError",
]

NETWORK_BASE = "isolation-net"
_POOL_EXHAUSTED = "could not find an available, non-overlapping"
_POOL_WAIT_S = 60.0
IMAGE_HINT = "build it with `parallel-isolation images build`"


class ImageMissingError(ContainerError):
    """An image is not present locally (no registry is used) or could not be built."""


class NameConflictError(ContainerError):
    """A container or network name is taken by an object we must not touch."""


class DaemonError(ContainerError):
    """The engine refused an operation; the message carries the daemon's words."""


class _NameTaken(ContainerError):
    """The engine refused a create because the name exists (HTTP 409); the rules decide."""


def _daemon_error(operation: str, error: APIError) -> DaemonError:
    explanation = getattr(error, "explanation", None) or str(error)
    status = getattr(error, "status_code", None)
    return DaemonError(f"docker {operation} failed (HTTP {status}): {explanation}")


class ManagedContainer:
    """One container created by a :class:`DockerContainerManager`."""

    def __init__(
        self,
        manager: DockerContainerManager,
        container: Any,
        *,
        name: str,
        role: str,
        image: str,
    ) -> None:
        self.manager = manager
        self.container = container
        self.name = name
        self.role = role
        self.image = image
        self.id: str = str(container.id)
        self.log_path = manager.artifacts.log_path(f"{name}.log")
        self.removed = False
        self.exit_code: int | None = None
        self.final_logs: str | None = None
        # Removal saves the logs once, however many times (or threads) ask for it.
        self.removing = threading.Lock()
        self.logs_saved = False
        # The container's output as it is written (started by the manager after
        # `docker start`); None for containers this process did not start.
        self.follower: LogFollower | None = None

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def state(self) -> dict[str, Any]:
        """The engine's ``State`` of the container; ``{}`` once it is gone."""
        if self.removed:
            return {}
        try:
            self.container.reload()
        except NotFound:
            return {}
        except APIError as error:
            raise _daemon_error(f"inspect {self.name}", error) from error
        except (DockerException, OSError) as error:
            msg = f"inspect {self.name}: the Docker engine at {engine_address()} went away: {error}"
            raise EngineUnavailableError(msg) from error
        state = self.container.attrs.get("State") or {}
        return dict(state)

    def is_running(self) -> bool:
        """What the engine says; once the output stream ended with the exit, without asking."""
        follower = self.follower
        if follower is not None and not self.removed and follower.exited:
            return False
        return bool(self.state().get("Running"))

    def seems_running(self) -> bool:
        """True while the output stream is open, without asking the engine.

        For loops that check now and then while waiting for something else (a
        service coming online): the stream ends when the container exits, so
        the answer lags an exit by the milliseconds the engine takes to close
        it.  Without a stream it is :meth:`is_running`.
        """
        follower = self.follower
        if follower is not None and not self.removed and not follower.ended:
            return True
        return self.is_running()

    def logs(self, tail: int | None = None) -> str:
        """The container's output (stdout and stderr); saved text once removed."""
        if self.removed:
            text = self.final_logs or ""
            return "".join(text.splitlines(keepends=True)[-tail:]) if tail else text
        follower = self.follower
        if follower is not None and follower.error is None:
            return follower.tail(tail) if tail else follower.text()
        return self.engine_logs(tail)

    def engine_logs(self, tail: int | None = None) -> str:
        """The container's output as the engine has it (one request)."""
        try:
            raw = self.container.logs(stdout=True, stderr=True, tail=tail if tail else "all")
        except NotFound:
            return self.final_logs or ""
        except APIError as error:
            raise _daemon_error(f"logs {self.name}", error) from error
        except (DockerException, OSError) as error:
            msg = f"logs {self.name}: the Docker engine at {engine_address()} went away: {error}"
            raise EngineUnavailableError(msg) from error
        return bytes(raw).decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return self.logs(tail=lines)

    def kill(self) -> None:
        """SIGKILL now (crash simulation); the container stays for inspection."""
        if not self.is_running():
            return
        try:
            self.container.kill()
        except NotFound:
            return
        except APIError as error:
            if self.is_running():
                raise _daemon_error(f"kill {self.name}", error) from error
        if self.follower is not None:
            # Return once it is dead: the output stream ends with the process.
            self.follower.wait_ended(10.0)

    def stop(self, grace: float = 3.0) -> int | None:
        """Stop (SIGTERM, ``grace`` s, SIGKILL), save the logs, remove; the exit code."""
        return self.manager.remove(self, grace=grace)

    def describe(self) -> str:
        return f"container {self.name} ({self.short_id}, image {self.image}, role {self.role})"

    def __repr__(self) -> str:
        return f"ManagedContainer({self.name!r}, {self.short_id}, removed={self.removed})"


def _same_owner(recorded: Owner | None, owner: Owner) -> bool:
    """Same process: pid and host equal, start times equal within label rounding."""
    return (
        recorded is not None
        and recorded.pid == owner.pid
        and recorded.host == owner.host
        and abs(recorded.start_time - owner.start_time) < 0.05
    )


def _owner_text(labels: Mapping[str, str], owner: Owner) -> str:
    run = labels.get(ownership.RUN_LABEL, "?")
    worker = labels.get(ownership.WORKER_LABEL, "?")
    return f"run {run} worker {worker}, {owner.describe()}"


class DockerContainerManager:
    """Creates, tracks and removes one worker's containers and its network.

    The session's :class:`~parallel_isolation.session.context.WorkerContext`
    owns one (``worker.containers``, closed at session end); tests and tools
    may build one directly.  ``image_check`` (optional) runs once, with the
    engine client, before the first image is looked up: the session uses it
    to make sure the project's images are current.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        artifacts: RunArtifacts,
        events: EventLog | None = None,
        publish_host: str = "127.0.0.1",
        state_dir: Path | None = None,
        client: Any | None = None,
        api_slots: ApiSlots | None = None,
        network_base: str = NETWORK_BASE,
        stop_grace: float = 3.0,
        image_check: Callable[[Any], None] | None = None,
    ) -> None:
        self.identity = identity
        self.artifacts = artifacts
        self.events = events
        self.publish_host = publish_host
        self.state_dir = checked_state_dir(state_dir)
        self.network_name = naming.resource_name(network_base, identity)
        self.stop_grace = stop_grace
        self.slots = api_slots or ApiSlots.from_env(
            self.state_dir, events=events, first=identity.worker_number
        )
        self._client = client
        self._stream_api: Any | None = None
        self._containers: dict[str, ManagedContainer] = {}
        self._network: Any | None = None
        self._images_ok: set[str] = set()
        self._image_check = image_check
        self._lock = threading.RLock()
        self.closed = False

    # -- engine and names ------------------------------------------------------

    @property
    def client(self) -> Any:
        """The engine client, connected on first use."""
        if self._client is None:
            self._client = connect_engine()
        return self._client

    @property
    def stream_api(self) -> Any:
        """A low-level engine client without read timeout, for the containers' log streams.

        A quiet container must not end its stream by a client-side timeout; the
        engine's API version is the main client's (no second version request).
        """
        with self._lock:
            if self._stream_api is None:
                from docker.client import DockerClient

                version = self.client.api.api_version
                self._stream_api = DockerClient.from_env(
                    version=version, timeout=None, max_pool_size=64
                ).api
            return self._stream_api

    def container_name(self, base: str) -> str:
        return naming.resource_name(base, self.identity)

    def unique_name(self, base: str) -> str:
        """``{base}-{worker}-{run8}``, or with ``-2``, ``-3``... while that one runs."""
        plain = self.container_name(base)
        with self._lock:
            taken = {name for name, c in self._containers.items() if not c.removed}
            if plain not in taken:
                return plain
            serial = 2
            while f"{plain}-{serial}" in taken:
                serial += 1
            return f"{plain}-{serial}"

    def labels(self, role: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return ownership.labels_for(self.identity, role, extra)

    def owner_filters(self) -> dict[str, list[str]]:
        """Docker filters matching exactly this worker's objects of this run."""
        owner = self.identity.owner
        return {
            "label": [
                f"{ownership.TOOL_LABEL}={ownership.TOOL_VALUE}",
                f"{ownership.RUN_LABEL}={self.identity.run_id}",
                f"{ownership.WORKER_LABEL}={self.identity.worker_id}",
                f"{ownership.OWNER_PID_LABEL}={owner.pid}",
                f"{ownership.OWNER_START_LABEL}={owner.start_time:.2f}",
            ]
        }

    @property
    def containers(self) -> list[ManagedContainer]:
        """Containers this manager created and has not removed yet."""
        with self._lock:
            return [c for c in self._containers.values() if not c.removed]

    def _emit(self, kind: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(kind, **fields)

    # -- images ----------------------------------------------------------------

    def ensure_images(self, refs: Iterable[str]) -> None:
        """Make sure ``refs`` exist locally (no registry is used).

        The manager's ``image_check`` runs first, once (it may build the
        project's images when they are stale).
        """
        wanted = [ref for ref in refs if ref not in self._images_ok]
        if not wanted:
            return
        with self._lock:
            if self._image_check is not None:
                check, self._image_check = self._image_check, None
                check(self.client)
            for ref in wanted:
                if ref in self._images_ok:
                    continue
                try:
                    self.client.images.get(ref)
                except ImageNotFound:
                    msg = f"image {ref} is not present on the engine; {IMAGE_HINT}"
                    raise ImageMissingError(msg) from None
                except APIError as error:
                    raise _daemon_error(f"inspect image {ref}", error) from error
                self._images_ok.add(ref)

    # -- network ---------------------------------------------------------------

    def ensure_network(self) -> str:
        """Create the worker's network on first use; returns its name."""
        with self._lock:
            if self._network is not None:
                return self.network_name
            name = self.network_name
            try:
                # Create first: the name is almost always free, and a lookup before
                # every create cost a request per worker.
                self._network = self._create_network(name)
                return name
            except _NameTaken:
                pass
            for existing in self._networks_named(name):
                if self._claim_network(existing):
                    self._network = existing
                    return name
            self._network = self._create_network(name)
            return name

    def _networks_named(self, name: str) -> list[Any]:
        try:
            found = self.client.networks.list(names=[name])
        except APIError as error:
            raise _daemon_error(f"network ls {name}", error) from error
        return [net for net in found if net.name == name]  # the filter matches substrings

    def _claim_network(self, network: Any) -> bool:
        """Reuse our own network (True), reclaim a dead owner's (False) or refuse."""
        labels: dict[str, str] = dict(network.attrs.get("Labels") or {})
        owner = ownership.tool_owner(labels)
        name = network.name
        if owner is None:
            self._emit("name_conflict", name=name, owner="unlabelled: not ours", action="refused")
            msg = (
                f"network name {name!r} is taken by network {network.id[:12]} "
                "(unlabelled: not ours); it is left alone: remove or rename it yourself"
            )
            raise NameConflictError(msg)
        if _same_owner(owner, self.identity.owner):
            return True
        if owner.is_alive():
            who = _owner_text(labels, owner)
            self._emit("name_conflict", name=name, owner=who, action="refused")
            msg = (
                f"network name {name!r} is in use by network {network.id[:12]} of {who}, "
                "which is alive; not touching it"
            )
            raise NameConflictError(msg)
        who = _owner_text(labels, owner)
        network.reload()
        for container_id in network.attrs.get("Containers") or {}:
            self._reclaim_container_of(container_id, owner, network.name)
        try:
            with self.slots.hold("network rm"):
                network.remove()
        except NotFound:
            pass
        except APIError as error:
            raise _daemon_error(f"network rm {name}", error) from error
        self._emit("name_conflict", name=name, owner=who, action="reclaimed")
        self._emit("network_removed", name=name, id=network.id, reason="dead owner")
        return False

    def _reclaim_container_of(self, container_id: str, owner: Owner, network: str) -> None:
        try:
            container = self.client.containers.get(container_id)
        except NotFound:
            return
        labels = dict(container.labels or {})
        if not _same_owner(ownership.tool_owner(labels), owner):
            msg = (
                f"network {network!r} of dead owner {owner.describe()} still has container "
                f"{container.name} ({container.id[:12]}) that is not that owner's; not touching it"
            )
            raise NameConflictError(msg)
        self._remove_foreign(
            container, role=labels.get(ownership.ROLE_LABEL, "?"), reason="dead owner"
        )

    def _create_network(self, name: str) -> Any:
        deadline = time.monotonic() + _POOL_WAIT_S
        waited = False
        while True:
            try:
                with self.slots.hold("network create"):
                    # Low-level: the SDK's high-level create inspects the network after it.
                    created = self.client.api.create_network(
                        name,
                        driver="bridge",
                        labels=self.labels("network"),
                        check_duplicate=True,
                    )
                network = self.client.networks.prepare_model({"Id": created["Id"], "Name": name})
                break
            except APIError as error:
                text = str(error)
                if getattr(error, "status_code", None) == 409:
                    raise _NameTaken(name) from error
                if _POOL_EXHAUSTED in text and time.monotonic() < deadline:
                    if not waited:
                        self._emit("network_pool_wait", name=name, error=text)
                        waited = True
                    poll_pause(0.5)
                    continue
                if _POOL_EXHAUSTED in text:
                    msg = (
                        f"docker network create {name} failed: the engine's address pools are "
                        f"used up ({getattr(error, 'explanation', text)}). Every worker of every "
                        "running test run uses one network; remove stale ones with "
                        "`parallel-isolation cleanup-orphans` or give dockerd more default-address-pools"
                    )
                    raise DaemonError(msg) from error
                raise _daemon_error(f"network create {name}", error) from error
        self._emit("network_created", name=name, id=network.id)
        return network

    # -- containers ------------------------------------------------------------

    def run(
        self,
        name: str,
        image: str,
        *,
        role: str,
        command: Sequence[str] | None = None,
        environment: Mapping[str, str] | None = None,
        ports: Mapping[int, int] | None = None,
        labels: Mapping[str, str] | None = None,
        network: bool = True,
        init: bool = True,
        check_image: bool = True,
        test: str | None = None,
    ) -> ManagedContainer:
        """Create and start ``name`` from ``image`` on the worker's network.

        ``ports`` maps inner TCP ports to host ports (published on
        ``publish_host`` only).  A host port taken meanwhile raises the SDK's
        ``APIError`` ("port is already allocated") after the container was
        removed, so :meth:`PortAllocator.with_port` can retry with another.
        ``test`` (a node id) is recorded in a label for ``invoke validate``.
        """
        all_labels = self.labels(role, labels)  # refuses reserved user labels
        if test:
            all_labels[ownership.TEST_LABEL] = test
        if check_image:
            self.ensure_images([image])
        network_name = self.ensure_network() if network else None
        port_map = {
            f"{inner}/tcp": (self.publish_host, host) for inner, host in (ports or {}).items()
        }
        container = self._create(
            name,
            image,
            command=list(command) if command is not None else None,
            environment=dict(environment or {}),
            labels=all_labels,
            network=network_name,
            ports=port_map,
            init=init,
        )
        managed = ManagedContainer(self, container, name=name, role=role, image=image)
        with self._lock:
            self._containers[name] = managed
        self._emit("container_created", name=name, id=managed.id, image=image, role=role)
        try:
            with self.slots.hold("start"):
                container.start()
        except APIError as error:
            self.remove(managed, grace=0.0, reason="start refused")
            if is_port_conflict(error):
                self._emit(
                    "container_port_retry",
                    name=name,
                    ports=sorted((ports or {}).values()),
                    error=getattr(error, "explanation", None) or str(error),
                )
                raise
            raise _daemon_error(f"start {name}", error) from error
        except BaseException:
            self.remove(managed, grace=0.0)
            raise
        self._follow(managed)
        return managed

    def _follow(self, managed: ManagedContainer) -> None:
        """Read the container's output on one stream from now on (see :mod:`.logstream`)."""
        try:
            api = self.stream_api
        except (DockerException, OSError):
            return  # the manager falls back to asking the engine
        managed.follower = LogFollower(api, managed.id, managed.name).start()

    def run_all(self, requests: Mapping[str, Mapping[str, Any]]) -> dict[str, ManagedContainer]:
        """Create and start several containers at once; all of them, or none.

        ``requests`` maps a key of the caller's choosing to :meth:`run`'s
        arguments (``name``, ``image`` and the keyword options).  The engine
        works on the containers concurrently (a stack comes up in about the
        time of its slowest container).  If any fails, the others are removed
        and the first error is raised.
        """
        if not requests:
            return {}
        keys = list(requests)
        with ThreadPoolExecutor(len(keys), thread_name_prefix="container-run") as pool:
            futures = {key: pool.submit(self._run_request, requests[key]) for key in keys}
            wait(futures.values())
        started = {key: f.result() for key, f in futures.items() if f.exception() is None}
        for future in futures.values():
            error = future.exception()
            if error is not None:
                self.remove_all(started.values(), grace=0.0)
                raise error
        return started

    def _run_request(self, request: Mapping[str, Any]) -> ManagedContainer:
        options = dict(request)
        return self.run(options.pop("name"), options.pop("image"), **options)

    def remove_all(
        self, containers: Iterable[ManagedContainer], *, grace: float | None = None
    ) -> dict[str, int | None]:
        """:meth:`remove` each container, concurrently; ``{name: exit code}``.

        Every container is attempted; the first error is raised afterwards.
        """
        todo = list(containers)
        if not todo:
            return {}
        with ThreadPoolExecutor(len(todo), thread_name_prefix="container-rm") as pool:
            futures = {m.name: pool.submit(self.remove, m, grace=grace) for m in todo}
            wait(futures.values())
        for future in futures.values():
            error = future.exception()
            if error is not None:
                raise error
        return {name: future.result() for name, future in futures.items()}

    def _create(self, name: str, image: str, **options: Any) -> Any:
        """Create ``name``; only when the engine says the name is taken is its holder examined.

        Looking the name up before every create cost one request per container;
        a conflict is rare, and :meth:`_clear_name` then applies the same rules.
        """
        for attempt in range(3):
            try:
                with self.slots.hold("create"):
                    return self.client.containers.create(image, name=name, detach=True, **options)
            except ImageNotFound:
                msg = f"image {image} is not present on the engine; {IMAGE_HINT}"
                raise ImageMissingError(msg) from None
            except APIError as error:
                # The name is taken: free it if the rules allow (or raise), then retry.
                if getattr(error, "status_code", None) == 409 and attempt < 2:
                    self._clear_name(name)
                    continue
                raise _daemon_error(f"create {name}", error) from error
        msg = f"docker create {name}: the name kept being taken"  # pragma: no cover
        raise NameConflictError(msg)  # pragma: no cover

    def _clear_name(self, name: str) -> None:
        """Make ``name`` free, or raise :class:`NameConflictError` naming its owner."""
        try:
            existing = self.client.containers.get(name)
        except NotFound:
            return
        except APIError as error:
            raise _daemon_error(f"inspect {name}", error) from error
        labels = dict(existing.labels or {})
        owner = ownership.tool_owner(labels)
        short = existing.id[:12]
        if owner is None:
            self._emit("name_conflict", name=name, owner="unlabelled: not ours", action="refused")
            msg = (
                f"container name {name!r} is taken by container {short} (unlabelled: not ours); "
                "it is left alone: remove or rename it yourself"
            )
            raise NameConflictError(msg)
        who = _owner_text(labels, owner)
        role = labels.get(ownership.ROLE_LABEL, "?")
        if _same_owner(owner, self.identity.owner):
            with self._lock:
                tracked = self._containers.get(name)
            if tracked is not None and not tracked.removed and tracked.id == existing.id:
                msg = (
                    f"container name {name!r} is already used by this worker's {tracked.describe()}"
                )
                raise NameConflictError(msg)
            self._remove_foreign(existing, role=role, reason="this process's leftover")
            self._emit("name_conflict", name=name, owner=who, action="removed own leftover")
            return
        if owner.is_alive():
            self._emit("name_conflict", name=name, owner=who, action="refused")
            msg = (
                f"container name {name!r} is in use by container {short} of {who}, which is "
                "alive; not touching it (another run with the same run id and worker?)"
            )
            raise NameConflictError(msg)
        self._remove_foreign(existing, role=role, reason="dead owner")
        self._emit("name_conflict", name=name, owner=who, action="reclaimed")

    def _remove_foreign(self, container: Any, *, role: str, reason: str) -> None:
        """Remove a container that is ours by its labels but not tracked here."""
        managed = ManagedContainer(
            self, container, name=str(container.name), role=role, image=_image_of(container)
        )
        self.remove(managed, grace=0.0, reason=reason)

    def remove(
        self, managed: ManagedContainer, *, grace: float | None = None, reason: str = ""
    ) -> int | None:
        """Stop within ``grace`` s (then SIGKILL), save the logs, remove; the exit code.

        Idempotent: a removed container returns its recorded exit code.
        """
        with managed.removing:
            if managed.removed:
                return managed.exit_code
            self._remove_once(managed, self.stop_grace if grace is None else grace, reason)
        self._emit(
            "container_removed",
            name=managed.name,
            id=managed.id,
            exit_code=managed.exit_code,
            **({"reason": reason} if reason else {}),
        )
        return managed.exit_code

    def _remove_once(self, managed: ManagedContainer, grace: float, reason: str) -> None:
        """Stop, save the logs (if not saved by an earlier attempt), remove; under its lock."""
        try:
            # No API slot while stopping: it is mostly waiting for the process.
            self._stop(managed, grace)
            state = managed.state()
            code = state.get("ExitCode")
            managed.exit_code = int(code) if isinstance(code, int) else None
            if not managed.logs_saved:
                self._save_logs(managed, reason, ran=_ever_started(state))
            managed.container.remove(v=True, force=True)
        except NotFound:
            pass  # removed behind our back (by the engine or a crashed test): nothing left
        except APIError as error:
            raise _daemon_error(f"rm {managed.name}", error) from error
        managed.removed = True

    def _stop(self, managed: ManagedContainer, grace: float) -> None:
        follower = managed.follower
        if follower is not None and follower.exited:
            return  # its output stream ended: it is not running (no inspect needed)
        if follower is None and not managed.state().get("Running"):
            return
        try:
            # Stopping one that has just exited is harmless (the engine answers 304).
            managed.container.stop(timeout=max(0, math.ceil(grace)))
        except APIError as error:
            if isinstance(error, NotFound):
                raise
            # The stop call failed (daemon trouble): kill outright, still bounded.
            managed.kill()
        if follower is not None:
            follower.wait_ended(5.0)  # the last lines arrive before the stream ends

    def _save_logs(self, managed: ManagedContainer, reason: str, *, ran: bool) -> None:
        """Append the container's output to its log file, under a header naming it.

        A container that never started (its start was refused, say on a port
        taken meanwhile) has no output and gets no section: the event log
        records the refusal, and the file keeps one section per container
        that ran.
        """
        follower = managed.follower
        if follower is not None and follower.exited:
            text = follower.text()  # all of it, already read: no logs request
        else:
            text = managed.engine_logs()
        managed.final_logs = text
        managed.logs_saved = True
        if not ran and not text:
            return
        header = (
            f"=== {managed.describe()} id {managed.id} exit {managed.exit_code}"
            f"{f' ({reason})' if reason else ''} saved {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n"
        )
        with managed.log_path.open("a", encoding="utf-8") as handle:
            handle.write(header)
            handle.write(text)
            if text and not text.endswith("\n"):
                handle.write("\n")

    def run_to_completion(
        self,
        base: str,
        image: str,
        command: Sequence[str],
        *,
        timeout: float = 60.0,
        environment: Mapping[str, str] | None = None,
    ) -> tuple[int | None, str]:
        """Run a one-shot command on the worker's network; (exit code, output)."""
        managed = self.run(
            self.unique_name(base),
            image,
            role="task",
            command=command,
            environment=environment,
        )
        try:
            result = managed.container.wait(timeout=timeout)
        except (APIError, OSError) as error:
            self.remove(managed, grace=0.0, reason="timed out")
            msg = f"{managed.describe()} did not finish within {timeout:.0f} s: {error}"
            raise ContainerError(msg) from error
        if managed.follower is not None:
            managed.follower.wait_ended(5.0)  # its last lines arrive just after the exit
        output = managed.logs()
        self.remove(managed, grace=0.0)
        code = result.get("StatusCode") if isinstance(result, dict) else None
        return (int(code) if isinstance(code, int) else None), output

    # -- cleanup ---------------------------------------------------------------

    def owned_containers(self) -> list[Any]:
        """This worker's containers of this run, found by labels (never by name)."""
        try:
            return list(self.client.containers.list(all=True, filters=self.owner_filters()))
        except APIError as error:
            raise _daemon_error("ps (by labels)", error) from error

    def owned_networks(self) -> list[Any]:
        try:
            return list(self.client.networks.list(filters=self.owner_filters()))
        except APIError as error:
            raise _daemon_error("network ls (by labels)", error) from error

    def close(self) -> list[str]:
        """Remove exactly this worker's containers and network; returns problems met.

        Tracked containers go first, newest first, each stopped gracefully with
        its logs saved; then anything else carrying this worker's labels.
        """
        with self._lock:
            self.closed = True
            if self._client is None:
                return []  # never talked to the engine: nothing can exist
            problems: list[str] = []
            for managed in reversed(list(self._containers.values())):
                try:
                    self.remove(managed, reason="session end")
                except ContainerError as error:
                    problems.append(str(error))
            try:
                leftovers = self.owned_containers()
            except ContainerError as error:
                return [*problems, str(error)]
            for container in leftovers:
                labels = dict(container.labels or {})
                try:
                    self._remove_foreign(
                        container, role=labels.get(ownership.ROLE_LABEL, "?"), reason="session end"
                    )
                except ContainerError as error:
                    problems.append(str(error))
            try:
                networks = self.owned_networks()
            except ContainerError as error:
                return [*problems, str(error)]
            for network in networks:
                try:
                    with self.slots.hold("network rm"):
                        network.remove()
                except NotFound:
                    continue
                except APIError as error:
                    problems.append(str(_daemon_error(f"network rm {network.name}", error)))
                    continue
                self._emit("network_removed", name=network.name, id=network.id)
            self._network = None
            if self._stream_api is not None:
                # Every stream ended with its container; release the connections.
                self._stream_api.close()
                self._stream_api = None
            return problems


def _ever_started(state: Mapping[str, Any]) -> bool:
    """False only when the engine says the container was never started.

    The engine reports a zero time (year 1) as ``StartedAt`` of a container
    that was created but never ran; a gone container (no state) counts as run.
    """
    started = state.get("StartedAt")
    return not (isinstance(started, str) and started.startswith("0001-"))


def _image_of(container: Any) -> str:
    config = container.attrs.get("Config") or {}
    return str(config.get("Image") or "?")
