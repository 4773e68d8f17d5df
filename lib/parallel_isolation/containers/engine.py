"""Is a Docker engine reachable?  One bounded question, asked once per process."""

from __future__ import annotations

import os

__all__ = ["engine_problem"]


def engine_problem(timeout: float = 5.0) -> str | None:
    """None when the engine answers a ping, else why not (for skip/fail reasons)."""
    try:
        from docker.client import DockerClient
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - docker is a dependency
        return "the docker Python package is not installed"
    where = os.environ.get("DOCKER_HOST", "the local socket")
    try:
        client = DockerClient.from_env(timeout=int(max(1, timeout)))
    except DockerException as error:
        return f"cannot reach the engine at {where}: {error} (start it with `invoke docker-up`)"
    try:
        client.ping()
    except DockerException as error:
        return f"the engine at {where} does not answer: {error} (start it with `invoke docker-up`)"
    except OSError as error:
        return f"the engine at {where} is unreachable: {error}"
    finally:
        client.close()
    return None
