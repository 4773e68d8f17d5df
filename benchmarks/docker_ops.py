"""Opt-in count and timing of every Docker engine request a process makes.

Used by the benchmarks only; nothing in the library imports it.  Two ways in:

* in a benchmark's own process: ``docker_ops.install(directory)``;
* in pytest processes (controller and every xdist worker): ``-p docker_ops``
  with ``benchmarks/`` on ``PYTHONPATH`` and ``ISOLATION_BENCH_DOCKER_OPS``
  set to a directory.  Without the variable the plugin does nothing.

It wraps the Docker SDK's four HTTP verbs (``APIClient._get``, ``_post``,
``_put``, ``_delete``), so every request any code in the process sends to the
engine -- this library's, or testcontainers' -- is seen once.  Each request is
named by its endpoint (``container create``, ``container inspect``,
``container logs``, ``network create``, ``exec start`` ...) and attributed to
the nearest non-SDK callers (e.g. ``containers.state < is_running <
_await_listening``), so readiness polling, log capture and cleanup tell apart.
The time recorded is the client's wall time until the engine's response
(headers and, for non-streaming calls, the body): for ``container wait`` and
``container stop`` that is mostly waiting for the container.  Containers
created through the hook are remembered with their name and role label, so a
CPU breakdown can put each container's cgroup under broker or service.

Each process writes ``ops-<pid>.json`` into the directory when pytest
unconfigures and again at exit (same file, the totals so far).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

ENV = "ISOLATION_BENCH_DOCKER_OPS"
ROLE_LABEL = "io.parallel-isolation.role"
_SKIP_PARTS = (
    f"{os.sep}docker{os.sep}",
    f"{os.sep}requests{os.sep}",
    f"{os.sep}urllib3{os.sep}",
    f"{os.sep}http{os.sep}client",
)
_VERSION = re.compile(r"^/v\d+\.\d+")
# (method, path regex, operation); the first match wins.
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), op)
    for m, p, op in [
        ("POST", r"^/containers/create$", "container create"),
        ("GET", r"^/containers/json$", "container list"),
        ("GET", r"^/containers/[^/]+/json$", "container inspect"),
        ("GET", r"^/containers/[^/]+/logs$", "container logs"),
        ("GET", r"^/containers/[^/]+/stats$", "container stats"),
        ("GET", r"^/containers/[^/]+/top$", "container top"),
        ("POST", r"^/containers/[^/]+/exec$", "exec create"),
        ("POST", r"^/containers/[^/]+/attach$", "container attach"),
        ("POST", r"^/containers/[^/]+/(\w+)$", "container {0}"),
        ("DELETE", r"^/containers/[^/]+$", "container remove"),
        ("POST", r"^/exec/[^/]+/start$", "exec start"),
        ("GET", r"^/exec/[^/]+/json$", "exec inspect"),
        ("POST", r"^/networks/create$", "network create"),
        ("GET", r"^/networks$", "network list"),
        ("GET", r"^/networks/[^/]+$", "network inspect"),
        ("DELETE", r"^/networks/[^/]+$", "network remove"),
        ("POST", r"^/networks/[^/]+/(\w+)$", "network {0}"),
        ("GET", r"^/images/json$", "image list"),
        ("GET", r"^/images/.+/json$", "image inspect"),
        ("GET", r"^/_ping$", "ping"),
        ("GET", r"^/version$", "version"),
        ("GET", r"^/info$", "info"),
        ("GET", r"^/events$", "events"),
    ]
]


def operation(method: str, url: str, params: dict[str, Any] | None = None) -> str:
    """``container start``, ``network create`` ... for one engine request."""
    path = url.split("://", 1)[-1]
    path = path[path.find("/") :] if "/" in path else "/"
    path = _VERSION.sub("", path.split("?", 1)[0])
    for verb, pattern, name in _ROUTES:
        if verb == method:
            found = pattern.match(path)
            if found:
                op = name.format(*found.groups())
                if op == "container logs" and params and params.get("follow"):
                    op = "container logs (follow)"
                return op
    return f"{method} {path}"


class Recorder:
    """Totals of one process, written as JSON."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.pid = os.getpid()
        self.ops: dict[str, list[float]] = {}  # op -> [count, total_s, max_s]
        self.callers: dict[str, list[float]] = {}  # "op | caller chain" -> [count, total_s]
        self.containers: dict[str, dict[str, str]] = {}
        self.failures = 0  # requests the hook could not classify or record

    def add(self, op: str, caller: str, seconds: float) -> None:
        with self.lock:
            entry = self.ops.setdefault(op, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += seconds
            entry[2] = max(entry[2], seconds)
            pair = self.callers.setdefault(f"{op} | {caller}", [0, 0.0])
            pair[0] += 1
            pair[1] += seconds

    def container(self, container_id: str, name: str, role: str, image: str) -> None:
        with self.lock:
            self.containers[container_id] = {"name": name, "role": role, "image": image}

    def write(self) -> None:
        with self.lock:
            if os.getpid() != self.pid or not (self.ops or self.containers):
                return
            data = {
                "pid": self.pid,
                "argv": sys.argv[:3],
                "ops": {
                    op: {"count": int(c), "total_s": round(t, 4), "max_s": round(m, 4)}
                    for op, (c, t, m) in self.ops.items()
                },
                "callers": {
                    key: {"count": int(c), "total_s": round(t, 4)}
                    for key, (c, t) in self.callers.items()
                },
                "containers": self.containers,
                "hook_failures": self.failures,
            }
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"ops-{self.pid}.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=1) + "\n")
        temporary.replace(target)


_RECORDER: Recorder | None = None


def _callers(depth: int = 3) -> str:
    """The nearest frames outside the SDK, requests and this module: ``mod.fn < mod.fn``."""
    frame = sys._getframe(2)
    names: list[str] = []
    here = __file__
    while frame is not None and len(names) < depth:
        filename = frame.f_code.co_filename
        if filename != here and not any(part in filename for part in _SKIP_PARTS):
            names.append(f"{Path(filename).stem}.{frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(names) or "?"


def _wrap(method: str, original: Any) -> Any:
    def wrapper(self: Any, url: str, **kwargs: Any) -> Any:
        recorder = _RECORDER
        if recorder is None:
            return original(self, url, **kwargs)
        started = time.perf_counter()
        response = original(self, url, **kwargs)
        elapsed = time.perf_counter() - started
        try:
            op = operation(method, url, kwargs.get("params"))
            recorder.add(op, _callers(), elapsed)
            if op == "container create" and response.status_code < 300:
                _remember(recorder, kwargs, response)
        except Exception:  # noqa: BLE001 - measuring must never break the call
            recorder.failures += 1
        return response

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


def _remember(recorder: Recorder, kwargs: dict[str, Any], response: Any) -> None:
    body = kwargs.get("data")
    config = json.loads(body) if isinstance(body, (str, bytes)) else {}
    params = kwargs.get("params") or {}
    container_id = str(response.json().get("Id", ""))
    labels = config.get("Labels") or {}
    recorder.container(
        container_id,
        name=str(params.get("name") or ""),
        role=str(labels.get(ROLE_LABEL, "")),
        image=str(config.get("Image") or ""),
    )


def install(directory: Path | str) -> Recorder:
    """Start recording in this process (idempotent); returns the recorder."""
    global _RECORDER
    if _RECORDER is not None:
        return _RECORDER
    from docker.api.client import APIClient

    for verb in ("get", "post", "put", "delete"):
        attr = f"_{verb}"
        current = getattr(APIClient, attr)
        if not hasattr(current, "__wrapped__"):
            setattr(APIClient, attr, _wrap(verb.upper(), current))
    _RECORDER = Recorder(Path(directory))
    os.register_at_fork(after_in_child=_RECORDER.reset)
    atexit.register(_RECORDER.write)
    return _RECORDER


def flush() -> None:
    if _RECORDER is not None:
        _RECORDER.write()


# -- the pytest plugin side (``-p docker_ops``) -------------------------------------

if os.environ.get(ENV):
    install(os.environ[ENV])


def pytest_unconfigure(config: Any) -> None:
    flush()
