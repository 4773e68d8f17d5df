"""Brokers and ports: PI101 broker host, PI102 broker port, PI103 published
port, PI106 host network.

A broker address reaches a hazard in ``connect(host, port)``, in a service
environment (``MQTT_BROKER``/``MQTT_PORT``, ``KEY=value`` strings,
``monkeypatch.setenv``, ``os.environ``), in a module constant, or on a
``mosquitto_pub``/``mosquitto_sub`` command line.  A broker the suite starts
itself (a ``mosquitto`` process, a config text with ``listener 1883``) is a
*definition*: every worker would start one, and the plugin's ``mqtt_broker``
replaces it.  It is reported for a person to delete, but it does not hold
the rewrite of the clients back.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._builders import Builder, Result, broker_attribute, env_string
from parallel_isolation.migrate._facts import Scope, dotted, last_name, string_value
from parallel_isolation.migrate._sinks import (
    KNOWN_PORTS,
    SUBPROCESS,
    Kind,
    Sink,
    cli_tokens,
    env_kind,
    unwrap_conversion,
)
from parallel_isolation.migrate._site import Site
from parallel_isolation.migrate._values import Lit, Resolver

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = [
    "constant_definitions",
    "definition_scopes",
    "on_assign",
    "on_call",
    "on_integer",
    "on_string",
    "sink_site",
]

_HOST_NAME = re.compile(
    r"(?i)^(?:(?:mqtt|broker)_?(?:broker_?)?(?:host|server|address|addr)|mqtt_broker|broker|host)$"
)
_PORT_NAME = re.compile(r"(?i)^(?:(?:mqtt|broker)_?(?:broker_?)?port|port)$")
_LISTENER = re.compile(r"(?m)^\s*(?:listener|port)\s+(\d{2,5})\b")
_OWN_BROKER = (
    "the suite starts a broker of its own on a fixed port in every worker; delete it, "
    "the plugin's mqtt_broker is one broker per worker"
)


# -- which scopes start a broker of the suite's own ------------------------------


def definition_scopes(a: AnalysisView) -> set[int]:
    """Ids of the function scopes that start (or probe) a broker the suite runs itself.

    A function that starts ``mosquitto`` or writes a config text with a
    ``listener``; every method of its class; module functions called only
    from such scopes.
    """
    cached = a.cache.get("definition_scopes")
    if isinstance(cached, set):
        return cached
    facts = a.facts
    starters: set[int] = set()
    classes: set[str] = set()
    for record in facts.calls:
        call = record.node
        assert isinstance(call, cst.Call)
        if (facts.qualify(call.func) or "") in SUBPROCESS and _runs_mosquitto(
            a, call, record.scope
        ):
            top = record.scope.outermost_function()
            if top is not None:
                starters.add(id(top))
                if top.cls is not None:
                    classes.add(top.cls.name)
    for record in facts.strings:
        text = _text(record.node)
        if text is not None and _LISTENER.search(text) and not _runs_containers(a):
            top = record.scope.outermost_function()
            if top is not None:
                starters.add(id(top))
    scopes = set(starters)
    if not scopes:
        a.cache["definition_scopes"] = scopes
        return scopes
    for scope in facts.functions.values():
        top = scope.outermost_function()
        if top is not None and top.cls is not None and top.cls.name in classes:
            scopes.add(id(scope))
        if top is not None and id(top) in starters:
            scopes.add(id(scope))
    for scope in facts.module_functions().values():
        if id(scope) in scopes:
            continue
        uses = a.uses(scope)
        callers = [site.record.scope.outermost_function() for site in uses.calls]
        if (
            uses.other is None
            and callers
            and all(c is not None and id(c) in scopes for c in callers)
            and all(site.analysis is a for site in uses.calls)
        ):
            scopes.add(id(scope))
    a.cache["definition_scopes"] = scopes
    return scopes


def _in_definition(a: AnalysisView, scope: Scope) -> bool:
    top = scope.outermost_function()
    return top is not None and id(top) in definition_scopes(a)


def _runs_mosquitto(a: AnalysisView, call: cst.Call, scope: Scope) -> bool:
    words = [w for w, _ in cli_tokens(call)]
    if any(w is not None and w.rsplit("/", 1)[-1] == "mosquitto" for w in words[:2]):
        return True
    if not call.args:
        return False
    first = call.args[0].value
    head: cst.BaseExpression | None = None
    if isinstance(first, cst.List | cst.Tuple) and first.elements:
        head = first.elements[0].value
    if head is None:
        return False
    text = a.facts.module.code_for_node(head)
    if "mosquitto" in text and "mosquitto_" not in text:
        return True
    if isinstance(head, cst.Name):
        binder = a.resolver.binder(head.value, scope)
        for binding in binder.bindings.get(head.value, []) if binder is not None else []:
            if binding.value is not None:
                value = a.facts.module.code_for_node(binding.value)
                if "mosquitto" in value and "mosquitto_" not in value:
                    return True
    return False


def _runs_containers(a: AnalysisView) -> bool:
    return any(
        isinstance(r.node, cst.Call)
        and last_name(r.node.func) in ("run", "create")
        and isinstance(r.node.func, cst.Attribute)
        and last_name(r.node.func.value) == "containers"
        for r in a.facts.calls
    )


def _text(node: cst.CSTNode) -> str | None:
    if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        return string_value(node)
    if isinstance(node, cst.FormattedString):
        return "".join(
            p.value if isinstance(p, cst.FormattedStringText) else "{}" for p in node.parts
        )
    return None


def _definition_site(
    a: AnalysisView, code: str, node: cst.CSTNode, scope: Scope, what: str, origin: bool = False
) -> None:
    a.add(
        Site(
            code,
            node,
            scope,
            f"{what} of the suite's own broker",
            manual=_OWN_BROKER,
            hazard=("own-broker", a.path),
            origin=node if origin else None,
            blocking=False,
        )
    )


def _owner_scope(a: AnalysisView, node: cst.CSTNode, scope: Scope) -> Scope:
    """The function a parameter default belongs to (defaults are walked in the outer scope)."""
    current = a.facts.parents.get(id(node))
    while current is not None and not isinstance(current, cst.BaseStatement):
        if isinstance(current, cst.Parameters):
            function = a.facts.parents.get(id(current))
            found = a.facts.functions.get(id(function)) if function is not None else None
            return found if found is not None else scope
        current = a.facts.parents.get(id(current))
    return scope


# -- sinks -------------------------------------------------------------------------


def sink_site(
    a: AnalysisView, sink: Sink, lit: Lit, scope: Scope, via: str | None, pure: bool
) -> None:
    from parallel_isolation.migrate._rules import names

    node = sink.node
    where = f"{sink.label}" + (f" via {via}" if via else "")
    manual = None if pure else f"{via} also uses the value for something else"
    if sink.kind == "host":
        strings = lit.strings()
        if lit.kind != "literal" or not strings:
            return
        if set(strings) <= names.container_names(a):
            names.sink_site(a, Sink(node, "container", sink.label), lit, scope, via, pure)
            return
        if _in_definition(a, scope):
            _definition_site(a, "PI101", node, scope, f"host {lit.describe()}")
            return
        _broker_site(
            a,
            "PI101",
            node,
            scope,
            lit,
            f"broker host {lit.describe()} in {where}",
            broker_attribute("host"),
            pure,
            manual,
        )
    elif sink.kind == "port":
        if lit.kind != "literal" or not lit.values:
            return
        if not all(isinstance(v, int) or v.isdigit() for v in lit.values):
            return
        if _in_definition(a, scope):
            _definition_site(a, "PI102", node, scope, f"port {lit.describe()}")
            return
        as_string = all(isinstance(v, str) for v in lit.values)
        _broker_site(
            a,
            "PI102",
            node,
            scope,
            lit,
            f"broker port {lit.describe()} in {where}",
            broker_attribute("port", as_string),
            pure,
            manual,
        )


def _broker_site(
    a: AnalysisView,
    code: str,
    node: cst.CSTNode,
    scope: Scope,
    lit: Lit,
    message: str,
    build: Builder,
    pure: bool,
    manual: str | None,
) -> None:
    attr = "host" if code == "PI101" else "port"
    if lit.constant is not None and isinstance(node, cst.Name | cst.Subscript):
        if lit.module in (None, a.path):
            a.broker_constants.setdefault(lit.constant, "host" if code == "PI101" else "port")
        a.add(
            Site(
                code,
                node,
                scope,
                message,
                need="broker",
                build=build if pure else None,
                manual=manual,
                hazard=("const", lit.module or a.path, lit.constant),
                origin=lit.definition,
            )
        )
        return
    provider = a.provider(scope, "broker")[0] or "mqtt_broker"
    a.add(
        Site(
            code,
            node,
            scope,
            f"{message}; use {provider}.{attr}",
            need="broker",
            build=build if pure else None,
            manual=manual,
        )
    )


# -- calls -----------------------------------------------------------------------


def on_call(a: AnalysisView, call: cst.Call, scope: Scope) -> None:
    """``network_mode='host'``, published ports, and broker/port words on command lines."""
    for arg in call.args:
        keyword = arg.keyword.value if arg.keyword is not None else None
        if keyword == "network_mode" and string_value(arg.value) == "host":
            a.add(
                Site(
                    "PI106",
                    arg.value,
                    scope,
                    "network_mode='host' shares the host's ports and brokers",
                    manual="put the container on the worker's own network",
                )
            )
        elif keyword == "ports" and isinstance(arg.value, cst.Dict):
            _ports(a, arg.value, scope)
    if (a.facts.qualify(call.func) or "") in SUBPROCESS:
        _docker_command(a, call, scope)
    spread_address(a, call, scope)


def _ports(a: AnalysisView, mapping: cst.Dict, scope: Scope) -> None:
    for element in mapping.elements:
        if not isinstance(element, cst.DictElement):
            continue
        if element.key is not None:
            a.handled.add(id(element.key))
        value = element.value
        candidates: list[cst.BaseExpression] = []
        if isinstance(value, cst.Tuple) and value.elements:
            candidates.append(value.elements[-1].value)
        elif isinstance(value, cst.List):
            candidates += [e.value for e in value.elements]
        else:
            candidates.append(value)
        for candidate in candidates:
            lit = a.resolver.lit(candidate, scope)
            if lit is None or lit.kind != "literal":
                continue
            if not any(isinstance(v, int) for v in lit.values):
                continue
            hazard = None
            origin = None
            if lit.constant is not None:
                hazard = ("const", lit.module or a.path, lit.constant)
                origin = lit.definition
            a.add(
                Site(
                    "PI103",
                    candidate,
                    scope,
                    f"fixed host port {lit.describe()} published; publish an allocated "
                    "port on 127.0.0.1 (parallel_test_context.port(...))",
                    manual="the published port must come from the allocator, and whatever "
                    "connects to it must read it",
                    hazard=hazard,
                    origin=origin,
                )
            )


def _docker_command(a: AnalysisView, call: cst.Call, scope: Scope) -> None:
    tokens = cli_tokens(call)
    words = [t for t, _ in tokens]
    head = [w for w in words[:2] if w is not None]
    first = head[0] if head else None
    if first == "sudo" and len(head) > 1:
        first = head[1]
    if first != "docker" and first != "docker-compose":
        return
    for index, (word, node) in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else (None, None)
        if word in ("--network", "--net") and following[0] == "host":
            a.add(
                Site(
                    "PI106",
                    following[1] or call,
                    scope,
                    "host network in docker run",
                    manual="put the container on the worker's own network",
                )
            )
        elif (
            word is not None
            and word.startswith(("--network=", "--net="))
            and word.endswith("=host")
        ):
            a.add(
                Site(
                    "PI106",
                    node or call,
                    scope,
                    "host network in docker run",
                    manual="put the container on the worker's own network",
                )
            )
        elif word in ("-p", "--publish") and following[0] is not None and ":" in following[0]:
            a.add(
                Site(
                    "PI103",
                    following[1] or call,
                    scope,
                    f"fixed published port {following[0]!r}",
                    manual="the published port must come from the allocator",
                )
            )


# -- assignments and constants ----------------------------------------------------------


def on_assign(
    a: AnalysisView, target: cst.BaseExpression, value: cst.BaseExpression, scope: Scope
) -> None:
    if isinstance(target, cst.Subscript) and dotted(target.value) == "os.environ":
        key = None
        if target.slice and isinstance(target.slice[0].slice, cst.Index):
            key = string_value(target.slice[0].slice.value)
        setting = env_kind(key) if key else None
        if setting == "host" or setting == "port" or setting == "client_id":
            a.sink_site(
                Sink(
                    unwrap_conversion(value) if setting == "port" else value,
                    setting,
                    key or "os.environ",
                ),
                scope,
            )
        return
    if not isinstance(target, cst.Name):
        return
    name = target.value
    if scope.role == "module" and _address(a.resolver, value) is not None:
        a.broker_constants[name] = "address"
        return
    if scope.role == "module":
        lit = a.resolver.lit(value, scope)
        if lit is None or lit.kind != "literal" or len(lit.values) != 1:
            return
        only = lit.values[0]
        if _HOST_NAME.match(name) and isinstance(only, str) and only:
            a.broker_constants.setdefault(name, "host")
        elif _PORT_NAME.match(name) and (isinstance(only, int) or only.isdigit()):
            a.broker_constants.setdefault(name, "port")
        return
    if (scope.is_function or scope.role == "class") and isinstance(
        value, cst.SimpleString | cst.Integer
    ):
        lit = a.resolver.lit(value, scope)
        if lit is None:
            return
        kind: Kind | None = None
        if _HOST_NAME.match(name) and lit.strings():
            kind = "host"
        elif _PORT_NAME.match(name):
            kind = "port"
        if kind is not None:
            a.sink_site(Sink(value, kind, f"{name} = ..."), scope)


_HOSTISH = re.compile(
    r"(?i)^(localhost|127\.0\.0\.1|0\.0\.0\.0|[\w.-]*(mqtt|broker|mosquitto)[\w.-]*)$"
)


def _address(
    resolver: Resolver, value: cst.BaseExpression
) -> tuple[cst.BaseExpression, cst.BaseExpression] | None:
    """``("localhost", 1883)``: a broker's (host, port) pair of literals."""
    if not isinstance(value, cst.Tuple | cst.List) or len(value.elements) != 2:
        return None
    host, port = (e.value for e in value.elements)
    scope = resolver.facts.scope
    host_lit, port_lit = resolver.lit(host, scope), resolver.lit(port, scope)
    if host_lit is None or port_lit is None or "built" in (host_lit.kind, port_lit.kind):
        return None
    hosts, ports = host_lit.strings(), port_lit.values
    if len(hosts) != 1 or len(ports) != 1 or not _HOSTISH.match(hosts[0]):
        return None
    port_value = ports[0]
    if isinstance(port_value, str) and not port_value.isdigit():
        return None
    return host, port


