"""Docker scan: containers, networks and volumes carrying the toolkit's labels.

Selection is by label only (see :mod:`parallel_isolation.validate.discover`,
shared with the orphan reaper), never by name.
"""

from __future__ import annotations

from parallel_isolation.validate.base import ScanEnv, ScanResult
from parallel_isolation.validate.discover import list_labelled, owner_alive
from parallel_isolation.validate.events import CLEANUP_HINT
from parallel_isolation.validate.model import Finding, Severity
from parallel_isolation.validate.rundata import RunData

__all__ = ["DOCKER_EVENTS", "object_series", "scan_docker"]

DOCKER_EVENTS = {
    "container_created",
    "container_removed",
    "network_created",
    "network_removed",
    "volume_created",
    "name_conflict",
}


def _used_docker(run: RunData) -> bool:
    if run.settings.get("backend") == "docker":
        return True
    return any(event.kind in DOCKER_EVENTS for _, event in run.all_events())


def scan_docker(run: RunData, env: ScanEnv) -> ScanResult:
    """The run's labelled objects that still exist, and dead owners' objects of other runs."""
    result = ScanResult()
    series = object_series(run)
    client, problem = env.docker()
    if client is None:
        if _used_docker(run):
            result.problems.append(
                f"Docker engine not reachable ({problem}); the run used Docker, so its "
                "containers, networks and volumes could not be checked"
            )
        else:
            result.notes.append(
                f"Docker: engine not reachable ({problem}); the run created no Docker "
                "objects, so there was nothing to check"
            )
        result.section = {"reachable": False, "reason": problem, "series": series}
        return result
    from docker.errors import DockerException

    try:
        objects = list_labelled(client)
    except DockerException as error:
        result.problems.append(f"Docker engine failed while listing labelled objects: {error}")
        result.section = {"reachable": False, "reason": str(error), "series": series}
        return result
    mine = 0
    others = 0
    for obj in objects:
        owner = obj.owner
        alive = owner_alive(owner) if owner is not None else None
        if obj.run == run.run_id:
            mine += 1
            if alive:
                result.findings.append(
                    Finding(
                        Severity.INFO,
                        f"docker.{obj.kind}-in-use",
                        "docker",
                        f"{obj.describe()} still exists; its owner (pid {owner.pid if owner else '?'}) is alive",
                        worker=obj.worker,
                    )
                )
                continue
            why = "its owner is dead" if alive is False else "its owner labels are incomplete"
            result.findings.append(
                Finding(
                    Severity.ERROR,
                    f"docker.leftover-{obj.kind}",
                    "docker",
                    f"{obj.describe()} of this run still exists and {why}",
                    worker=obj.worker,
                    ts=obj.created,
                    hint=CLEANUP_HINT,
                )
            )
        elif alive is False:
            others += 1
            result.findings.append(
                Finding(
                    Severity.INFO,
                    f"docker.orphan-{obj.kind}",
                    "docker",
                    f"{obj.describe()} of run {obj.run} belongs to a dead owner (not this run)",
                    worker=obj.worker,
                    hint=CLEANUP_HINT,
                )
            )
    result.notes.append(
        f"Docker: engine reachable; {len(objects)} labelled object(s) on it, {mine} of this run, "
        f"{others} of dead owners of other runs"
    )
    created = _docker_event_counts(run)
    result.section = {
        "reachable": True,
        "labelled_objects": len(objects),
        "of_this_run": mine,
        "orphans_of_other_runs": others,
        "events": created,
        "series": series,
    }
    return result


def _docker_event_counts(run: RunData) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, event in run.all_events():
        if event.kind in DOCKER_EVENTS:
            counts[event.kind] = counts.get(event.kind, 0) + 1
    return counts


_CHANGES = {
    "container_created": ("containers", 1),
    "container_removed": ("containers", -1),
    "network_created": ("networks", 1),
    "network_removed": ("networks", -1),
}


def object_series(run: RunData) -> list[dict[str, float | int]]:
    """The run's live containers and networks over time (all workers), one point per change."""
    changes = sorted(
        (event.ts, *_CHANGES[event.kind]) for _, event in run.all_events() if event.kind in _CHANGES
    )
    live = {"containers": 0, "networks": 0}
    points: list[dict[str, float | int]] = []
    for ts, what, step in changes:
        live[what] = max(0, live[what] + step)
        points.append({"ts": ts, **live})
    return points
