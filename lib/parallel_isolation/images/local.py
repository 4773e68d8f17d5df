"""The local engine's side: connect once, inspect an image by reference."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from parallel_isolation.images.errors import EngineUnavailableError

__all__ = ["LocalImage", "connect", "inspect"]


def connect(client: Any | None = None, timeout: float = 30.0) -> Any:
    """``client`` itself, or a new Docker SDK client that has answered a ping."""
    if client is not None:
        return client
    from docker.errors import DockerException

    # importlib: a project folder named docker/ would shadow the SDK for mypy.
    sdk: Any = importlib.import_module("docker")
    try:
        connected = sdk.from_env(timeout=int(timeout))
        connected.ping()
    except DockerException as exc:
        msg = f"no Docker engine answers ({exc}); start the engine or point DOCKER_HOST at one"
        raise EngineUnavailableError(msg) from exc
    return connected


@dataclass(frozen=True)
class LocalImage:
    """What the engine knows of one local image."""

    image_id: str
    size: int
    labels: Mapping[str, str]


def inspect(client: Any, ref: str) -> LocalImage | None:
    """The local image ``ref``, or None when the engine has none by that name."""
    from docker.errors import ImageNotFound

    try:
        attrs = client.api.inspect_image(ref)
    except ImageNotFound:
        return None
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    return LocalImage(str(attrs["Id"]), int(attrs.get("Size") or 0), dict(labels))