def spread_address(a: AnalysisView, call: cst.Call, scope: Scope) -> None:
    """``client.connect(*BROKER)`` with ``BROKER = ("localhost", 1883)``."""
    if (
        last_name(call.func) not in ("connect", "connect_async", "create_connection")
        or len(call.args) < 1
    ):
        return
    arg = call.args[0]
    if arg.star != "*" or not isinstance(arg.value, cst.Name):
        return
    found = a.resolver.tuple_value(arg.value.value, scope)
    if found is None:
        return
    owner, value = found
    pair = _address(owner, value)
    if pair is None:
        return
    name = arg.value.value
    constant_module = owner.key
    constant_name = name
    if name in a.facts.imports:
        ref = a.facts.imports[name]
        constant_name = ref.name or name
    host = Site(
        "PI101",
        arg,
        scope,
        f"broker address {name} spread into {last_name(call.func)}(); use mqtt_broker.host, "
        "mqtt_broker.port",
        need="broker",
        build=_spread,
        hazard=("const", constant_module, constant_name),
        origin=pair[0],
    )
    a.add(host)
    a.add(
        Site(
            "PI102",
            arg.value,
            scope,
            f"broker port of {name} spread into {last_name(call.func)}()",
            need="broker",
            hazard=("const", constant_module, constant_name),
            origin=pair[1],
            extra={"with": host},
        )
    )


