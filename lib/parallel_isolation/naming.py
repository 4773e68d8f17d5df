"""Names and labels of everything the toolkit creates.

Names follow ``{service}-{worker_id}-{run8}`` and are sanitized to Docker's
``[a-zA-Z0-9][a-zA-Z0-9_.-]*``.  Labels live in one reserved namespace;
cleanup selects by these labels only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from parallel_isolation.identity import Identity, Owner

__all__ = [
    "LABEL_PREFIX",
    "TOOL_LABEL",
    "TOOL_VALUE",
    "Labels",
    "check_user_labels",
    "client_id",
    "labels_for",
    "owner_from_labels",
    "resource_name",
    "sanitize_name",
]

LABEL_PREFIX = "io.parallel-isolation."
TOOL_LABEL = LABEL_PREFIX + "tool"
TOOL_VALUE = "parallel-isolation"
RUN_LABEL = LABEL_PREFIX + "run"
WORKER_LABEL = LABEL_PREFIX + "worker"
OWNER_PID_LABEL = LABEL_PREFIX + "owner-pid"
OWNER_START_LABEL = LABEL_PREFIX + "owner-start"
HOST_LABEL = LABEL_PREFIX + "host"
ROLE_LABEL = LABEL_PREFIX + "role"

Labels = dict[str, str]

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


def labels_for(identity: Identity, role: str, extra: Mapping[str, str] | None = None) -> Labels:
    """The reserved labels for an object owned by ``identity``."""
    labels: Labels = dict(extra or {})
    check_user_labels(labels)
    labels.update(
        {
            TOOL_LABEL: TOOL_VALUE,
            RUN_LABEL: identity.run_id,
            WORKER_LABEL: identity.worker_id,
            OWNER_PID_LABEL: str(identity.owner.pid),
            OWNER_START_LABEL: f"{identity.owner.start_time:.2f}",
            HOST_LABEL: identity.owner.host,
            ROLE_LABEL: role,
        }
    )
    return labels


def check_user_labels(labels: Mapping[str, str]) -> None:
    """Refuse user labels inside the reserved namespace."""
    reserved = sorted(key for key in labels if key.startswith(LABEL_PREFIX))
    if reserved:
        msg = f"labels {reserved} use the reserved prefix {LABEL_PREFIX!r}; choose another key"
        raise ValueError(msg)


def owner_from_labels(labels: Mapping[str, str]) -> Owner | None:
    """The owner recorded in an object's labels, or None if they are incomplete."""
    try:
        return Owner(
            pid=int(labels[OWNER_PID_LABEL]),
            start_time=float(labels[OWNER_START_LABEL]),
            host=labels[HOST_LABEL],
        )
    except (KeyError, ValueError):
        return None
