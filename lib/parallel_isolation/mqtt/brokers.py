"""Per-worker MQTT brokers behind one protocol.

Backends:

``process``
    the system's mosquitto as a child process, 127.0.0.1 only, generated
    config, no persistence, its own log file.
``embedded``
    amqtt (pure Python, from PyPI) in a child process with the same contract;
    what ``auto`` picks when mosquitto is not installed.
``docker``
    mosquitto in a container on the worker's network (registered by
    :mod:`parallel_isolation.containers.manager`).

Readiness is a real MQTT round trip on a canary topic, never a TCP poll or a
sleep.  ``restart()`` keeps the port.  Stopping is graceful, then forced, and
bounded; only this broker's own process or container is ever touched.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from parallel_isolation.artifacts import EventLog, make_private_dir
from parallel_isolation.host.ports import PortAllocator
from parallel_isolation.host.proc import ChildProcess, RunAs, tail
from parallel_isolation.identity import Identity
from parallel_isolation.mqtt.client import stop_network_loop
from parallel_isolation.ownership import marker_env

__all__ = [
    "BACKENDS",
    "MOSQUITTO_MISSING",
    "BrokerBackend",
    "BrokerCrashedError",
    "BrokerError",
    "BrokerStartError",
    "EmbeddedBackend",
    "ProcessBackend",
    "TestMQTTBroker",
    "find_mosquitto",
    "resolve_backend_name",
    "wait_until_ready",
]


class BrokerError(RuntimeError):
    """Base class of broker failures."""


class BrokerStartError(BrokerError):
    """The broker did not become ready; the message carries its log tail."""


class BrokerCrashedError(BrokerError):
    """The broker died while it was supposed to run."""


@runtime_checkable
class BrokerBackend(Protocol):
    """How one broker instance is launched and stopped.

    ``launch`` must raise ``OSError(EADDRINUSE)`` (or an error whose text says
    "address already in use" / "port is already allocated") when the port was
    taken, so the allocator retries with another one.
    """

    name: str

    @property
    def host(self) -> str:
        """Address clients on this host connect to."""
        ...

    def launch(self, port: int) -> None: ...

    def is_running(self) -> bool: ...

    def stop(self, grace: float) -> None: ...

    def kill(self) -> None: ...

    def log_tail(self, lines: int = 20) -> str: ...

    def describe(self) -> str: ...


MOSQUITTO_MISSING = (
    "the process backend needs mosquitto, which is not installed (not on PATH, nor in "
    "/usr/sbin or /usr/local/sbin)\n  fix: install it (apt-get install mosquitto) or choose "
    "--isolation-backend embedded"
)
"""The one wording of "no mosquitto" (start-up check and broker alike)."""


def find_mosquitto() -> str | None:
    """The mosquitto binary: on PATH, else Debian's /usr/sbin location."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class _ChildBackend:
    """Shared mechanics of the backends that run a local child process."""

    name = "child"
    role = "broker"

    def __init__(self, *, identity: Identity, workdir: Path, log_path: Path) -> None:
        self.identity = identity
        self.workdir = workdir
        self.log_path = log_path
        self.port: int | None = None
        self._child: ChildProcess | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def argv(self, port: int) -> list[str]:
        raise NotImplementedError

    def child_options(self, port: int) -> dict[str, Any]:
        """Extra :class:`ChildProcess` arguments (the user to run as, its input)."""
        return {}

    def launch(self, port: int) -> None:
        make_private_dir(self.workdir)
        self.port = port
        env = {**os.environ, **marker_env(self.identity, self.role)}
        self._child = ChildProcess(
            self.argv(port), log_path=self.log_path, env=env, **self.child_options(port)
        )
        self._child.start()

    def is_running(self) -> bool:
        return self._child is not None and self._child.is_running()

    def returncode(self) -> int | None:
        return None if self._child is None else self._child.returncode()

    def stop(self, grace: float) -> None:
        if self._child is not None:
            self._child.stop(grace=grace)

    def kill(self) -> None:
        if self._child is not None:
            self._child.kill()

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log_path, lines)

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.pid

    def describe(self) -> str:
        return f"{self.name} broker pid {self.pid} on {self.host}:{self.port} (log {self.log_path})"


