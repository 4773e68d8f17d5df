"""What a run needs from the host, checked once by the controller before any worker starts.

A missing prerequisite is one usage error (one wording per problem, with its
fix) instead of a traceback in every test:

* the ``process`` backend needs mosquitto;
* the ``docker`` backend (and ``--require-docker``) needs an engine that
  answers, and the broker image on it;
* the port blocks of all workers must fit below 65536.

Docker-marked tests on another backend do not need an engine: without one
they skip, all with the same reason (see :func:`runstate.require_docker_or_skip`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from parallel_isolation.settings import Settings

__all__ = ["Prerequisites", "check", "port_problem"]

MAX_PORT = 65535


@dataclass(frozen=True)
class Prerequisites:
    """The probes :func:`check` uses (injectable for tests)."""

    mosquitto: Callable[[], str | None]
    engine: Callable[[], str | None]
    images: Callable[[], str | None]


def _mosquitto() -> str | None:
    from parallel_isolation.mqtt.brokers import MOSQUITTO_MISSING, find_mosquitto

    return None if find_mosquitto() else MOSQUITTO_MISSING


def _engine() -> str | None:
    from parallel_isolation.containers.engine import engine_problem

    return engine_problem()


def _images() -> str | None:
    """None when the broker image (and this project's images, if it has any) are on the engine."""
    from parallel_isolation.images import core as images

    try:
        statuses = images.images_status()
    except images.ImagesError:
        statuses = []  # a project without image recipes: only the broker image matters
    missing = [status.ref for status in statuses if not status.present]
    if not statuses:
        from docker.client import DockerClient
        from docker.errors import DockerException, ImageNotFound

        client = DockerClient.from_env(timeout=10)
        try:
            client.images.get(images.MOSQUITTO_IMAGE)
        except ImageNotFound:
            missing = [images.MOSQUITTO_IMAGE]
        except DockerException:
            return None  # the engine check speaks for the engine
        finally:
            client.close()
    if not missing:
        return None
    return (
        f"the docker backend needs the image(s) {', '.join(missing)}, which are not on the "
        "engine\n  fix: build them with `invoke images` (or `nox -s images`, "
        "`python -m parallel_isolation.images build`)"
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


def check(settings: Settings, *, workers: int, probes: Prerequisites = DEFAULT_PROBES) -> list[str]:
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
            images = probes.images()
            if images:
                problems.append(images)
    return problems
