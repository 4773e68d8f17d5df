"""Names of everything the toolkit creates (labels and markers: :mod:`parallel_isolation.ownership`).

Names follow ``{service}-{worker_id}-{run8}`` and are sanitized to Docker's
``[a-zA-Z0-9][a-zA-Z0-9_.-]*``.
"""

from __future__ import annotations

import re

from parallel_isolation.identity import Identity

__all__ = ["client_id", "resource_name", "sanitize_name"]


_INVALID = re.compile(r"[^a-zA-Z0-9_.-]+")
_MAX_NAME = 128


def sanitize_name(raw: str) -> str:
    """Make ``raw`` a valid Docker object name, keeping it readable.

    Runs of invalid characters become one ``-``; a leading character that is
    not alphanumeric is dropped.  An input with nothing usable is an error.
    """
    cleaned = _INVALID.sub("-", raw).lstrip("_.-")
    cleaned = cleaned[:_MAX_NAME].rstrip("-")
    if not cleaned:
        msg = f"cannot build a Docker name from {raw!r}: no usable characters"
        raise ValueError(msg)
    return cleaned


def resource_name(base: str, identity: Identity) -> str:
    """``{base}-{worker_id}-{run8}``, sanitized."""
    return sanitize_name(f"{base}-{identity.worker_id}-{identity.run_id}")


def client_id(base: str, identity: Identity, serial: int) -> str:
    """An MQTT client id unique per run, worker and use (<= 64 chars)."""
    return sanitize_name(f"{base}-{identity.worker_id}-{identity.run_id}-{serial}")[:64]
