"""Finding what the toolkit owns on this host: by label and marker only, never by name.

Shared by ``invoke validate`` (report) and ``invoke cleanup-orphans`` (reap),
so both see exactly the same objects:

* Docker containers, networks and volumes carrying
  ``io.parallel-isolation.tool=parallel-isolation`` (:func:`list_labelled`);
* processes whose environment carries ``ISOLATION_MARKER=parallel-isolation``
  and the owner variables (:func:`find_marked_processes`);
* temporary directories under ``<state>/tmp`` holding an owner file
  (:data:`~parallel_isolation.ownership.OWNER_FILE`, see :func:`parallel_isolation.reap.orphans.owned_tempdir`);
* port reservations (``parallel_isolation.host.ports.read_reservations``).
"""

from __future__ import annotations

import calendar
import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from parallel_isolation import ownership
from parallel_isolation.containers.engine import EngineUnavailableError, connect_engine
from parallel_isolation.identity import Owner

__all__ = [
    "TOOL_FILTER",
    "DockerObject",
    "MarkedProcess",
    "OwnedDir",
    "connect",
    "find_marked_processes",
    "find_owned_dirs",
    "list_labelled",
    "owner_alive",
    "protected_pids",
]

TOOL_FILTER = ownership.TOOL_FILTER


def connect(timeout: float = 5.0) -> tuple[Any, str | None]:
    """``(client, None)`` when the engine answers a ping, else ``(None, reason)``."""
    try:
        return connect_engine(timeout), None
    except EngineUnavailableError as error:
        return None, str(error)


@dataclass(frozen=True)
class DockerObject:
    """A labelled container, network or volume."""

    kind: str  # "container", "network" or "volume"
    ident: str
    name: str
    labels: dict[str, str]
    created: float | None
    state: str = ""

    @property
    def run(self) -> str | None:
        return self.labels.get(ownership.RUN_LABEL)

    @property
    def worker(self) -> str | None:
        return self.labels.get(ownership.WORKER_LABEL)

    @property
    def owner(self) -> Owner | None:
        return ownership.owner_from_labels(self.labels)

    def describe(self) -> str:
        state = f", {self.state}" if self.state else ""
        return f"{self.kind} {self.name} ({self.ident[:12]}{state})"


_ISO_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?")


def _iso_epoch(raw: object) -> float | None:
    if isinstance(raw, int | float):
        return float(raw)
    if not isinstance(raw, str):
        return None
    match = _ISO_TS.match(raw)
    if match is None:
        return None
    seconds = float(calendar.timegm(time.strptime(match[1], "%Y-%m-%dT%H:%M:%S")))
    tz = match[2]
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        seconds -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return seconds


def list_labelled(client: Any, run: str | None = None) -> list[DockerObject]:
    """Every container, network and volume with our tool and run labels (``run``'s, if given)."""
    # The run label must be there too: containers inherit their image's labels,
    # and our images carry the tool label, so a container a person creates by
    # hand from one of them has the tool label but no run or owner labels.
    labels = [
        TOOL_FILTER,
        f"{ownership.RUN_LABEL}={run}" if run is not None else ownership.RUN_LABEL,
    ]
    filters = {"label": labels}
    api = client.api
    found: list[DockerObject] = []
    for item in api.containers(all=True, filters=filters):
        names = item.get("Names") or [item["Id"]]
        found.append(
            DockerObject(
                "container",
                item["Id"],
                str(names[0]).lstrip("/"),
                dict(item.get("Labels") or {}),
                _iso_epoch(item.get("Created")),
                str(item.get("State", "")),
            )
        )
    for item in api.networks(filters=filters):
        found.append(
            DockerObject(
                "network",
                item["Id"],
                str(item.get("Name", item["Id"])),
                dict(item.get("Labels") or {}),
                _iso_epoch(item.get("Created")),
            )
        )
    volumes = api.volumes(filters=filters) or {}
    for item in volumes.get("Volumes") or []:
        found.append(
            DockerObject(
                "volume",
                str(item["Name"]),
                str(item["Name"]),
                dict(item.get("Labels") or {}),
                _iso_epoch(item.get("CreatedAt")),
            )
        )
    return found


@dataclass(frozen=True)
class MarkedProcess:
    """A process carrying the toolkit's environment markers."""

    pid: int
    create_time: float
    name: str
    cmdline: str
    run: str
    worker: str
    role: str
    owner: Owner | None

    def describe(self) -> str:
        return f"process {self.name} (pid {self.pid}, role {self.role or '?'}, run {self.run}, worker {self.worker})"


def owner_alive(owner: Owner) -> bool:
    """:meth:`Owner.is_alive` (pid + start time + host; a zombie counts as dead)."""
    return owner.is_alive()


def protected_pids() -> set[int]:
    """This process and its ancestors: never reaped, whatever they carry."""
    pids = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        pids.update(parent.pid for parent in psutil.Process().parents())
    return pids


def find_marked_processes(run: str | None = None) -> list[MarkedProcess]:
    """Processes carrying our markers (optionally only ``run``'s), except ours and our ancestors."""
    protected = protected_pids()
    found: list[MarkedProcess] = []
    for proc in psutil.process_iter(["pid", "name", "create_time"]):
        pid = proc.info["pid"]
        if pid in protected:
            continue
        try:
            env = proc.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
        markers = ownership.read_markers(env)
        if markers is None:
            continue
        if run is not None and markers.run != run:
            continue
        try:
            cmdline = " ".join(proc.cmdline())[:300]
        except psutil.Error:
            cmdline = ""
        found.append(
            MarkedProcess(
                pid=pid,
                create_time=float(proc.info["create_time"] or 0.0),
                name=str(proc.info["name"] or "?"),
                cmdline=cmdline,
                run=markers.run,
                worker=markers.worker,
                role=markers.role,
                owner=markers.owner,
            )
        )
    return found


@dataclass(frozen=True)
class OwnedDir:
    """A temporary directory created through ``orphans.owned_tempdir``."""

    path: Path
    run: str
    worker: str
    purpose: str
    owner: Owner | None
    created: float

    def describe(self) -> str:
        return f"temp dir {self.path} ({self.purpose}, run {self.run}, worker {self.worker})"


def find_owned_dirs(state_dir: Path, run: str | None = None) -> list[OwnedDir]:
    """Directories under ``<state>/tmp`` whose owner file we can read."""
    found: list[OwnedDir] = []
    base = state_dir / "tmp"
    if not base.is_dir():
        return found
    for path in sorted(base.iterdir()):
        if not path.is_dir() or path.is_symlink():
            continue
        record = ownership.read_owner_file(path)
        if record is None or (run is not None and record.run != run):
            continue
        found.append(
            OwnedDir(
                path=path,
                run=record.run,
                worker=record.worker,
                purpose=record.purpose,
                owner=record.owner,
                created=record.created,
            )
        )
    return found