def _spread(provider: str, node: cst.CSTNode) -> Result:
    assert isinstance(node, cst.Arg)
    host = cst.Arg(
        value=cst.parse_expression(f"{provider}.host"),
        comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
    )
    port = cst.Arg(value=cst.parse_expression(f"{provider}.port"), comma=node.comma)
    return cst.FlattenSentinel([host, port])


def constant_definitions(a: AnalysisView) -> None:
    """A broker constant is one hazard at its definition, its uses listed under it."""
    module = a.facts.scope
    for name, kind in a.broker_constants.items():
        bindings = module.bindings.get(name, [])
        if len(bindings) != 1 or bindings[0].value is None:
            continue
        value = bindings[0].value
        if kind == "address":
            pair = _address(a.resolver, value)
            if pair is None:
                continue
            for code, node, what in (("PI101", pair[0], "host"), ("PI102", pair[1], "port")):
                shown = a.snippet(node)
                a.add(
                    Site(
                        code,
                        node,
                        module,
                        f"broker {what} {shown} in constant {name}",
                        need="broker",
                        hazard=("const", a.path, name),
                        origin=node,
                        manual="the constant stays while something uses it",
                        blocking=False,
                    )
                )
            continue
        lit = a.resolver.lit(value, module)
        if lit is None:
            continue
        code = "PI101" if kind == "host" else "PI102"
        what = "host" if kind == "host" else "port"
        a.add(
            Site(
                code,
                value,
                module,
                f"broker {what} {lit.describe()} in constant {name}",
                need="broker",
                hazard=("const", a.path, name),
                origin=value,
                report=True,
                manual="the constant stays while something uses it",
                autofix=None,
                build=None,
                blocking=False,
            )
        )


