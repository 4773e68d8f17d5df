"""How the toolkit marks what it owns, and how the marks are read back.

One module writes and reads every mark, so the code that creates an object
and the code that later validates or reaps it cannot drift apart:

* **labels** on Docker containers, networks, volumes and images, all in the
  reserved namespace :data:`LABEL_PREFIX` (user labels in it are refused);
* **marker variables** in the environment of every process the toolkit
  starts (:func:`marker_env`), read back from ``/proc`` by :func:`read_markers`;
* **owner files** in temporary directories the reaper may remove
  (:func:`write_owner_file` / :func:`read_owner_file`);
* the **thread-name prefix** of the toolkit's own session threads, which the
  leak detector never counts as a test's leak.

An owner is a pid, that process's start time and the host
(:class:`~parallel_isolation.identity.Owner`): pid reuse cannot fool a
liveness check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parallel_isolation.identity import Identity, Owner

__all__ = [
    "HOST_LABEL",
    "IMAGE_LABEL",
    "LABEL_PREFIX",
    "MARKER_ENV",
    "MARKER_VALUE",
    "MARKER_VARIABLES",
    "OWNER_FILE",
    "OWNER_PID_LABEL",
    "OWNER_START_LABEL",
    "ROLE_LABEL",
    "RUN_LABEL",
    "SESSION_THREAD_PREFIX",
    "TEST_LABEL",
    "TOOL_FILTER",
    "TOOL_LABEL",
    "TOOL_VALUE",
    "WORKER_LABEL",
    "Labels",
    "Markers",
    "OwnerRecord",
    "check_user_labels",
    "labels_for",
    "marker_env",
    "owner_from_labels",
    "read_markers",
    "read_owner_file",
    "tool_owner",
    "write_owner_file",
]

# -- labels ----------------------------------------------------------------------------

LABEL_PREFIX = "io.parallel-isolation."
TOOL_LABEL = LABEL_PREFIX + "tool"
TOOL_VALUE = "parallel-isolation"
RUN_LABEL = LABEL_PREFIX + "run"
WORKER_LABEL = LABEL_PREFIX + "worker"
OWNER_PID_LABEL = LABEL_PREFIX + "owner-pid"
OWNER_START_LABEL = LABEL_PREFIX + "owner-start"
HOST_LABEL = LABEL_PREFIX + "host"
ROLE_LABEL = LABEL_PREFIX + "role"
TEST_LABEL = LABEL_PREFIX + "test"
IMAGE_LABEL = LABEL_PREFIX + "image"
"""On the images the toolkit builds: their containers inherit image labels, so
images carry this marker instead of :data:`TOOL_LABEL`."""
TOOL_FILTER = f"{TOOL_LABEL}={TOOL_VALUE}"

Labels = dict[str, str]


def labels_for(identity: Identity, role: str, extra: Mapping[str, str] | None = None) -> Labels:
    """The reserved labels of an object owned by ``identity`` (plus the user's ``extra``)."""
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


def tool_owner(labels: Mapping[str, str]) -> Owner | None:
    """The owner of an object carrying our tool label, or None when it is not ours."""
    if labels.get(TOOL_LABEL) != TOOL_VALUE:
        return None
    return owner_from_labels(labels)


# -- marker variables ------------------------------------------------------------------

MARKER_ENV = "ISOLATION_MARKER"
MARKER_VALUE = "parallel-isolation"
_RUN_ENV = "ISOLATION_RUN_ID"
_WORKER_ENV = "ISOLATION_WORKER_ID"
_OWNER_PID_ENV = "ISOLATION_OWNER_PID"
_OWNER_START_ENV = "ISOLATION_OWNER_START"
_OWNER_HOST_ENV = "ISOLATION_OWNER_HOST"
_ROLE_ENV = "ISOLATION_ROLE"
MARKER_VARIABLES = (
    MARKER_ENV,
    _RUN_ENV,
    _WORKER_ENV,
    _OWNER_PID_ENV,
    _OWNER_START_ENV,
    _OWNER_HOST_ENV,
    _ROLE_ENV,
)
"""Every variable :func:`marker_env` sets, in the order the docs list them."""


def marker_env(identity: Identity, role: str) -> dict[str, str]:
    """The variables that mark a process as started by ``identity`` in ``role``."""
    return {
        MARKER_ENV: MARKER_VALUE,
        _RUN_ENV: identity.run_id,
        _WORKER_ENV: identity.worker_id,
        _OWNER_PID_ENV: str(identity.owner.pid),
        _OWNER_START_ENV: f"{identity.owner.start_time:.2f}",
        _OWNER_HOST_ENV: identity.owner.host,
        _ROLE_ENV: role,
    }


@dataclass(frozen=True)
class Markers:
    """The marks read back from a process's environment."""

    run: str
    worker: str
    role: str
    owner: Owner | None


def read_markers(env: Mapping[str, str]) -> Markers | None:
    """The marks in ``env`` (a process's environment), or None when it is not ours."""
    if env.get(MARKER_ENV) != MARKER_VALUE:
        return None
    try:
        owner: Owner | None = Owner(
            pid=int(env[_OWNER_PID_ENV]),
            start_time=float(env[_OWNER_START_ENV]),
            host=env[_OWNER_HOST_ENV],
        )
    except (KeyError, ValueError):
        owner = None
    return Markers(
        run=env.get(_RUN_ENV, ""),
        worker=env.get(_WORKER_ENV, ""),
        role=env.get(_ROLE_ENV, ""),
        owner=owner,
    )


# -- owner files -----------------------------------------------------------------------

OWNER_FILE = ".isolation-owner.json"


@dataclass(frozen=True)
class OwnerRecord:
    """What an owner file says about its directory."""

    run: str
    worker: str
    purpose: str
    owner: Owner
    created: float


def write_owner_file(directory: Path, identity: Identity, purpose: str) -> Path:
    """Mark ``directory`` as owned by ``identity`` (for ``purpose``); returns the file."""
    record: dict[str, Any] = {
        "owner": identity.owner.as_dict(),
        "run_id": identity.run_id,
        "worker_id": identity.worker_id,
        "purpose": purpose,
        "created": time.time(),
    }
    path = directory / OWNER_FILE
    path.write_text(json.dumps(record) + "\n")
    return path


def read_owner_file(directory: Path) -> OwnerRecord | None:
    """The owner file of ``directory``, or None when there is none or it cannot be read."""
    path = directory / OWNER_FILE
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            return None
        owner = Owner.from_dict(data["owner"])
        created = float(data.get("created", path.stat().st_mtime))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return OwnerRecord(
        run=str(data.get("run_id", "")),
        worker=str(data.get("worker_id", "")),
        purpose=str(data.get("purpose", "")),
        owner=owner,
        created=created,
    )


# -- threads ---------------------------------------------------------------------------

SESSION_THREAD_PREFIX = "parallel-isolation"
"""Threads named with this prefix belong to the toolkit's session, never to a test."""