class ProcessBackend(_ChildBackend):
    """System mosquitto on 127.0.0.1, generated config, no persistence.

    Started by root, mosquitto would switch to its own user by itself, and a
    change of user clears ``PR_SET_PDEATHSIG``: a killed worker would leave
    its broker behind.  So root starts it as that user from the first
    instruction (``mosquitto``, else ``nobody``), with the death signal set
    after the switch, and hands it the config through a pipe the child
    creates as that user (the run's artifacts are private to root).  Only
    when neither user exists does it run as root (``user root``), with the
    cost that a broker any local user can connect to runs with root's rights.
    """

    name = "process"
    USERS = ("mosquitto", "nobody")

    def __init__(self, *, identity: Identity, workdir: Path, log_path: Path) -> None:
        super().__init__(identity=identity, workdir=workdir, log_path=log_path)
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError(MOSQUITTO_MISSING)
        self.binary = binary
        self.run_as = RunAs.find(*self.USERS) if os.geteuid() == 0 else None

    def config_text(self, port: int) -> str:
        return "\n".join(
            [
                f"# generated for {self.identity.describe()}",
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "persistence false",
                "log_dest stdout",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "connection_messages true",
                "log_timestamp true",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                "max_queued_messages 10000",
                # Without it mosquitto holds small messages back ~40 ms (Nagle
                # against the client's delayed ACK): every wait gets slower.
                "set_tcp_nodelay true",
                # Root without an unprivileged user to start it as: mosquitto
                # must not switch users itself (see the class docstring).
                *(["user root"] if os.geteuid() == 0 and self.run_as is None else []),
                "",
            ]
        )

    def argv(self, port: int) -> list[str]:
        config = self.workdir / f"mosquitto-{port}.conf"  # kept with the logs, for humans
        config.write_text(self.config_text(port))
        return [self.binary, "-c", str(config) if self.run_as is None else "/dev/stdin"]

    def child_options(self, port: int) -> dict[str, Any]:
        if self.run_as is None:
            return {}
        return {"run_as": self.run_as, "stdin_text": self.config_text(port).encode()}


class EmbeddedBackend(_ChildBackend):
    """amqtt in a child Python process (see ``parallel_isolation.mqtt.embedded``)."""

    name = "embedded"

    def argv(self, port: int) -> list[str]:
        return [sys.executable, "-m", "parallel_isolation.mqtt.embedded", "--port", str(port)]


BackendFactory = Callable[..., BrokerBackend]
BACKENDS: dict[str, BackendFactory] = {
    "process": ProcessBackend,
    "embedded": EmbeddedBackend,
}


def resolve_backend_name(requested: str) -> str:
    """``auto`` -> ``process`` when mosquitto is installed, else ``embedded``."""
    if requested == "auto":
        return "process" if find_mosquitto() else "embedded"
    if requested not in (*BACKENDS, "docker"):
        msg = f"unknown broker backend {requested!r}; choose auto, {', '.join(sorted({*BACKENDS, 'docker'}))}"
        raise ValueError(msg)
    return requested


def wait_until_ready(
    host: str,
    port: int,
    *,
    timeout: float,
    alive: Callable[[], bool],
    client_id: str,
) -> float:
    """Connect, subscribe, publish and receive on a canary topic.

    Returns the seconds it took.  Raises :class:`BrokerStartError` when the
    deadline passes or :class:`BrokerCrashedError` when ``alive()`` turns
    false while waiting.
    """
    started = time.monotonic()
    deadline = started + timeout
    canary = f"_isolation/ready/{uuid.uuid4().hex}"
    connected = threading.Event()
    subscribed = threading.Event()
    got = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_connect = lambda *_a: connected.set()
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_message = lambda _c, _u, _m: got.set()

    def check_alive(step: str) -> None:
        if not alive():
            msg = f"the broker process exited before it became ready ({step})"
            raise BrokerCrashedError(msg)

    def await_event(event: threading.Event, step: str) -> None:
        # Short slices so a broker that dies meanwhile is noticed at once.
        while not event.wait(0.02):
            check_alive(step)
            if time.monotonic() > deadline:
                msg = f"broker at {host}:{port}: {step} did not complete within {timeout:.1f} s"
                raise BrokerStartError(msg)

    last_error = "no attempt"
    try:
        while True:
            check_alive("connect")
            try:
                client.connect(host, port, keepalive=10)
                break
            except OSError as error:
                last_error = str(error)
            if time.monotonic() > deadline:
                msg = f"broker at {host}:{port} refused connections for {timeout:.1f} s ({last_error})"
                raise BrokerStartError(msg)
            time.sleep(0.005)  # waiting for a listen socket: there is no event to wait on
        client.loop_start()
        await_event(connected, "CONNACK")
        client.subscribe(canary, qos=1)
        await_event(subscribed, "subscribe")
        client.publish(canary, b"ready", qos=1)
        await_event(got, "canary round trip")
        return time.monotonic() - started
    finally:
        client.disconnect()
        stop_network_loop(client)


