"""What a run needs from the host, checked once by the controller before any worker starts.

A missing prerequisite is one usage error (one wording per problem, with its
fix) instead of a traceback in every test:

* the ``process`` backend needs mosquitto;
* the ``docker`` backend (and ``--require-docker``) needs an engine that
  answers, and the broker image and the project's declared images on it;
* the port blocks of all workers must fit below 65536.

Docker-marked tests on another backend do not need an engine: without one
they skip, all with the same reason (see :func:`runstate.require_docker_or_skip`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from parallel_isolation.project import Project
from parallel_isolation.settings import Settings

__all__ = ["Prerequisites", "check", "port_problem"]

MAX_PORT = 65535


@dataclass(frozen=True)
class Prerequisites:
    """The probes :func:`check` uses (injectable for tests)."""

    mosquitto: Callable[[], str | None]
    engine: Callable[[], str | None]
    images: Callable[[Project | None], str | None]


def _mosquitto() -> str | None:
    from parallel_isolation.mqtt.brokers import MOSQUITTO_MISSING, find_mosquitto

    return None if find_mosquitto() else MOSQUITTO_MISSING


def _engine() -> str | None:
    from parallel_isolation.containers.engine import engine_problem

    return engine_problem()


def _images(project: Project | None) -> str | None:
    """None when the broker image and the project's declared images are on the engine.

    Only missing images stop the run here: a stale one is rebuilt before its
    first use (the container manager's image check), as ever.
    """
    from parallel_isolation.containers.engine import EngineUnavailableError
    from parallel_isolation.images import ImagesError, images_status

    try:
        report = images_status(project=project)
    except EngineUnavailableError:
        return None  # the engine check speaks for the engine
    except ImagesError as error:
        return f"the docker backend's images cannot be checked: {error}"
    missing = [status.ref for status in report.images if not status.present]
    if not missing:
        return None
    return (
        f"the docker backend needs the image(s) {', '.join(missing)}, which are not on the "
        "engine\n  fix: build them with `parallel-isolation images build` (or `invoke images`, "
        "`nox -s images`)"
    )


DEFAULT_PROBES = Prerequisites(mosquitto=_mosquitto, engine=_engine, images=_images)


def port_problem(settings: Settings, workers: int) -> str | None:
    """A message when ``workers`` blocks from the port base run past port 65535."""
    if workers <= 0:
        return None
    top = settings.port_base + workers * settings.block_size - 1
    if top <= MAX_PORT:
        return None
    fitting = (MAX_PORT - settings.port_base + 1) // settings.block_size
    lower = MAX_PORT + 1 - workers * settings.block_size
    fix = (
        f"choose --isolation-port-base {lower} or lower, smaller blocks "
        f"(--isolation-port-block), or at most {fitting} workers"
        if lower >= 1024
        else f"use smaller blocks (--isolation-port-block) or at most {fitting} workers"
    )
    return (
        f"{workers} workers with port blocks of {settings.block_size} from port base "
        f"{settings.port_base} need ports up to {top}, past {MAX_PORT}\n  fix: {fix}"
    )


def check(
    settings: Settings,
    *,
    workers: int,
    project: Project | None = None,
    probes: Prerequisites = DEFAULT_PROBES,
) -> list[str]:
    """Every problem that would make the run fail for want of something; [] when all is there."""
    problems: list[str] = []
    ports = port_problem(settings, workers)
    if ports:
        problems.append(ports)
    if settings.backend == "process":
        missing = probes.mosquitto()
        if missing:
            problems.append(missing)
    if settings.backend == "docker" or settings.require_docker:
        engine = probes.engine()
        if engine:
            why = (
                "the docker backend cannot run"
                if settings.backend == "docker"
                else "Docker is required (--require-docker)"
            )
            problems.append(f"{why}: {engine}")
        elif settings.backend == "docker":
            images = probes.images(project)
            if images:
                problems.append(images)
    return problems
