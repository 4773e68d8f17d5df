"""Per-process run state behind the pytest plugin.

Resolves identity and settings once per process (controller, worker, or a
plain run without xdist), creates the :class:`WorkerContext` lazily, and
records the run for ``invoke validate`` when the session ends.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from parallel_isolation.artifacts import RunArtifacts, UnsafeDirectoryError
from parallel_isolation.host.statedir import checked_state_dir
from parallel_isolation.identity import MASTER, Identity, new_run_id, normalize_run_id
from parallel_isolation.project import Project, ProjectError
from parallel_isolation.services.catalog import specs_from_project
from parallel_isolation.services.spec import ServiceConfigError
from parallel_isolation.session import prerequisites
from parallel_isolation.session.context import WorkerContext
from parallel_isolation.settings import OPTIONS, SettingError, Settings

__all__ = [
    "LONGEST_FIRST_KEY",
    "STATE_KEY",
    "WORKERINPUT_KEY",
    "PrerequisiteError",
    "RunState",
    "close_worker",
    "configure",
    "finish",
    "flush_crosstalk",
    "fork_workers_from_zygote",
    "judge",
    "node_down",
    "node_up",
    "require_docker_or_skip",
    "spawn_zygote",
    "start_hang_watch",
    "stop_zygote",
    "tie_worker_to_controller",
    "worker_context",
]

WORKERINPUT_KEY = "parallel_isolation_settings"
# Under it the controller names the durations file the workers sort by (see schedule.py).
LONGEST_FIRST_KEY = "parallel_isolation_longest_first"


@dataclass
class RunState:
    """What this pytest process knows about the run."""

    identity: Identity
    settings: Settings
    role: str  # "controller", "worker" or "standalone"
    started: float = field(default_factory=time.time)
    worker: WorkerContext | None = None
    docker_problem: str | None = None
    docker_checked: bool = False
    closing_errors: list[str] = field(default_factory=list)
    zygote: Any = None  # the controller's zygote.Zygote, with --isolation-fork-workers
    zygote_problem: str | None = None
    hang_watch: Any = None  # the controller's watchdog.HangWatch, with --isolation-test-timeout
    project: Project | None = None  # rootdir, ini values, [tool.parallel-isolation]
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Controller: xdist worker id -> ``{"status": running|finished|crashed, "recorded": bool}``."""
    verdict: Any = None  # the run's validate.verdict.RunVerdict, once judged
    verdict_seconds: float = 0.0


STATE_KEY = pytest.StashKey[RunState]()


class PrerequisiteError(SettingError):
    """The run cannot work on this host (no mosquitto, no engine, ...); the message says the fix."""


def _is_distributing(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "dist", "no") != "no" and getattr(config.option, "tx", None))