class TestMQTTBroker:
    """One worker's MQTT broker on an allocated port.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.  If
    :meth:`start` fails, everything it acquired is released before the error
    propagates.
    """

    __test__ = False

    def __init__(
        self,
        *,
        identity: Identity,
        allocator: PortAllocator,
        workdir: Path,
        backend: str | BackendFactory = "auto",
        events: EventLog | None = None,
        name: str = "mqtt-broker",
        ready_timeout: float = 15.0,
        stop_grace: float = 3.0,
        backend_options: dict[str, Any] | None = None,
    ) -> None:
        self.identity = identity
        self.allocator = allocator
        self.workdir = workdir
        self.events = events
        self.name = name
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self.log_path = workdir / f"{name}.log"
        if isinstance(backend, str):
            requested = resolve_backend_name(backend)
            factory = BACKENDS.get(requested)
            if factory is None:
                msg = (
                    f"broker backend {requested!r} needs its factory: pass "
                    "backend=functools.partial(DockerBrokerBackend, manager=...) "
                    "(the worker context does this on the docker backend)"
                )
                raise BrokerError(msg)
        else:
            factory = backend
        self.backend: BrokerBackend = factory(
            identity=identity, workdir=workdir, log_path=self.log_path, **(backend_options or {})
        )
        self.backend_name = self.backend.name
        self.port: int | None = None
        self.ready_seconds: float | None = None
        self.restarts = 0
        self._expected_running = False
        self._ready_serial = 0

    # -- lifecycle ----------------------------------------------------

    @property
    def host(self) -> str:
        return self.backend.host

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> TestMQTTBroker:
        if self._expected_running:
            return self
        try:
            if self.port is None:
                self.port, _ = self.allocator.with_port(self.name, self._launch_and_wait)
            else:
                self._launch_and_wait(self.port)
        except BaseException:
            self.backend.stop(grace=0.5)
            raise
        self._expected_running = True
        self._emit(
            "broker_started", port=self.port, backend=self.backend_name, ready_s=self.ready_seconds
        )
        return self

    def _launch_and_wait(self, port: int) -> None:
        """Launch on ``port`` and wait for readiness.

        A broker that exits because its port was taken (a foreign listener won
        the race after our probe) surfaces as ``EADDRINUSE`` so the allocator
        moves on to the next port.
        """
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.backend.launch(port)
        try:
            self._await_ready(port)
        except BrokerError:
            fresh = self.log_path.read_bytes()[offset:] if self.log_path.exists() else b""
            if not self.backend.is_running() and b"address already in use" in fresh.lower():
                self.backend.stop(grace=0.5)
                raise OSError(
                    errno.EADDRINUSE, f"broker port {port}: Address already in use"
                ) from None
            raise

    def _await_ready(self, port: int) -> None:
        self._ready_serial += 1
        client_id = f"ready-{self.identity.worker_id}-{self.identity.run_id}-{self._ready_serial}"
        try:
            self.ready_seconds = wait_until_ready(
                self.host,
                port,
                timeout=self.ready_timeout,
                alive=self.backend.is_running,
                client_id=client_id,
            )
        except BrokerError as error:
            msg = (
                f"{self.backend.describe()} did not become ready: {error}\n"
                f"--- last log lines ---\n{self.backend.log_tail()}"
                "--- hint: run `parallel-isolation validate` for the run's event log, "
                "or try --isolation-backend embedded ---"
            )
            raise type(error)(msg) from error

    def stop(self) -> None:
        """Stop the broker (graceful, then forced) and give back its port."""
        self._expected_running = False
        self.backend.stop(grace=self.stop_grace)
        if self.port is not None:
            self._emit("broker_stopped", port=self.port)
            self.allocator.release(self.port)
            self.port = None

    def pause(self) -> None:
        """Stop the broker but keep its port reserved (for outage tests)."""
        self._expected_running = False
        # Recorded before stopping: clients see the broker go from this moment
        # (a container takes a moment to stop), and validation uses the event
        # to tell an expected outage from a real one.
        self._emit("broker_paused", port=self.port)
        self.backend.stop(grace=self.stop_grace)

    def resume(self) -> None:
        """Start again on the same port after :meth:`pause` or a crash."""
        if self.port is None:
            msg = "resume() needs a broker that was started before"
            raise BrokerError(msg)
        self.restarts += 1
        self._launch_and_wait(self.port)
        self._expected_running = True
        self._emit("broker_restarted", port=self.port, ready_s=self.ready_seconds)

    def restart(self) -> None:
        """Stop and start again on the same port; clients must reconnect."""
        self.pause()
        self.resume()

    def kill(self) -> None:
        """SIGKILL the broker without telling anyone (crash simulation)."""
        self.backend.kill()

    def is_running(self) -> bool:
        return self.backend.is_running()

    def crashed(self) -> bool:
        """True when the broker died although nobody stopped it."""
        return self._expected_running and not self.backend.is_running()

    def check_alive(self) -> None:
        """Raise :class:`BrokerCrashedError` with the log tail if it died."""
        if self.crashed():
            self._emit("broker_crashed", port=self.port, log_tail=self.backend.log_tail(10))
            msg = (
                f"{self.backend.describe()} died during the run\n"
                f"--- last log lines ---\n{self.backend.log_tail()}"
            )
            raise BrokerCrashedError(msg)

    def log_tail(self, lines: int = 20) -> str:
        return self.backend.log_tail(lines)

    def _emit(self, kind: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(kind, broker=self.name, **fields)

    def __enter__(self) -> TestMQTTBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"TestMQTTBroker({self.backend_name}, {self.host}:{self.port}, worker={self.identity.worker_id})"
