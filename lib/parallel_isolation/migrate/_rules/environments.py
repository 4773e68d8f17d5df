"""Service environments: the broker, the client id and PI115, the topic prefix.

A service is configured by an environment: a literal mapping (``env={...}``,
``environment={...}``), a sequence of ``monkeypatch.setenv`` /
``os.environ[...] = ...`` calls before an in-process service starts, or a
module-level mapping copied into ``os.environ`` in ``setUp``.  When it sets
a broker it must also set the prefix variable the services read (learned
from their source, see ``_project``), or the services stay on bare topics
while the test's topics get a namespace.

A module-level mapping cannot see fixtures; where it is copied into the
environment, the codemod sets the broker, client id and prefix right after
the copy instead, and leaves the mapping's defaults as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._builders import Builder, Result, add_prefix
from parallel_isolation.migrate._facts import Record, Scope, dotted, last_name, string_value
from parallel_isolation.migrate._sinks import Sink, env_dict, env_kind, unwrap_conversion
from parallel_isolation.migrate._site import Site

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["applications", "on_dict", "sequences"]


def _names_a_container(expr: cst.BaseExpression) -> bool:
    """``ctx.container_name(...)``: a broker reached by container name (internal port)."""
    return (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Attribute)
        and expr.func.attr.value == "container_name"
    )


def on_dict(a: AnalysisView, record: Record) -> None:
    from parallel_isolation.migrate._rules import names

    node = record.node
    assert isinstance(node, cst.Dict)
    scope = record.scope
    if scope.role == "module" and _applied_elsewhere(a, node):
        return
    info = env_dict(node, a.prefix_env)
    if info is None:
        return
    internal = False
    if info.host is not None:
        lit = a.resolver.lit(info.host.value, scope)
        if _names_a_container(info.host.value):
            internal = True
        elif lit is not None and lit.strings() and set(lit.strings()) <= names.container_names(a):
            internal = True
            a.sink_site(Sink(info.host.value, "container", "MQTT_BROKER"), scope)
        else:
            a.sink_site(Sink(info.host.value, "host", "MQTT_BROKER"), scope)
    for element in info.ports:
        value = unwrap_conversion(element.value)
        if internal:
            a.handled.add(id(value))
            a.handled.add(id(element.value))
        else:
            a.sink_site(Sink(value, "port", "MQTT_PORT"), scope)
    for element in info.clients:
        a.sink_site(Sink(element.value, "client_id", "MQTT_CLIENT_ID"), scope)
    if internal:
        # The services talk to a broker container of the suite's own: its topics
        # are that broker's business once the broker is the worker's.
        return
    if info.host is not None and not info.has_prefix and not info.unknown_splat:
        also = f" (it sets {', '.join(info.other_prefixes)})" if info.other_prefixes else ""
        a.add(
            Site(
                "PI115",
                node,
                scope,
                f"service environment sets a broker but not {a.prefix_env}{also}; add "
                f"{a.prefix_env!r}: topic_namespace.prefix",
                need="topics",
                build=add_prefix(a.prefix_env),
            )
        )


# -- setenv / os.environ sequences -------------------------------------------------


@dataclass
class _Setting:
    statement: cst.SimpleStatementLine
    key: str
    kind: str
    style: str  # "monkeypatch:<receiver>" or "environ"


def _setting(a: AnalysisView, small: cst.BaseSmallStatement) -> tuple[str, str] | None:
    """(key, style) of ``monkeypatch.setenv('K', v)`` / ``os.environ['K'] = v``."""
    if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
        call = small.value
        if last_name(call.func) == "setenv" and isinstance(call.func, cst.Attribute) and call.args:
            key = string_value(call.args[0].value)
            receiver = dotted(call.func.value)
            if key is not None and receiver is not None:
                return key, f"monkeypatch:{receiver}"
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
        if (
            isinstance(target, cst.Subscript)
            and dotted(target.value) == "os.environ"
            and target.slice
            and isinstance(target.slice[0].slice, cst.Index)
        ):
            key = string_value(target.slice[0].slice.value)
            if key is not None:
                return key, "environ"
    return None


def sequences(a: AnalysisView) -> None:
    """Functions that set a broker through setenv/os.environ but no prefix."""
    for scope in a.facts.functions.values():
        node = scope.node
        if not isinstance(node, cst.FunctionDef) or not isinstance(node.body, cst.IndentedBlock):
            continue
        found: list[_Setting] = []
        for statement in node.body.body:
            if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
                continue
            setting = _setting(a, statement.body[0])
            if setting is None:
                continue
            key, style = setting
            kind = env_kind(key, a.prefix_env)
            if kind is not None:
                found.append(_Setting(statement, key, kind, style))
        kinds = {s.kind for s in found}
        if not kinds & {"host", "port"}:
            continue
        if any(s.kind == "prefix" and s.key == a.prefix_env for s in found):
            continue
        last = found[-1]
        others = sorted({s.key for s in found if s.kind == "prefix"})
        also = f" (it sets {', '.join(others)})" if others else ""
        a.add(
            Site(
                "PI115",
                last.statement,
                scope,
                f"{scope.name} configures a service's broker but not {a.prefix_env}{also}; "
                f"set {a.prefix_env} to topic_namespace.prefix",
                need="topics",
                build=_insert_setting(last.style, a.prefix_env, "prefix"),
            )
        )


def _insert_setting(style: str, key: str, what: str) -> Builder:
    """A builder that adds ``<set key> = <provider>.<what>`` after the statement."""

    def build(provider: str, node: cst.CSTNode) -> Result:
        assert isinstance(node, cst.SimpleStatementLine)
        value = f"{provider}.{what}"
        if style.startswith("monkeypatch:"):
            receiver = style.split(":", 1)[1]
            line = f"{receiver}.setenv({key!r}, {value})\n"
        else:
            line = f"os.environ[{key!r}] = {value}\n"
        added = cst.parse_statement(line.replace("'", '"'))
        return cst.FlattenSentinel([node, added])

    return build


# -- module-level mappings copied into os.environ ---------------------------------------


def _applied_elsewhere(a: AnalysisView, node: cst.Dict) -> bool:
    """A module-level env mapping whose every use copies it into os.environ in a function."""
    return bool(_applications_of(a, node))


def _applications_of(a: AnalysisView, node: cst.Dict) -> list[tuple[cst.For, Scope]] | None:
    parent = a.facts.parents.get(id(node))
    if not isinstance(parent, cst.Assign) or len(parent.targets) != 1:
        return None
    target = parent.targets[0].target
    if not isinstance(target, cst.Name):
        return None
    name = target.value
    uses: list[tuple[cst.For, Scope]] = []
    for record in a.facts.names:
        use = record.node
        assert isinstance(use, cst.Name)
        if use.value != name or a.resolver.binder(name, record.scope) is not a.facts.scope:
            continue
        loop = _application_loop(a, use)
        if loop is not None and record.scope.is_function:
            uses.append((loop, record.scope))
            continue
        if _popping_loop(a, use):
            continue
        return None
    return uses or None


def _application_loop(a: AnalysisView, use: cst.Name) -> cst.For | None:
    """``for k, v in NAME.items(): os.environ[k] = v`` (or ``monkeypatch.setenv(k, v)``)."""
    attribute = a.facts.parents.get(id(use))
    call = a.facts.parents.get(id(attribute)) if attribute is not None else None
    loop = a.facts.parents.get(id(call)) if call is not None else None
    if not (
        isinstance(attribute, cst.Attribute)
        and attribute.attr.value == "items"
        and isinstance(call, cst.Call)
        and isinstance(loop, cst.For)
        and loop.iter is call
        and isinstance(loop.target, cst.Tuple)
        and isinstance(loop.body, cst.IndentedBlock)
        and len(loop.body.body) == 1
    ):
        return None
    statement = loop.body.body[0]
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    text = a.facts.module.code_for_node(small)
    if "os.environ[" in text or ".setenv(" in text:
        return loop
    return None


def _popping_loop(a: AnalysisView, use: cst.Name) -> bool:
    """``for key in NAME: os.environ.pop(key, None)``: the teardown of the copy."""
    loop = a.facts.parents.get(id(use))
    return isinstance(loop, cst.For) and loop.iter is use


def applications(a: AnalysisView) -> None:
    """Sites for the broker, client id and prefix of copied module-level mappings."""
    for record in a.facts.dicts:
        node = record.node
        assert isinstance(node, cst.Dict)
        if record.scope.role != "module":
            continue
        info = env_dict(node, a.prefix_env)
        if info is None:
            continue
        uses = _applications_of(a, node)
        if not uses:
            continue
        for loop, scope in uses:
            style = (
                "environ" if "os.environ[" in a.facts.module.code_for_node(loop) else "monkeypatch"
            )
            if _overridden(a, loop, info, style):
                for element in (info.host, *info.ports, *info.clients):
                    if element is not None:
                        a.handled.add(id(element.value))
                continue
            entries: list[tuple[str, cst.DictElement, str, str]] = []
            if info.host is not None:
                entries.append(("PI101", info.host, "broker", "host"))
            for element in info.ports:
                entries.append(("PI102", element, "broker", "port"))
            for element in info.clients:
                entries.append(("PI110", element, "names", "client"))
            overrides = _overrides(info, a.prefix_env)
            needs = ["broker"]
            if info.clients:
                needs.append("names")
            if not info.has_prefix:
                needs.append("topics")
            extra: dict[int | str, object] = {"needs": tuple(needs)}
            added = [key for key, what in overrides if what == "prefix"]
            for undo in _undo_loops(a, node):
                extra[id(undo)] = _pop_after(added)
            combined = Site(
                "PI115" if not info.has_prefix else "PI101",
                loop,
                scope,
                "environment copied into os.environ",
                need="broker",
                build=_override_builder(overrides, style),
                report=False,
                extra=extra,
            )
            a.add(combined)
            for code, element, need, _attr in entries:
                key = string_value(element.key) or "?"
                a.add(
                    Site(
                        code,
                        element.value,
                        scope,
                        f"{key}={a.snippet(element.value)} in an environment copied into "
                        f"os.environ at line {a.position(loop)[0]}; the codemod sets it after the copy",
                        need=need,  # type: ignore[arg-type]
                        hazard=("env-copy", a.path, id(node), code),
                        extra={"with": combined},
                    )
                )
            if not info.has_prefix:
                a.add(
                    Site(
                        "PI115",
                        node,
                        scope,
                        f"environment copied into os.environ at line {a.position(loop)[0]} has no "
                        f"{a.prefix_env}; the codemod sets it after the copy",
                        need="topics",
                        extra={"with": combined},
                    )
                )


def _undo_loops(a: AnalysisView, node: cst.Dict) -> list[cst.For]:
    """``for key in NAME: os.environ.pop(key, None)`` loops of the mapping ``node``."""
    parent = a.facts.parents.get(id(node))
    if not isinstance(parent, cst.Assign) or not isinstance(parent.targets[0].target, cst.Name):
        return []
    name = parent.targets[0].target.value
    found = []
    for record in a.facts.loops:
        loop = record.node
        if (
            isinstance(loop, cst.For)
            and isinstance(loop.iter, cst.Name)
            and loop.iter.value == name
        ):
            found.append(loop)
    return found


def _pop_after(keys: list[str]) -> Builder:
    """After the loop that undoes the copy, undo what the codemod added to it."""

    def build(provider: str, node: cst.CSTNode) -> Result:
        if not keys:
            return node
        added = [cst.parse_statement(f'os.environ.pop("{key}", None)\n') for key in keys]
        return cst.FlattenSentinel([node, *added])

    return build


def _overrides(info: object, prefix_env: str) -> list[tuple[str, str]]:
    """(key, what) pairs the codemod sets after a copy: what is host/port/client:<id>/prefix."""
    from parallel_isolation.migrate._sinks import EnvDict

    assert isinstance(info, EnvDict)
    found: list[tuple[str, str]] = []
    if info.host is not None:
        found.append((string_value(info.host.key) or "MQTT_BROKER", "host"))
    for element in info.ports:
        found.append((string_value(element.key) or "MQTT_PORT", "port"))
    for element in info.clients:
        value = string_value(element.value) or "client"
        found.append((string_value(element.key) or "MQTT_CLIENT_ID", f"client:{value}"))
    if not info.has_prefix:
        found.append((prefix_env, "prefix"))
    return found


def _override_builder(overrides: list[tuple[str, str]], style: str) -> Builder:
    def build(provider: str, node: cst.CSTNode) -> Result:
        # ``provider`` is the broker's; the others share its owner (self.<fixture> or a name).
        owner = provider.rsplit(".", 1)[0] + "." if "." in provider else ""
        lines = []
        for key, what in overrides:
            if what == "host":
                value = f"{provider}.host"
            elif what == "port":
                value = f"str({provider}.port)"
            elif what == "prefix":
                value = f"{owner}topic_namespace.prefix"
            else:
                base = what.split(":", 1)[1]
                value = f"{owner}parallel_test_context.client_id({base!r})"
            if style == "environ":
                lines.append(f"os.environ[{key!r}] = {value}")
            else:
                lines.append(f"monkeypatch.setenv({key!r}, {value})")
        added = [cst.parse_statement(line.replace("'", '"') + "\n") for line in lines]
        return cst.FlattenSentinel([node, *added])

    return build


def _overridden(a: AnalysisView, loop: cst.For, info: object, style: str) -> bool:
    """The statements right after the copy set the broker (the codemod's rewrite)."""
    from parallel_isolation.migrate._sinks import EnvDict

    assert isinstance(info, EnvDict)
    block = a.facts.parents.get(id(loop))
    if not isinstance(block, cst.IndentedBlock):
        return False
    body = list(block.body)
    index = next((i for i, s in enumerate(body) if s is loop), None)
    if index is None:
        return False
    keys: set[str] = set()
    for statement in body[index + 1 :]:
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            break
        setting = _setting(a, statement.body[0])
        if setting is None:
            break
        keys.add(setting[0])
    if info.host is None:
        return False
    host_key = string_value(info.host.key)
    return host_key is not None and host_key in keys
