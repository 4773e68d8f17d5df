"""Reaping what dead owners left: containers, networks, volumes, processes, port reservations, temp dirs.

Selection is by our labels and markers *and* the owner's liveness, nothing else:

* Docker objects carrying ``io.parallel-isolation.tool=parallel-isolation``
  (listed with a label filter, never by name, never ``prune``);
* processes whose environment carries ``ISOLATION_MARKER=parallel-isolation``
  (found through ``/proc``, never ``pkill``), stopped with SIGTERM, then
  SIGKILL after a bounded grace;
* port reservation files and owned temp directories in the state directory.

An object is removed when its owner is dead: the owner pid is gone, or the
pid now belongs to a process with a different start time (pid reuse).  An
owner that is alive is never touched.  ``--run ID`` limits the reaping to one
run and, for that run only, also removes what cannot be proven alive or dead
(incomplete owner labels, an owner on another host).  ``--older-than`` keeps
everything younger than the given age.  Every decision is printed with its
reason; ``--dry-run`` decides without removing.

Exit codes: 0 everything was examined and what had to go is gone; 1 a
removal failed; 2 something could not be examined (no Docker engine: pass
``--no-docker`` to sweep only processes, reservations and temp dirs).

``python -m parallel_isolation.reap`` is the command behind
``invoke cleanup-orphans``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import filelock
import psutil

from parallel_isolation.artifacts import (
    CLEANUP_FILE,
    UnsafeDirectoryError,
    append_record,
    make_private_dir,
)
from parallel_isolation.console import (
    EXIT_CLEAN,
    EXIT_COULD_NOT,
    EXIT_FINDINGS,
    Out,
    columns,
    natural_key,
)
from parallel_isolation.host.ports import Reservation, read_reservations
from parallel_isolation.host.procfs import wait_exit
from parallel_isolation.host.statedir import checked_state_dir
from parallel_isolation.identity import Identity, Owner
from parallel_isolation.ownership import write_owner_file
from parallel_isolation.validate.discover import (
    DockerObject,
    MarkedProcess,
    OwnedDir,
    connect,
    find_marked_processes,
    find_owned_dirs,
    list_labelled,
    owner_alive,
)
from parallel_isolation.validate.rundata import default_artifacts_root

__all__ = [
    "CleanupReport",
    "Criteria",
    "Decision",
    "cleanup_orphans",
    "decide",
    "main",
    "owned_tempdir",
    "parse_duration",
]

REMOVE = "remove"
KEEP = "keep"
_DOCKER_ORDER = {"container": 0, "network": 1, "volume": 2}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(raw: str) -> float:
    """``90``, ``30s``, ``10m``, ``2h``, ``1d``, ``1h30m`` -> seconds."""
    text = raw.strip().lower().replace(" ", "")
    if not text:
        msg = "duration must not be empty (examples: 30s, 10m, 2h, 1d, 1h30m)"
        raise ValueError(msg)
    total = 0.0
    position = 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match[1]) * _UNIT[match[2]]
        position = match.end()
    if position != len(text):
        msg = f"cannot read {raw!r} as a duration (examples: 30s, 10m, 2h, 1d, 1h30m)"
        raise ValueError(msg)
    return total


def owned_tempdir(identity: Identity, purpose: str, state_dir: Path | None = None) -> Path:
    """A temp directory the reaper may remove once ``identity``'s owner is dead.

    Created under ``<state>/tmp`` with an owner file (:data:`~parallel_isolation.ownership.OWNER_FILE`);
    remove it yourself when done, the reaper is the safety net.
    """
    base = make_private_dir(checked_state_dir(state_dir) / "tmp")
    safe = re.sub(r"[^a-zA-Z0-9_.-]+", "-", purpose)[:40] or "tmp"
    path = Path(
        tempfile.mkdtemp(prefix=f"{identity.run_id}-{identity.worker_id}-{safe}-", dir=base)
    )
    write_owner_file(path, identity, purpose)
    return path


@dataclass(frozen=True)
class Criteria:
    """What the user asked for."""

    run: str | None = None
    older_than: float | None = None
    now: float = field(default_factory=time.time)


@dataclass
class Decision:
    """What happens to one object, and why."""

    kind: str
    name: str
    run: str | None
    worker: str | None
    action: str
    reason: str
    age_s: float | None = None
    result: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _owner_reason(owner: Owner) -> tuple[bool | None, str]:
    """``(alive, why)``; alive None when it cannot be checked from here."""
    if owner.host != socket.gethostname():
        return None, f"owner on host {owner.host!r} cannot be checked from here"
    if owner_alive(owner):
        return True, f"owner pid {owner.pid} is alive"
    if owner.is_alive():
        return False, f"owner pid {owner.pid} has exited (a zombie nobody reaped)"
    if psutil.pid_exists(owner.pid):
        return False, f"owner pid {owner.pid} now belongs to another process (start time differs)"
    return False, f"owner pid {owner.pid} is gone"


def decide(
    owner: Owner | None, *, run: str | None, created: float | None, criteria: Criteria
) -> tuple[str, str]:
    """``(action, reason)`` for one object (see the module docstring for the rules)."""
    explicit = criteria.run is not None and run == criteria.run
    if criteria.older_than is not None and created is not None:
        age = criteria.now - created
        if age < criteria.older_than:
            return KEEP, f"younger ({age:.0f} s) than --older-than {criteria.older_than:.0f} s"
    if owner is None:
        if explicit:
            return REMOVE, "owner labels incomplete; run given explicitly"
        return KEEP, "owner labels incomplete (pass --run to remove it)"
    alive, why = _owner_reason(owner)
    if alive:
        return KEEP, why
    if alive is None:
        if explicit:
            return REMOVE, why + "; run given explicitly"
        return KEEP, why + " (pass --run to remove it)"
    return REMOVE, why


@dataclass
class CleanupReport:
    """Everything the reaper decided and did."""

    decisions: list[Decision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Removals that failed: something that should be gone is still there (exit 1)."""
    problems: list[str] = field(default_factory=list)
    """What could not be looked at (no engine, ...): the sweep is incomplete (exit 2)."""
    dry_run: bool = False
    elapsed_s: float = 0.0

    @property
    def removed(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == REMOVE and d.result.startswith("removed")]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == KEEP]

    def exit_code(self) -> int:
        """0 all examined and removed, 1 some removal failed, 2 something could not be examined."""
        if self.problems:
            return EXIT_COULD_NOT
        return EXIT_FINDINGS if self.errors else EXIT_CLEAN

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed": len(self.removed),
            "kept": len(self.kept),
            "exit_code": self.exit_code(),
            "errors": list(self.errors),
            "problems": list(self.problems),
            "notes": list(self.notes),
            "decisions": [d.as_dict() for d in self.decisions],
            "elapsed_s": round(self.elapsed_s, 3),
        }