def configure(config: pytest.Config) -> RunState:
    """Resolve identity and settings for this process (``pytest_configure``)."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        if WORKERINPUT_KEY not in workerinput:
            msg = (
                "this xdist worker got no parallel-isolation settings from the controller: "
                "load the plugin in the controller too (it is loaded by the pytest11 entry point, "
                "or with -p parallel_isolation.plugin)"
            )
            raise SettingError(msg)
        settings = Settings.from_dict(workerinput[WORKERINPUT_KEY])
        identity = Identity.resolve(
            run_id=workerinput["testrunuid"], worker_id=workerinput["workerid"]
        )
        return RunState(
            identity=identity, settings=settings, role="worker", project=_project(config)
        )
    cli = {option.field: getattr(config.option, option.field, None) for option in OPTIONS}
    ini = {option.field: config.getini(option.ini) for option in OPTIONS}
    settings = Settings.resolve(cli=cli, ini=ini, rootdir=config.rootpath)
    try:
        checked_state_dir(settings.state_path)  # once, before any worker meets it
    except (UnsafeDirectoryError, OSError) as error:
        raise SettingError(str(error)) from None
    if settings.backend == "docker":
        from parallel_isolation.containers.slots import api_slot_count

        try:
            api_slot_count()  # every worker reads it: a bad value is one usage error here
        except ValueError as error:
            raise SettingError(str(error)) from None
    given = getattr(config.option, "testrunuid", None)
    run_id = normalize_run_id(given) if given else new_run_id()
    shard = (
        getattr(config.option, "group", None) if getattr(config.option, "splits", None) else None
    )
    if given and shard is not None:
        # Shards of one CI run may share --testrunuid: keep their run ids apart
        # (and tell xdist, so the workers derive the same id).
        given = f"{given}-shard-{shard}"
        config.option.testrunuid = given
        run_id = normalize_run_id(given)
    if settings.durations_file:
        from parallel_isolation.session.schedule import load_durations

        load_durations(Path(settings.durations_file))  # a bad file is a usage error, once
    role = "standalone"
    if _is_distributing(config):
        role = "controller"
        if not given:
            # Hand our id to xdist so its testrun_uid and ours are the same.
            config.option.testrunuid = run_id
    project = _project(config)
    if not (getattr(config.option, "collectonly", False) or getattr(config.option, "help", False)):
        workers = len(getattr(config.option, "tx", None) or []) if role == "controller" else 1
        problems = prerequisites.check(settings, workers=workers, project=project)
        if problems:
            raise PrerequisiteError("\n".join(problems))
    identity = Identity.resolve(run_id=run_id, worker_id=MASTER)
    return RunState(identity=identity, settings=settings, role=role, project=project)


def _project(config: pytest.Config) -> Project:
    """The project of this run: rootdir, ini file and ``[tool.parallel-isolation]``."""
    ini = {option.ini: config.getini(option.ini) for option in OPTIONS}
    try:
        project = Project.from_pytest(config.rootpath, config.inipath, ini)
        # A bad registration is one usage error before any test, not an error per test.
        specs_from_project(project)
    except (ProjectError, ServiceConfigError) as error:
        raise SettingError(str(error)) from None
    return project


def tie_worker_to_controller(state: RunState) -> None:
    """An xdist worker dies (SIGTERM) with its parent: the controller, or the zygote.

    The zygote itself dies with the controller, so a SIGKILLed controller
    takes its workers along, and with them their brokers and service
    processes (each tied to its worker the same way); what is left (the
    containers) carries labels naming a dead owner for ``cleanup-orphans``.
    """
    if state.role != "worker":
        return
    from parallel_isolation.host.proc import die_with_parent

    if not die_with_parent():
        sys.stderr.write("parallel-isolation: the controller is gone; this worker ends\n")
        os._exit(3)


def start_hang_watch(state: RunState, config: pytest.Config) -> None:
    """With ``--isolation-test-timeout``: the controller watches its workers for hangs."""
    if state.role != "controller" or not state.settings.test_timeout or state.hang_watch:
        return
    from parallel_isolation.session.watchdog import HangWatch

    run_dir = RunArtifacts(state.settings.artifacts_root, state.identity).run_dir
    state.hang_watch = HangWatch(
        timeout=state.settings.test_timeout,
        run_dir=run_dir,
        busy=lambda worker_id: _xdist_busy(config, worker_id),
    )


def _xdist_busy(config: pytest.Config, worker_id: str) -> bool:
    """Whether xdist's scheduler still has work on ``worker_id`` (True when it cannot tell)."""
    sched = getattr(config.pluginmanager.getplugin("dsession"), "sched", None)
    if sched is None:
        return True
    for node in list(getattr(sched, "nodes", [])):
        if getattr(getattr(node, "gateway", None), "id", None) != worker_id:
            continue
        pending = getattr(sched, "node2pending", {}).get(node)
        if pending is not None:
            return bool(pending)
        assigned = getattr(sched, "assigned_work", {}).get(node)
        if assigned is not None:
            return any(not done for scope in assigned.values() for done in scope.values())
        return True
    return False


def worker_context(state: RunState) -> WorkerContext:
    """The worker's context, created on first use."""
    if state.worker is None:
        state.worker = WorkerContext(state.identity, state.settings, project=state.project)
    return state.worker


def flush_crosstalk(state: RunState, timeout: float) -> bool:
    """Fence a test that expects cross-talk: the worker's spy has seen everything so far."""
    return state.worker is not None and state.worker.flush_crosstalk(timeout)


def close_worker(state: RunState) -> list[str]:
    """Close the worker's context (once); the errors met, also kept in ``closing_errors``."""
    if state.worker is None:
        return []
    worker, state.worker = state.worker, None
    errors = worker.close()
    state.closing_errors.extend(errors)
    return errors


def spawn_zygote(state: RunState) -> None:
    """Start the worker zygote early (``--isolation-fork-workers``, controller only).

    It imports pytest while the controller prepares the session;
    :func:`fork_workers_from_zygote` waits for it when the nodes are set up.
    """
    if state.role != "controller" or not state.settings.fork_workers or state.zygote is not None:
        return
    from parallel_isolation.ownership import marker_env
    from parallel_isolation.session.zygote import Zygote

    # Every worker of a docker-backend run imports the Docker SDK: once is enough.
    preload = (
        ("parallel_isolation.containers.manager",) if state.settings.backend == "docker" else ()
    )
    zygote = Zygote(
        env={**os.environ, **marker_env(state.identity, "worker-zygote")}, preload=preload
    )
    try:
        zygote.spawn()
    except OSError as error:
        state.zygote_problem = f"cannot start the worker zygote: {error}"
        return
    state.zygote = zygote


