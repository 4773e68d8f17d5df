"""The services a project registers, by name: from pyproject.toml and from its conftest.

``pyproject.toml`` (the rootdir's)::

    [tool.parallel-isolation.services.echo]
    command = ["{python}", "services/echo.py", "--verbose"]   # or a string, split like a shell
    cwd = "."                                                 # relative to the rootdir
    env = { ECHO_GREETING = "hi" }
    env-names = { host = "MQTT_HOST", prefix = "MQTT_TOPIC_PREFIX", client-id = false }
    image = "my-services:latest"                              # docker backend (optional)
    container-command = ["python3", "/app/echo.py"]
    ready = { log = "listening" }      # or { mqtt = "echo/ready", payload = "up" },
                                       # { port = 8080 }, { port-env = "HTTP_PORT" },
                                       # { call = "mypkg.checks:echo_ready" }
    ready-timeout = 30

A conftest adds :class:`~parallel_isolation.services.spec.ServiceSpec` objects
by overriding the ``isolation_services`` fixture.  A name registered twice is
an error naming both places.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from parallel_isolation.project import TOOL_TABLE, Project, ProjectError
from parallel_isolation.services.spec import (
    CallableReady,
    EnvNames,
    LogReady,
    MqttReady,
    PortReady,
    Readiness,
    ServiceConfigError,
    ServiceSpec,
)

__all__ = ["ServiceCatalog", "UnknownServiceError", "specs_from_project"]

_KEYS = frozenset(
    {"command", "module", "cwd", "env", "env-names", "image", "container-command", "ready"}
    | {"ready-timeout"}
)
_READY_KEYS = {"mqtt": {"payload"}, "log": set(), "port": set(), "port-env": set(), "call": set()}
_ROLE_KEYS = {role.replace("_", "-"): role for role in EnvNames.roles()}


class UnknownServiceError(KeyError):
    """A test asked for a service nobody registered."""

    def __str__(self) -> str:
        return str(self.args[0])


class ServiceCatalog(Mapping[str, ServiceSpec]):
    """Registered services by name; built once per project, extended per test."""

    def __init__(self, specs: Iterable[ServiceSpec] = ()) -> None:
        self._specs: dict[str, ServiceSpec] = {}
        self.add(specs)

    def add(self, specs: Iterable[ServiceSpec]) -> ServiceCatalog:
        for spec in specs:
            if not isinstance(spec, ServiceSpec):
                msg = f"a service registration must be a ServiceSpec, got {spec!r}"
                raise ServiceConfigError(msg)
            known = self._specs.get(spec.name)
            if known is not None and known != spec:
                msg = (
                    f"service {spec.name!r} is registered twice: in {known.origin or '?'} and in "
                    f"{spec.origin or '?'}; keep one, or rename one of them"
                )
                raise ServiceConfigError(msg)
            self._specs[spec.name] = spec
        return self

    def with_specs(self, specs: Iterable[ServiceSpec]) -> ServiceCatalog:
        """A new catalog: this one plus ``specs``."""
        return ServiceCatalog(self._specs.values()).add(specs)

    def __getitem__(self, name: str) -> ServiceSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs)) or "none"
            msg = (
                f"unknown service {name!r} (registered: {known}); register it under "
                f"[tool.{TOOL_TABLE}.services.{name}] in pyproject.toml or return a ServiceSpec "
                "named so from the isolation_services fixture"
            )
            raise UnknownServiceError(msg) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


def _argv(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(shlex.split(value))
    if isinstance(value, list) and all(isinstance(arg, (str, int, float)) for arg in value):
        return tuple(str(arg) for arg in value)
    msg = f"{where}: {key} must be a list of strings or one string, got {value!r}"
    raise ServiceConfigError(msg)


def _env_names(value: Any, where: str) -> EnvNames:
    if not isinstance(value, Mapping):
        msg = f'{where}: env-names must be a table (role = "VARIABLE" or false), got {value!r}'
        raise ServiceConfigError(msg)
    unknown = sorted(set(value) - set(_ROLE_KEYS))
    if unknown:
        msg = f"{where}: env-names has unknown role(s) {', '.join(unknown)}; roles: {', '.join(_ROLE_KEYS)}"
        raise ServiceConfigError(msg)
    chosen: dict[str, str | None] = {}
    for key, var in value.items():
        if var is False:
            chosen[_ROLE_KEYS[key]] = None
        elif isinstance(var, str):
            chosen[_ROLE_KEYS[key]] = var
        else:
            msg = f"{where}: env-names.{key} must be a variable name or false, got {var!r}"
            raise ServiceConfigError(msg)
    return EnvNames(**chosen)


def _ready(value: Any, timeout: Any, where: str) -> Readiness:
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        msg = f"{where}: ready-timeout must be a positive number of seconds, got {timeout!r}"
        raise ServiceConfigError(msg)
    options: dict[str, Any] = {} if timeout is None else {"timeout": float(timeout)}
    if value is None:
        return MqttReady(**options)
    kinds = [key for key in _READY_KEYS if isinstance(value, Mapping) and key in value]
    if not isinstance(value, Mapping) or len(kinds) != 1:
        msg = (
            f"{where}: ready must be a table with one of {', '.join(_READY_KEYS)} "
            f'(e.g. ready = {{ log = "listening" }}), got {value!r}'
        )
        raise ServiceConfigError(msg)
    kind = kinds[0]
    extra = sorted(set(value) - {kind} - _READY_KEYS[kind])
    if extra:
        msg = f"{where}: ready = {{ {kind} = ... }} does not take {', '.join(extra)}"
        raise ServiceConfigError(msg)
    raw = value[kind]
    if kind == "port":
        if not isinstance(raw, int) or not 0 < raw < 65536:
            msg = f"{where}: ready.port must be a port number, got {raw!r}"
            raise ServiceConfigError(msg)
        return PortReady(port=raw, **options)
    if not isinstance(raw, str) or not raw:
        msg = f"{where}: ready.{kind} must be a non-empty string, got {raw!r}"
        raise ServiceConfigError(msg)
    if kind == "mqtt":
        payload = value.get("payload", "online")
        if payload is not False and not isinstance(payload, str):
            msg = (
                f"{where}: ready.payload must be a string (or false: any payload), got {payload!r}"
            )
            raise ServiceConfigError(msg)
        return MqttReady(topic=raw, payload=None if payload is False else payload, **options)
    if kind == "log":
        return LogReady(pattern=raw, **options)
    if kind == "port-env":
        return PortReady(env=raw, **options)
    if ":" not in raw:
        msg = f'{where}: ready.call must be "module:function", got {raw!r}'
        raise ServiceConfigError(msg)
    return CallableReady(check=raw, **options)


def _spec(project: Project, name: str, entry: Any) -> ServiceSpec:
    where = f"{project.pyproject}: [tool.{TOOL_TABLE}.services.{name}]"
    if not isinstance(entry, Mapping):
        msg = f"{where} must be a table (command, env, ready ...)"
        raise ServiceConfigError(msg)
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        msg = f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        raise ServiceConfigError(msg)
    env = entry.get("env", {})
    if not isinstance(env, Mapping) or not all(
        isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in env.values()
    ):
        msg = f"{where}: env must be a table of strings or numbers, got {env!r}"
        raise ServiceConfigError(msg)
    strings: dict[str, str] = {}
    for key in ("module", "cwd", "image"):
        value = entry.get(key)
        if value is not None and not isinstance(value, str):
            msg = f"{where}: {key} must be a string, got {value!r}"
            raise ServiceConfigError(msg)
        if value is not None:
            strings[key] = value
    try:
        return ServiceSpec(
            name=name,
            command=_argv(entry["command"], where, "command") if "command" in entry else (),
            module=strings.get("module", ""),
            cwd=strings.get("cwd"),
            env={str(k): str(v) for k, v in env.items()},
            env_names=_env_names(entry["env-names"], where) if "env-names" in entry else EnvNames(),
            image=strings.get("image", ""),
            container_command=_argv(entry["container-command"], where, "container-command")
            if "container-command" in entry
            else (),
            ready=_ready(entry.get("ready"), entry.get("ready-timeout"), where),
            origin=where,
        )
    except ServiceConfigError as error:
        raise ServiceConfigError(str(error)) from None


def specs_from_project(project: Project) -> list[ServiceSpec]:
    """The services ``[tool.parallel-isolation.services]`` of the project registers."""
    try:
        table = project.tool_section("services")
    except ProjectError as error:
        raise ServiceConfigError(str(error)) from None
    return [_spec(project, name, entry) for name, entry in table.items()]