def _age(created: float | None, now: float) -> float | None:
    return None if created is None else round(now - created, 1)


# -- processes -------------------------------------------------------------


def _stop_processes(targets: list[tuple[MarkedProcess, Decision]], grace: float) -> None:
    """SIGTERM every target, SIGKILL what is left after ``grace``; bounded throughout."""
    procs: list[tuple[psutil.Process, Decision]] = []
    for marked, decision in targets:
        try:
            proc = psutil.Process(marked.pid)
            if abs(proc.create_time() - marked.create_time) > 0.01:
                decision.result = "removed (exited; its pid was reused meanwhile)"
                continue
            proc.terminate()
            procs.append((proc, decision))
        except psutil.NoSuchProcess:
            decision.result = "removed (exited meanwhile)"
        except psutil.AccessDenied as error:
            decision.result = f"failed: {error}"
    if not procs:
        return
    # pidfds turn readable when a process exits (a zombie counts as exited: an
    # orphan's zombie is its new parent's to reap, not ours).
    pids = [proc.pid for proc, _ in procs]
    alive = wait_exit(pids, time.monotonic() + grace)
    for proc, _ in procs:
        if proc.pid in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
    stuck = wait_exit(alive, time.monotonic() + max(1.0, grace))
    for proc, decision in procs:
        if proc.pid in stuck:
            decision.result = "failed: still running after SIGKILL"
        else:
            decision.result = "removed (SIGKILL)" if proc.pid in alive else "removed (SIGTERM)"


def _process_decisions(
    criteria: Criteria, report: CleanupReport
) -> list[tuple[MarkedProcess, Decision]]:
    found = find_marked_processes(criteria.run)
    pairs = []
    for marked in found:
        action, reason = decide(
            marked.owner, run=marked.run, created=marked.create_time, criteria=criteria
        )
        decision = Decision(
            "process",
            f"{marked.name} pid {marked.pid} ({marked.role or 'no role'})",
            marked.run or None,
            marked.worker or None,
            action,
            reason,
            _age(marked.create_time, criteria.now),
        )
        report.decisions.append(decision)
        pairs.append((marked, decision))
    return pairs


# -- docker ------------------------------------------------------------------


def _remove_docker(client: Any, obj: DockerObject) -> str:
    from docker.errors import APIError, NotFound

    api = client.api
    try:
        if obj.kind == "container":
            api.remove_container(obj.ident, force=True, v=True)
        elif obj.kind == "network":
            api.remove_network(obj.ident)
        else:
            api.remove_volume(obj.ident)
    except NotFound:
        return "removed (already gone)"
    except APIError as error:
        return f"failed: {error.explanation or error}"
    return "removed"