# -- strings and integers ------------------------------------------------------------


def on_string(a: AnalysisView, node: cst.CSTNode, scope: Scope, in_fstring: bool) -> bool:
    """``MQTT_PORT=1883`` strings, port strings, config texts; True when handled."""
    value = (
        string_value(node) if isinstance(node, cst.SimpleString | cst.ConcatenatedString) else None
    )
    text = _text(node)
    if text is not None and _LISTENER.search(text):
        if _runs_containers(a):
            a.handled.add(id(node))  # inside a container: its own network namespace
            return True
        port = _LISTENER.search(text)
        assert port is not None
        _definition_site(
            a, "PI102", node, scope, f"listener {port.group(1)} in a config text", origin=True
        )
        return True
    if value is None:
        return False
    key, sep, rest = value.partition("=")
    kind = env_kind(key) if sep else None
    if kind in ("host", "port") and rest:
        env_string_site(a, node, scope, key, kind, rest)
        return True
    if value in ("1883", "8883", "18833"):
        if _in_definition(a, scope):
            _definition_site(a, "PI102", node, scope, f"port {value!r}")
            return True
        a.add(
            Site(
                "PI102",
                node,
                scope,
                f"hard-coded MQTT port {value!r}; pass str(mqtt_broker.port) here",
                manual="not a place the codemod rewrites (only connect() and environments)",
            )
        )
        return True
    return False