def fork_workers_from_zygote(state: RunState, specs: list[Any]) -> str | None:
    """Point local popen specs at the zygote started by :func:`spawn_zygote`.

    Returns a message for the terminal when the zygote is not there and the
    workers start the usual way, else None.
    """
    from parallel_isolation.session.zygote import ZygoteError

    plain = [spec for spec in specs if spec.popen and not spec.python and not spec.via]
    zygote = state.zygote
    if zygote is None or not plain:
        return (
            None if state.zygote_problem is None else f"parallel-isolation: {state.zygote_problem}"
        )
    try:
        zygote.wait_ready()
    except ZygoteError as error:
        state.zygote = None
        return f"parallel-isolation: workers start without the zygote: {error}"
    for spec in plain:
        spec.python = zygote.python_spec()
    return None


def stop_zygote(state: RunState) -> None:
    if state.zygote is not None:
        state.zygote.stop()
        state.zygote = None
    if state.hang_watch is not None:
        state.hang_watch.stop()
        state.hang_watch = None


def require_docker_or_skip(state: RunState) -> None:
    """Skip a Docker test without an engine, or fail it when Docker is required."""
    if not state.docker_checked:
        from parallel_isolation.containers.engine import engine_problem

        state.docker_problem = engine_problem()
        state.docker_checked = True
    if state.docker_problem is None:
        return
    if state.settings.require_docker:
        pytest.fail(
            f"Docker is required (--require-docker) but {state.docker_problem}", pytrace=False
        )
    pytest.skip(f"no Docker engine: {state.docker_problem}")


def finish(state: RunState, exitstatus: int) -> str | None:
    """Record the run (controller or standalone) for ``invoke validate``.

    Returns what went wrong writing the record (a full disk, say), naming the
    directory, or None.
    """
    close_worker(state)
    if state.role == "worker":
        return None
    artifacts = RunArtifacts(state.settings.artifacts_root, state.identity)
    if not artifacts.run_dir.exists():
        return None  # no fixture of ours was used: leave no trace
    try:
        _write_run_record(state, artifacts, exitstatus)
    except OSError as error:
        return (
            f"parallel-isolation: cannot record the run in {artifacts.run_dir}: {error}; "
            "validate will say it cannot read run.json"
        )
    return None


def _write_run_record(state: RunState, artifacts: RunArtifacts, exitstatus: int) -> None:
    artifacts.write_run_record(
        {
            "run_id": state.identity.run_id,
            "role": state.role,
            "controller": state.identity.owner.as_dict(),
            "started": state.started,
            "finished": time.time(),
            "exitstatus": exitstatus,
            "settings": state.settings.as_dict(),
            "argv": sys.argv,
            "cwd": os.getcwd(),
            "workers": (
                dict(state.nodes)
                if state.role == "controller"
                else {MASTER: {"status": "finished", "recorded": True}}
            ),
        }
    )


def node_up(state: RunState, worker_id: str) -> None:
    state.nodes[worker_id] = {"status": "running", "recorded": None}


def node_down(state: RunState, worker_id: str, *, crashed: bool, recorded: bool | None) -> None:
    """An xdist worker ended; ``recorded``: its recorder wrote its directory (None: unknown)."""
    state.nodes[worker_id] = {"status": "crashed" if crashed else "finished", "recorded": recorded}


def judge(state: RunState) -> Any:
    """The run's isolation verdict (controller or standalone), or None when it left no artifacts.

    Runs after every ``pytest_sessionfinish`` of the run: the workers are
    done and ``run.json`` is written.  The zygote is stopped first, so that
    the leftover-process scan does not find it.
    """
    if state.role == "worker":
        return None
    artifacts = RunArtifacts(state.settings.artifacts_root, state.identity)
    if not (artifacts.run_dir / "run.json").exists():
        return None
    stop_zygote(state)
    from parallel_isolation.validate.verdict import timed_judge

    state.verdict, state.verdict_seconds = timed_judge(
        artifacts.run_dir,
        backend=state.settings.backend,
        fail_on=state.settings.fail_on,
        artifacts_root=state.settings.artifacts_root,
        state_dir=state.settings.state_path,
    )
    return state.verdict