def _docker(criteria: Criteria, report: CleanupReport, dry_run: bool, timeout: float) -> None:
    client, problem = connect(timeout)
    if client is None:
        report.problems.append(
            f"containers, networks and volumes were not checked: {problem} "
            "(pass --no-docker to clean up only processes, reservations and temp dirs)"
        )
        return
    from docker.errors import DockerException

    try:
        objects = list_labelled(client, criteria.run)
    except DockerException as error:
        report.problems.append(f"Docker: listing labelled objects failed: {error}")
        return
    batches: dict[int, list[tuple[DockerObject, Decision]]] = {}
    for obj in objects:
        action, reason = decide(obj.owner, run=obj.run, created=obj.created, criteria=criteria)
        decision = Decision(
            obj.kind,
            f"{obj.name} ({obj.ident[:12]}{', ' + obj.state if obj.state else ''})",
            obj.run,
            obj.worker,
            action,
            reason,
            _age(obj.created, criteria.now),
        )
        report.decisions.append(decision)
        if action == REMOVE:
            batches.setdefault(_DOCKER_ORDER[obj.kind], []).append((obj, decision))
    report.notes.append(f"Docker: {len(objects)} labelled object(s) examined")
    if dry_run:
        return
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="parallel-isolation-reap") as pool:
        for order in sorted(batches):  # containers before their networks and volumes
            batch = batches[order]
            results = pool.map(lambda pair: _remove_docker(client, pair[0]), batch)
            for (_, decision), result in zip(batch, results, strict=True):
                decision.result = result
    client.close()


# -- reservations and temp dirs --------------------------------------------


def _remove_reservation(reservation: Reservation, lock: filelock.FileLock) -> str:
    with lock:
        current = Reservation.load(reservation.path)
        if current is None or current != reservation:
            return "skipped: the reservation changed meanwhile"
        reservation.path.unlink(missing_ok=True)
    return "removed"


def _state_files(criteria: Criteria, report: CleanupReport, state_dir: Path, dry_run: bool) -> None:
    lock = filelock.FileLock(str(state_dir / "ports.lock"))
    for reservation in read_reservations(state_dir):
        if criteria.run is not None and reservation.run_id != criteria.run:
            continue
        action, reason = decide(
            reservation.owner,
            run=reservation.run_id,
            created=reservation.created,
            criteria=criteria,
        )
        decision = Decision(
            "reservation",
            f"port {reservation.port} ({reservation.purpose})",
            reservation.run_id,
            reservation.worker_id,
            action,
            reason,
            _age(reservation.created, criteria.now),
        )
        report.decisions.append(decision)
        if action == REMOVE and not dry_run:
            decision.result = _remove_reservation(reservation, lock)
    owned: list[OwnedDir] = find_owned_dirs(state_dir, criteria.run)
    for directory in owned:
        action, reason = decide(
            directory.owner, run=directory.run, created=directory.created, criteria=criteria
        )
        decision = Decision(
            "tempdir",
            str(directory.path),
            directory.run,
            directory.worker,
            action,
            reason,
            _age(directory.created, criteria.now),
        )
        report.decisions.append(decision)
        if action == REMOVE and not dry_run:
            try:
                shutil.rmtree(directory.path)
                decision.result = "removed"
            except OSError as error:
                decision.result = f"failed: {error}"


# -- the whole sweep ---------------------------------------------------------


def cleanup_orphans(
    *,
    dry_run: bool = False,
    run: str | None = None,
    older_than: float | None = None,
    state_dir: Path | None = None,
    artifacts_root: Path | None = None,
    grace: float = 3.0,
    docker_timeout: float = 5.0,
    include_docker: bool = True,
) -> CleanupReport:
    """Decide about every labelled or marked object, and remove the dead owners' ones."""
    started = time.perf_counter()
    criteria = Criteria(run=run, older_than=older_than)
    report = CleanupReport(dry_run=dry_run)
    try:
        state = checked_state_dir(state_dir)
    except UnsafeDirectoryError as error:  # planted files are not acted on: reported instead
        report.errors.append(str(error))
        state = None
    pairs = _process_decisions(criteria, report)
    if not dry_run:
        _stop_processes([(m, d) for m, d in pairs if d.action == REMOVE], grace)
    if include_docker:
        _docker(criteria, report, dry_run, docker_timeout)
    if state is not None:
        _state_files(criteria, report, state, dry_run)
    for decision in report.decisions:
        if decision.action == REMOVE and dry_run:
            decision.result = "dry run: would remove"
        elif decision.result.startswith("failed"):
            report.errors.append(f"{decision.kind} {decision.name}: {decision.result}")
    if not dry_run:
        _record(report, artifacts_root)
    report.elapsed_s = time.perf_counter() - started
    return report


