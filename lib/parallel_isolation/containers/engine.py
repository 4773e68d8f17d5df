"""The one way to reach the Docker engine, and the one "no engine" error.

Every part of the toolkit that talks to the engine (the container manager,
the images builder, validate, cleanup-orphans, the plugin's start-up check)
connects through :func:`connect_engine` or asks :func:`engine_problem`, so a
missing engine is reported with the same words everywhere.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

__all__ = [
    "ENGINE_HINT",
    "ContainerError",
    "EngineUnavailableError",
    "connect_engine",
    "engine_address",
    "engine_problem",
    "poll_pause",
]

API_TIMEOUT_S = 60
ENGINE_HINT = (
    "start one with `sudo systemctl start docker` (or `sudo dockerd` where there is no "
    "systemd; in this toolkit's own repository `sudo ci/start-docker.sh`) or point "
    "DOCKER_HOST at one"
)


class ContainerError(RuntimeError):
    """Base class of the Docker backend's failures."""


class EngineUnavailableError(ContainerError):
    """No Docker engine, or it does not answer."""


def poll_pause(seconds: float) -> None:
    """Wait between polls of a condition the engine does not announce (inside a deadline)."""
    threading.Event().wait(seconds)


def engine_address() -> str:
    """Where the engine is expected: ``$DOCKER_HOST`` or the local socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect_engine(timeout: float = API_TIMEOUT_S) -> Any:
    """A connected ``docker.DockerClient``; :class:`EngineUnavailableError` otherwise.

    Tells apart "no engine here" (the unix socket does not exist) from "an
    engine that does not answer", and says how to start one.
    """
    from docker.client import DockerClient
    from docker.errors import DockerException

    where = engine_address()
    if where.startswith("unix://"):
        socket_path = Path(where.removeprefix("unix://"))
        if not socket_path.exists():
            msg = f"no Docker engine: the socket {socket_path} does not exist; {ENGINE_HINT}"
            raise EngineUnavailableError(msg)
    try:
        # Asks the engine for its API version: the first round trip.
        client = DockerClient.from_env(timeout=max(1, int(timeout)))
    except DockerException as error:
        msg = f"no Docker engine: the engine at {where} is not reachable: {error}; {ENGINE_HINT}"
        raise EngineUnavailableError(msg) from error
    try:
        client.ping()
    except (DockerException, OSError) as error:
        client.close()
        msg = f"no Docker engine: the engine at {where} does not answer: {error}; {ENGINE_HINT}"
        raise EngineUnavailableError(msg) from error
    return client


def engine_problem(timeout: float = 5.0) -> str | None:
    """None when the engine answers a ping, else why not (the :class:`EngineUnavailableError` text)."""
    try:
        client = connect_engine(timeout)
    except EngineUnavailableError as error:
        return str(error)
    client.close()
    return None
