"""Sink positions: the arguments of known APIs that take a topic, a client id,
a broker address or a Docker name (paho, aiomqtt, docker-py, environments,
``docker`` command lines)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal

import libcst as cst

from parallel_isolation.migrate._facts import ModuleFacts, dotted, last_name, string_value
from parallel_isolation.migrate._values import namespaceish

__all__ = [
    "KNOWN_PORTS",
    "SUBPROCESS",
    "TOPIC_KINDS",
    "EnvDict",
    "Kind",
    "Sink",
    "argument",
    "call_sinks",
    "cli_sinks",
    "cli_tokens",
    "env_dict",
    "env_kind",
    "keyword_arg",
    "positional_args",
    "unwrap_conversion",
]

Kind = Literal["topic", "filter", "either", "client_id", "host", "port", "container", "network"]

KNOWN_PORTS = frozenset({1883, 8883, 18833})
TOPIC_KINDS = frozenset({"topic", "filter", "either"})
_HOST_KWS_ANYWHERE = frozenset(
    {"mqtt_host", "broker_host", "mqtt_broker", "broker_address", "mqtt_server"}
)
_PORT_KWS_ANYWHERE = frozenset({"mqtt_port", "broker_port"})
_MQTT_CALLS = frozenset(
    {"connect", "connect_async", "Client", "single", "multiple", "simple", "callback"}
)
_ENV_HOST = frozenset(
    {"MQTT_BROKER", "MQTT_HOST", "BROKER_HOST", "MQTT_BROKER_HOST", "MQTT_SERVER"}
)
_ENV_PORT = frozenset({"MQTT_PORT", "BROKER_PORT", "MQTT_BROKER_PORT"})
_ENV_CLIENT = frozenset({"MQTT_CLIENT_ID", "CLIENT_ID", "MQTT_CLIENTID"})
_ENV_PREFIX = frozenset({"TOPIC_PREFIX"})
_PREFIX_KEY = re.compile(r"[A-Z][A-Z0-9_]*TOPIC[A-Z0-9_]*PREFIX|MQTT_[A-Z0-9_]*PREFIX")
SUBPROCESS = frozenset(
    {
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
        "os.system",
        "os.popen",
        "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
    }
)


@dataclass(frozen=True, eq=False)
class Sink:
    """An argument position of a known kind (``publish``'s topic, ``name=``...)."""

    node: cst.BaseExpression
    kind: Kind
    label: str
    internal: bool = False


def positional_args(call: cst.Call) -> list[cst.BaseExpression]:
    values = []
    for arg in call.args:
        if arg.keyword is not None or arg.star:
            break
        values.append(arg.value)
    return values


def keyword_arg(call: cst.Call, *names: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in names:
            return arg.value
    return None


def argument(call: cst.Call, index: int, *keywords: str) -> cst.BaseExpression | None:
    positional = positional_args(call)
    if index < len(positional):
        return positional[index]
    return keyword_arg(call, *keywords) if keywords else None


def _filters(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    """``subscribe``'s argument shapes: a filter, ``(filter, qos)``, a list of either."""
    if isinstance(expr, cst.Tuple) and expr.elements:
        return [expr.elements[0].value]
    if isinstance(expr, cst.List):
        found = []
        for element in expr.elements:
            value = element.value
            if isinstance(value, cst.Tuple) and value.elements:
                found.append(value.elements[0].value)
            elif not isinstance(element, cst.StarredElement):
                found.append(value)
        return found
    return [expr]


def unwrap_conversion(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``str(x)``/``int(x)`` -> ``x`` (a port in an environment is often ``str(PORT)``)."""
    if (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Name)
        and expr.func.value in ("str", "int")
        and len(expr.args) == 1
        and not expr.args[0].star
    ):
        return expr.args[0].value
    return expr


def env_kind(key: str, prefix_env: str | None = None) -> Kind | Literal["prefix"] | None:
    """What an environment variable configures: the broker, the client id, the topic prefix."""
    if key in _ENV_HOST:
        return "host"
    if key in _ENV_PORT:
        return "port"
    if key in _ENV_CLIENT:
        return "client_id"
    if key == prefix_env or key in _ENV_PREFIX or _PREFIX_KEY.fullmatch(key):
        return "prefix"
    return None


def call_sinks(call: cst.Call, facts: ModuleFacts) -> list[Sink]:
    """The sink positions of a call to a known API (paho, docker, os.environ...)."""
    func = call.func
    method = last_name(func)
    if method is None:
        return []
    if isinstance(func, cst.Name) and func.value not in facts.aliases:
        return []  # a local function: its summary speaks for it
    qualified = facts.qualify(func) or ""
    sinks: list[Sink] = []

    def add(expr: cst.BaseExpression | None, kind: Kind, label: str) -> None:
        if expr is not None:
            if kind == "port":
                expr = unwrap_conversion(expr)
            sinks.append(Sink(expr, kind, label))

    label = f"{method}()"
    if method in ("publish", "will_set") and not qualified.endswith("publish.single"):
        add(argument(call, 0, "topic"), "topic", label)
    elif method == "subscribe" and not qualified.endswith("subscribe.simple"):
        topic = argument(call, 0, "topic")
        for expr in _filters(topic) if topic is not None else []:
            add(expr, "filter", label)
    elif method in ("unsubscribe", "simple"):
        topics = argument(call, 0, "topic", "topics")
        if isinstance(topics, cst.List | cst.Tuple):
            for element in topics.elements:
                add(element.value, "filter", label)
        else:
            add(topics, "filter", label)
    elif method in ("message_callback_add", "message_callback_remove", "topic_matches_sub"):
        add(argument(call, 0, "sub"), "filter", label)
    elif method == "single":
        add(argument(call, 0, "topic"), "topic", label)

    if method in ("connect", "connect_async", "connect_ex") or qualified.endswith(
        "create_connection"
    ):
        first = argument(call, 0, "host")
        if isinstance(first, cst.Tuple) and len(first.elements) == 2:
            add(first.elements[0].value, "host", label)
            add(first.elements[1].value, "port", label)
        elif method != "connect_ex":
            port = argument(call, 1, "port")
            if port is not None or facts.uses_raw_mqtt:
                add(first, "host", label)
                add(port, "port", label)
    if method == "Client":
        if qualified.startswith(("aiomqtt", "asyncio_mqtt")):
            add(argument(call, 0, "hostname"), "host", label)
            add(argument(call, 1, "port"), "port", label)
            add(keyword_arg(call, "identifier", "client_id"), "client_id", label)
        else:
            positional = positional_args(call)
            keyword = keyword_arg(call, "client_id", "clientid")
            if keyword is not None:
                add(keyword, "client_id", label)
            elif positional:
                head = dotted(positional[0]) or ""
                if "CallbackAPIVersion" in head or "VERSION" in head:
                    if len(positional) > 1:
                        add(positional[1], "client_id", label)
                else:
                    add(positional[0], "client_id", label)
    else:
        add(keyword_arg(call, "client_id"), "client_id", label)
    for arg in call.args:
        kw = arg.keyword.value if arg.keyword is not None else None
        if kw is None:
            continue
        if kw in _HOST_KWS_ANYWHERE or (
            method in _MQTT_CALLS and kw in ("host", "hostname", "broker")
        ):
            if not any(s.node is arg.value for s in sinks):
                add(arg.value, "host", label)
        elif (
            kw in _PORT_KWS_ANYWHERE
            or (
                kw == "port"
                and (
                    method in _MQTT_CALLS
                    or (
                        isinstance(arg.value, cst.Integer)
                        and int(arg.value.evaluated_value) in KNOWN_PORTS
                    )
                )
            )
        ) and not any(s.node is arg.value for s in sinks):
            add(arg.value, "port", label)

    receiver = func.value if isinstance(func, cst.Attribute) else None
    holder = last_name(receiver) if receiver is not None else None
    if holder == "containers":
        if method in ("run", "create"):
            add(keyword_arg(call, "name"), "container", f"containers.{method}(name=...)")
            add(keyword_arg(call, "network"), "network", f"containers.{method}(network=...)")
        elif method == "get":
            add(argument(call, 0, "container_id"), "container", "containers.get()")
    elif holder == "networks" and method in ("create", "get"):
        add(argument(call, 0, "name", "network_id"), "network", f"networks.{method}()")
    elif holder == "networks" and method == "list":
        listed = keyword_arg(call, "names")
        if isinstance(listed, cst.List | cst.Tuple):
            for element in listed.elements:
                if not isinstance(element, cst.StarredElement):
                    add(element.value, "network", "networks.list(names=...)")
    if method in ("setenv", "putenv") or (
        method == "setdefault" and dotted(receiver or cst.Name("x")) == "os.environ"
    ):
        key = string_value(argument(call, 0) or cst.Name("x"))
        kind = env_kind(key) if key else None
        value = argument(call, 1, "value")
        if kind in ("host", "port", "client_id") and value is not None:
            add(value, kind, key or "environment")
    return sinks


@dataclass(frozen=True)
class EnvDict:
    """An environment mapping that configures an MQTT service."""

    host: cst.DictElement | None
    ports: tuple[cst.DictElement, ...]
    clients: tuple[cst.DictElement, ...]
    has_prefix: bool
    unknown_splat: bool
    last_mqtt_index: int
    #: Prefix variables it sets other than the one the services read.
    other_prefixes: tuple[str, ...] = ()


def env_dict(node: cst.Dict, prefix_env: str | None = None) -> EnvDict | None:
    """The MQTT settings of a literal environment mapping (None: it sets none).

    ``has_prefix`` means it sets ``prefix_env``, the variable the services
    read; another ``*_PREFIX`` is listed in ``other_prefixes``.
    """
    host: cst.DictElement | None = None
    ports: list[cst.DictElement] = []
    clients: list[cst.DictElement] = []
    has_prefix = False
    others: list[str] = []
    unknown_splat = False
    last = -1
    for index, element in enumerate(node.elements):
        if not isinstance(element, cst.DictElement):
            value = element.value
            if namespaceish(value) or (
                isinstance(value, cst.Call) and last_name(value.func) == "service_env"
            ):
                unknown_splat = True  # may well carry TOPIC_PREFIX
            continue
        key = string_value(element.key)
        kind = env_kind(key, prefix_env) if key else None
        if kind is None:
            continue
        last = index
        if kind == "host":
            host = element
        elif kind == "port":
            ports.append(element)
        elif kind == "client_id":
            clients.append(element)
        elif kind == "prefix":
            if prefix_env is None or key == prefix_env:
                has_prefix = True
            elif key is not None:
                others.append(key)
    if host is None and not ports and not clients:
        return None
    return EnvDict(
        host, tuple(ports), tuple(clients), has_prefix, unknown_splat, last, tuple(others)
    )


def cli_tokens(call: cst.Call) -> list[tuple[str | None, cst.BaseExpression | None]]:
    """The words of a command line passed to subprocess/os.system, with their nodes."""
    positional = positional_args(call)
    if not positional:
        return []
    first = positional[0]
    if isinstance(first, cst.List | cst.Tuple):
        return [
            (string_value(e.value), e.value)
            for e in first.elements
            if not isinstance(e, cst.StarredElement)
        ]
    text = string_value(first)
    if text is not None:
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        if len(positional) > 1:  # create_subprocess_exec("docker", "run", ...)
            return [(string_value(v), v) for v in positional]
        return [(w, None) for w in words]
    return []


def cli_sinks(call: cst.Call, facts: ModuleFacts) -> list[Sink]:
    """Names on a ``docker`` command line run through subprocess (list form)."""
    if (facts.qualify(call.func) or "") not in SUBPROCESS:
        return []
    tokens = cli_tokens(call)
    words = [word for word, _ in tokens]
    if not words or words[0] not in ("docker", "docker-compose"):
        return []
    sinks = []
    for index, (word, _node) in enumerate(tokens[:-1]):
        following, node = tokens[index + 1]
        if node is None or (following is not None and following.startswith("-")):
            continue
        before = words[index - 1] if index else None
        if word == "--name":
            sinks.append(Sink(node, "container", "docker --name"))
        elif word in ("--network", "--net") and following != "host":
            sinks.append(Sink(node, "network", f"docker {word}"))
        elif word in ("create", "rm", "connect", "disconnect", "inspect") and before == "network":
            sinks.append(Sink(node, "network", f"docker network {word}"))
        elif word in ("logs", "stop", "rm", "kill", "inspect", "exec", "restart") and (
            before == "docker"
        ):
            sinks.append(Sink(node, "container", f"docker {word}"))
    return sinks