def env_string_site(
    a: AnalysisView, node: cst.CSTNode, scope: Scope, key: str, kind: str, value: str
) -> None:
    from parallel_isolation.migrate._rules import names

    if kind == "host":
        if value in names.container_names(a):
            names.env_container_site(a, node, scope, key, value)
            return
        a.add(
            Site(
                "PI101",
                node,
                scope,
                f"broker host in {key}={value}; use mqtt_broker.host",
                need="broker",
                build=env_string(key, "host"),
            )
        )
    elif kind == "port" and value.isdigit():
        a.add(
            Site(
                "PI102",
                node,
                scope,
                f"broker port in {key}={value}; use mqtt_broker.port",
                need="broker",
                build=env_string(key, "port"),
            )
        )


def on_integer(a: AnalysisView, node: cst.Integer, scope: Scope) -> None:
    if id(node) in a.handled:
        return
    value = int(node.evaluated_value)
    if value not in KNOWN_PORTS:
        return
    scope = _owner_scope(a, node, scope)
    if _in_definition(a, scope):
        _definition_site(a, "PI102", node, scope, f"port {value}")
        return
    a.add(
        Site(
            "PI102",
            node,
            scope,
            f"MQTT port {value} where no client connects; read it from mqtt_broker.port",
            manual="not a place the codemod rewrites (only connect() and environments)",
        )
    )
