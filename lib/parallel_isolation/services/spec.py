"""What a service is: its command, its environment names, its image, how it says it is ready.

A :class:`ServiceSpec` is registered once per project (``[tool.parallel-isolation.services]``
in ``pyproject.toml``, or the ``isolation_services`` fixture in a conftest) and
started by name from a test with ``parallel_test_context.services.start(name)``.

The runner hands every service the test's broker and namespace.  Which
variables carry them is the service's :class:`EnvNames`; its command line may
carry them too, through placeholders replaced in every argument:

``{host}`` ``{port}`` ``{url}`` (``mqtt://host:port``) ``{prefix}`` (the test's
topic prefix) ``{client_id}`` ``{name}`` (the service's name) ``{python}`` (the
interpreter running the tests) ``{rootdir}`` (the project's rootdir).
Any other braces (``${HOME}``, ``{x}``) are left as they are.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeAlias

__all__ = [
    "PLACEHOLDERS",
    "CallableReady",
    "EnvNames",
    "LogReady",
    "MqttReady",
    "PortReady",
    "Readiness",
    "ServiceConfigError",
    "ServiceSpec",
    "substitute",
]

DEFAULT_READY_TIMEOUT = 20.0
PLACEHOLDERS = ("host", "port", "url", "prefix", "client_id", "name", "python", "rootdir")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ServiceConfigError(ValueError):
    """A service definition that cannot work; the message names the service and the fix."""


def substitute(argument: str, values: Mapping[str, str]) -> str:
    """``argument`` with each known ``{placeholder}`` replaced by its value."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], argument)