def _record(report: CleanupReport, artifacts_root: Path | None) -> None:
    """Append what was removed to each affected run's ``cleanup.jsonl``."""
    root = artifacts_root or default_artifacts_root()
    by_run: dict[str, list[Decision]] = {}
    for decision in report.removed:
        if decision.run:
            by_run.setdefault(decision.run, []).append(decision)
    for run_id, decisions in by_run.items():
        run_dir = root / run_id
        if not run_dir.is_dir():
            continue
        for decision in decisions:
            try:
                append_record(
                    run_dir / CLEANUP_FILE,
                    {
                        **decision.as_dict(),
                        "ts": round(time.time(), 4),
                        "action": "removed",
                        "by_pid": os.getpid(),
                    },
                )
            except OSError as error:  # the removal happened; only its note is lost
                report.errors.append(
                    f"cannot note the removals in {run_dir / CLEANUP_FILE}: {error}"
                )
                break


# -- CLI -----------------------------------------------------------------------


_ACTION_STYLE = {
    "FAILED": "bold red",
    "removed": "green",
    "would remove": "green",
    "kept": "yellow",
}


def _print(report: CleanupReport, out: Out, errors: Out) -> None:
    """Decisions (removed first), a summary and notes on ``out``; problems on ``errors``."""

    def order(d: Decision) -> tuple[int, str, tuple[tuple[int, int | str], ...]]:
        return (0 if d.action == REMOVE else 1, d.kind, natural_key(d.name))

    rows = []
    for decision in sorted(report.decisions, key=order):
        if decision.action == REMOVE:
            failed = decision.result.startswith("failed")
            label = "FAILED" if failed else ("would remove" if report.dry_run else "removed")
        else:
            label = "kept"
        why = decision.reason + (
            f" ({decision.result})" if decision.result.startswith("failed") else ""
        )
        owner = f"{decision.run or '-'}/{decision.worker or '-'}"
        rows.append((label, [label, decision.kind, decision.name, owner, why]))
    if rows:
        lines = columns(["action", "kind", "object", "run/worker", "why"], [r for _, r in rows])
        out.line(lines[0], "bold")
        for (label, _), line in zip(rows, lines[1:], strict=True):
            out.segments([(line[: len(label)], _ACTION_STYLE[label]), (line[len(label) :], None)])
    removed = len(report.removed)
    would = sum(1 for d in report.decisions if d.action == REMOVE)
    title = "cleanup-orphans (dry run)" if report.dry_run else "cleanup-orphans"
    summary = (
        f"would remove {would}, keep {len(report.kept)}"
        if report.dry_run
        else f"removed {removed}, kept {len(report.kept)}, failed {len(report.errors)}"
    )
    out.line(f"{title}: {summary} in {report.elapsed_s:.2f} s", "bold")
    for note in report.notes:
        out.line(f"note: {note}", "dim")
    for error in report.errors:
        errors.line(f"cleanup-orphans: error: {error}", "bold red")
    for problem in report.problems:
        errors.line(f"cleanup-orphans: could not: {problem}", "bold magenta")


def _duration(raw: str) -> float:
    try:
        return parse_duration(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser(prog: str = "parallel-isolation cleanup-orphans") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Remove containers, networks, volumes, processes, port reservations and "
        "temp dirs that carry parallel-isolation labels/markers and whose owner is dead.",
    )
    parser.add_argument("--dry-run", action="store_true", help="decide and print, remove nothing")
    parser.add_argument(
        "--older-than",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="only objects older than this (30s, 10m, 2h, 1d, 1h30m)",
    )
    parser.add_argument(
        "--run",
        default=None,
        help="only this run's objects; also removes those whose owner cannot be checked",
    )
    parser.add_argument("--state-dir", type=Path, default=None, help="host-wide state dir")
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        help="artifacts root; removals are noted in <run>/cleanup.jsonl there",
    )
    parser.add_argument(
        "--grace", type=float, default=3.0, help="seconds between SIGTERM and SIGKILL [3]"
    )
    parser.add_argument(
        "--no-docker",
        action="store_true",
        help="do not look at Docker (otherwise no engine means exit 2: the sweep was incomplete)",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def main(
    argv: Sequence[str] | None = None, *, prog: str = "parallel-isolation cleanup-orphans"
) -> int:
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as stop:  # argparse's --help and usage errors
        return stop.code if isinstance(stop.code, int) else 2
    report = cleanup_orphans(
        dry_run=args.dry_run,
        run=args.run,
        older_than=args.older_than,
        state_dir=args.state_dir,
        artifacts_root=args.artifacts,
        grace=args.grace,
        include_docker=not args.no_docker,
    )
    if args.format == "json":
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        _print(report, Out(sys.stdout), Out(sys.stderr))
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
