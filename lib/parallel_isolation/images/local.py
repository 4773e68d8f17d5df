"""The local engine's side: connect once, inspect an image by reference."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from parallel_isolation.containers.engine import connect_engine

__all__ = ["LocalImage", "connect", "inspect"]


def connect(client: Any | None = None, timeout: float = 30.0) -> Any:
    """``client`` itself, or a new connection (:class:`EngineUnavailableError` without one)."""
    return client if client is not None else connect_engine(timeout)


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