@dataclass(frozen=True)
class EnvNames:
    """Which environment variables receive the broker and the test's namespace.

    Each role names a variable, or None for "do not set".  The defaults are
    the variables ``service_env()`` has always set; a service that reads
    ``MQTT_HOST`` and ``MQTT_TOPIC_PREFIX`` says
    ``EnvNames(host="MQTT_HOST", prefix="MQTT_TOPIC_PREFIX")``.
    """

    host: str | None = "MQTT_BROKER"
    port: str | None = "MQTT_PORT"
    url: str | None = None  # mqtt://host:port
    prefix: str | None = "TOPIC_PREFIX"
    client_id: str | None = "MQTT_CLIENT_ID"
    name: str | None = "SERVICE_NAME"

    @classmethod
    def roles(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def mapping(self) -> dict[str, str]:
        """Role to variable, for the roles that are set."""
        return {role: var for role in self.roles() if (var := getattr(self, role)) is not None}

    def apply(self, values: Mapping[str, str]) -> dict[str, str]:
        """The environment: each mapped variable with its role's value."""
        return {var: values[role] for role, var in self.mapping().items()}

    def problems(self) -> list[str]:
        """What is wrong with this mapping (empty, bad names, two roles on one variable)."""
        found: list[str] = []
        seen: dict[str, str] = {}
        for role in self.roles():
            var = getattr(self, role)
            if var is None:
                continue
            if not isinstance(var, str) or not var.strip():
                found.append(
                    f"the variable for {role} is empty ({var!r}); give a variable name, or "
                    f"false (None in Python) to leave {role} out"
                )
                continue
            if not _VARIABLE.fullmatch(var):
                found.append(f"{var!r} (for {role}) is not an environment variable name")
            if var in seen:
                found.append(f"{var} receives both {seen[var]} and {role}; give each its own")
            seen[var] = role
        return found


@dataclass(frozen=True)
class MqttReady:
    """Ready when a message arrives on ``topic`` (in the test's namespace) after the start.

    ``{name}`` in the topic is the service's name; ``payload`` None accepts any.
    """

    topic: str = "system/{name}/lwt"
    payload: bytes | str | None = b"online"
    timeout: float = DEFAULT_READY_TIMEOUT

    def describe(self, service: str) -> str:
        shown = "any message" if self.payload is None else f"payload {self.expected()!r}"
        return f"{shown} on topic {self.topic.replace('{name}', service)!r}"

    def expected(self) -> bytes | None:
        if self.payload is None:
            return None
        return self.payload.encode() if isinstance(self.payload, str) else self.payload


@dataclass(frozen=True)
class LogReady:
    """Ready when a line of the service's log matches ``pattern`` (a regular expression)."""

    pattern: str
    timeout: float = DEFAULT_READY_TIMEOUT

    def describe(self, service: str) -> str:
        return f"a log line matching {self.pattern!r}"


@dataclass(frozen=True)
class PortReady:
    """Ready when a TCP port accepts connections.

    ``port`` is a fixed port; or ``env`` names a variable that receives a port
    reserved for the test (the service listens there).
    """

    port: int | None = None
    env: str | None = None
    timeout: float = DEFAULT_READY_TIMEOUT

    def describe(self, service: str) -> str:
        where = f"port {self.port}" if self.port is not None else f"the port in ${self.env}"
        return f"a TCP connection to {where}"


@dataclass(frozen=True)
class CallableReady:
    """Ready when ``check(service)`` returns true (called every ``interval`` seconds).

    ``check`` is a callable or a ``"module:function"`` string (for pyproject.toml).
    An exception in the check counts as "not yet" and is shown if time runs out.
    """

    check: Callable[[Any], object] | str
    timeout: float = DEFAULT_READY_TIMEOUT
    interval: float = 0.1

    def describe(self, service: str) -> str:
        name = self.check if isinstance(self.check, str) else getattr(self.check, "__name__", "?")
        return f"the check {name} to pass"

    def resolve(self) -> Callable[[Any], object]:
        if not isinstance(self.check, str):
            return self.check
        module, _, attribute = self.check.partition(":")
        try:
            target: Callable[[Any], object] = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            msg = f"readiness check {self.check!r} cannot be loaded: {error}"
            raise ServiceConfigError(msg) from None
        return target


Readiness: TypeAlias = MqttReady | LogReady | PortReady | CallableReady


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service, on every backend.

    ``command`` is the argv (any executable, any interpreter; placeholders
    allowed) and ``module`` a shorthand for ``[{python}, "-m", module]``.
    ``cwd`` is relative to the project's rootdir.  ``env`` is added to the
    service's environment.  On the docker backend a service with an
    ``image`` runs as a container (``container_command``, default: the
    module under ``python3``, else the image's own command) on the worker's
    network; one without an image runs as a process there too.
    """

    name: str
    command: Sequence[str] = ()
    module: str = ""
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    env_names: EnvNames = field(default_factory=EnvNames)
    image: str = ""
    container_command: Sequence[str] = ()
    ready: Readiness = field(default_factory=MqttReady)
    origin: str = ""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            where = f" (registered in {self.origin})" if self.origin else ""
            msg = f"service {self.name!r}{where}: " + "; ".join(problems)
            raise ServiceConfigError(msg)

    def problems(self) -> list[str]:
        found: list[str] = []
        if not isinstance(self.name, str) or not _SERVICE_NAME.fullmatch(self.name):
            found.append("its name must be letters, digits, '_', '.' or '-'")
        if isinstance(self.command, str):
            found.append("command must be a list of arguments, not one string")
        elif self.command and not all(isinstance(arg, str) for arg in self.command):
            found.append("every argument of command must be a string")
        if not self.command and not self.module and not self.image:
            found.append("give a command (argv), a module, or an image")
        if self.command and self.module:
            found.append("give a command or a module, not both")
        if self.command and not str(self.command[0]).strip():
            found.append("the first element of command (the program) is empty")
        found += [f"env_names: {problem}" for problem in self.env_names.problems()]
        mapped = self.env_names.mapping()
        argv = [*self.command, *self.container_command]
        told = {role for role in ("host", "port", "url") if role in mapped} | {
            match.group(1)
            for arg in argv
            if isinstance(arg, str)
            for match in _PLACEHOLDER.finditer(arg)
        }
        if not ({"host", "port"} <= told or "url" in told):
            found.append(
                "it would not learn where the broker is: map host and port (or url) in "
                "env_names, or pass {host} and {port} (or {url}) in its command"
            )
        clashes = sorted(set(self.env).intersection(mapped.values()))
        if clashes:
            found.append(
                f"env sets {', '.join(clashes)}, which env_names gives the broker's values; "
                "remove them from env or map the roles to other names"
            )
        bad = sorted(key for key in self.env if not _VARIABLE.fullmatch(str(key)))
        if bad:
            found.append(f"env has names that are not variable names: {', '.join(bad)}")
        if isinstance(self.ready, PortReady):
            if (self.ready.port is None) == (self.ready.env is None):
                found.append("a port readiness needs a port or an env variable, one of them")
            if self.ready.env is not None and self.ready.env in mapped.values():
                found.append(f"the readiness port variable {self.ready.env} is also in env_names")
        if isinstance(self.ready, LogReady):
            try:
                re.compile(self.ready.pattern)
            except re.error as error:
                found.append(f"the log readiness pattern {self.ready.pattern!r}: {error}")
        if not isinstance(self.ready, (MqttReady, LogReady, PortReady, CallableReady)):
            found.append(
                f"ready must be MqttReady, LogReady, PortReady or CallableReady, got {self.ready!r}"
            )
        elif self.ready.timeout <= 0:
            found.append(f"the readiness timeout must be positive, got {self.ready.timeout}")
        return found

    @property
    def container_base(self) -> str:
        """Base of its container names (``_`` is not allowed in them everywhere)."""
        return self.name.replace("_", "-").replace(".", "-").lower()

    def process_argv(self, values: Mapping[str, str]) -> list[str]:
        """The argv of the process mode, placeholders replaced."""
        argv = list(self.command) if self.command else ["{python}", "-m", self.module]
        if not self.command and not self.module:
            msg = (
                f"service {self.name!r} has only an image, so it runs on the docker backend "
                "only; give it a command (or module) to run it as a process"
            )
            raise ServiceConfigError(msg)
        return [substitute(arg, values) for arg in argv]

    def container_argv(self, values: Mapping[str, str]) -> list[str] | None:
        """The container's command (None: the image's own), placeholders replaced."""
        if self.container_command:
            argv = list(self.container_command)
        elif self.module:
            argv = ["python3", "-m", self.module]
        else:
            return None
        return [substitute(arg, values) for arg in argv]
