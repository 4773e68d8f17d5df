"""Names of Docker objects: PI104 container names, PI105 network names, PI116
fixed subnets, PI117 image tags every worker builds.

A name is one value for the whole project: the helper that creates a
container and the test that looks it up must both use the worker's name,
so the sites of a name form one group (rewritten together or not at all).
A name is isolated once, where it reaches Docker: a loop variable over a
list of names is wrapped, never the list's elements as well, and a value
already built from ``container_name()`` is left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._builders import env_container, wrap_in
from parallel_isolation.migrate._facts import Record, Scope, last_name, string_value
from parallel_isolation.migrate._sinks import Sink, cli_tokens, keyword_arg
from parallel_isolation.migrate._site import Site
from parallel_isolation.migrate._values import Lit
from parallel_isolation.migrate._walk import iter_children

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = [
    "ISOLATING_CALLS",
    "container_names",
    "env_container_site",
    "isolated",
    "network_names",
    "on_call",
    "on_name",
    "on_string",
    "sink_site",
]

#: Calls whose result is already isolated (per worker, per test): never wrap them again.
ISOLATING_CALLS = frozenset(
    {"container_name", "network_name", "client_id", "resource_name", "topic", "filter", "prefix"}
)


#: Methods whose argument is a key of a collection, never a name for Docker
#: (Docker's own ``containers.get`` is a sink, handled before).
_LOOKUPS = frozenset(
    {"pop", "get", "setdefault", "append", "remove", "index", "count", "add", "discard"}
)


def isolated(node: cst.CSTNode) -> bool:
    """The expression contains a call that already isolates its value."""
    if isinstance(node, cst.Call) and last_name(node.func) in ISOLATING_CALLS:
        return True
    if isinstance(node, cst.Attribute) and node.attr.value == "prefix":
        return True
    return any(isolated(child) for child in iter_children(node))


def _names(a: AnalysisView, kind: str, seen: set[int] | None = None) -> set[str]:
    cached = a.cache.get(f"{kind}_names")
    if isinstance(cached, set):
        return cached
    seen = seen if seen is not None else set()
    seen.add(id(a))
    found: set[str] = set()
    for record in a.facts.calls:
        for sink in a.builtin.get(id(record.node), []):
            if sink.kind == kind:
                lit = a.resolver.lit(sink.node, record.scope)
                if lit is not None:
                    found.update(lit.strings())
    related = list(a.imported_analyses())
    related += a.conftest_analyses()
    for other in related:
        if id(other) not in seen:
            found |= _names(other, kind, seen)
    a.cache[f"{kind}_names"] = found
    return found


def container_names(a: AnalysisView) -> set[str]:
    """Container names this module (its imports, its conftests) gives Docker."""
    return _names(a, "container")


def network_names(a: AnalysisView) -> set[str]:
    return _names(a, "network")


def sink_site(
    a: AnalysisView, sink: Sink, lit: Lit, scope: Scope, via: str | None, pure: bool
) -> None:
    node = sink.node
    if lit.kind == "literal" and not lit.strings():
        return
    if lit.kind == "built" and isolated(node):
        return
    where = f"{sink.label}" + (f" via {via}" if via else "")
    manual = None if pure else f"{via} also uses the value for something else"
    if sink.kind == "network" and "host" in lit.strings():
        a.add(
            Site(
                "PI106",
                node,
                scope,
                f"host network in {where}",
                manual="put the container on the worker's own network",
            )
        )
        return
    if sink.kind == "network" and set(lit.strings()) <= {"bridge", "none", "default"}:
        return
    code, method, what = (
        ("PI104", "container_name", "container name")
        if sink.kind == "container"
        else ("PI105", "network_name", "network name")
    )
    provider = a.provider(scope, "names")[0] or a.fixture_for(scope, "names")
    hazard: tuple[object, ...] | None = None
    if lit.kind == "literal" and lit.strings():
        hazard = ("name", sink.kind, tuple(sorted(set(lit.strings()))))
    groups = tuple((sink.kind, value) for value in lit.strings())
    a.add(
        Site(
            code,
            node,
            scope,
            f"fixed {what} {lit.describe()} in {where}; use {provider}.{method}(...)",
            need="names",
            build=wrap_in(method) if pure else None,
            manual=manual,
            hazard=hazard,
            origin=lit.definition,
            groups=groups,
        )
    )


def env_container_site(
    a: AnalysisView, node: cst.CSTNode, scope: Scope, key: str, value: str
) -> None:
    if "'" in value or '"' in value:
        return
    a.add(
        Site(
            "PI104",
            node,
            scope,
            f"fixed container name in {key}={value}; build it from "
            f"{a.provider(scope, 'names')[0] or a.fixture_for(scope, 'names')}.container_name(...)",
            need="names",
            build=env_container(key, value),
            groups=(("container", value),),
            hazard=("name", "container", (value,)),
        )
    )


def _in_collection(a: AnalysisView, node: cst.CSTNode) -> bool:
    """A literal inside a list/tuple/set/dict: its loop variable or key is what reaches Docker."""
    parent = a.facts.parents.get(id(node))
    while parent is not None and isinstance(
        parent, cst.Element | cst.DictElement | cst.StarredElement
    ):
        parent = a.facts.parents.get(id(parent))
    return isinstance(parent, cst.List | cst.Tuple | cst.Set | cst.Dict)


def on_name(a: AnalysisView, record: Record) -> None:
    """A module-level constant holding a name, used where no Docker call is."""
    node = record.node
    assert isinstance(node, cst.Name)
    if id(node) in a.handled or record.in_annotation or record.in_main:
        return
    scope = record.scope
    if not scope.is_function:
        return
    containers, networks = container_names(a), network_names(a)
    if not (containers or networks):
        return
    binder = a.resolver.binder(node.value, scope)
    if binder is not a.facts.scope:
        return
    lit = a.resolver.lit(node, scope)
    if lit is None or lit.kind != "literal" or not lit.strings():
        return
    values = set(lit.strings())
    if _is_key(a, node):
        return
    if values <= containers:
        a.sink_site(Sink(node, "container", "a reference"), scope)
    elif values <= networks:
        a.sink_site(Sink(node, "network", "a reference"), scope)


def _is_key(a: AnalysisView, node: cst.CSTNode) -> bool:
    """Used as a dict key or subscript (``MODULES[name]``): a lookup, not a name for Docker."""
    parent = a.facts.parents.get(id(node))
    if isinstance(parent, cst.Index):
        return True
    if isinstance(parent, cst.DictElement) and parent.key is node:
        return True
    if isinstance(parent, cst.Arg):
        call = a.facts.parents.get(id(parent))
        if (
            isinstance(call, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value in _LOOKUPS
        ):
            return True
    return bool(isinstance(parent, cst.BinaryOperation | cst.List | cst.Element))


def on_string(a: AnalysisView, record: Record) -> bool:
    node = record.node
    scope = record.scope
    if scope.role == "module" or record.in_fstring or record.in_main or not scope.is_function:
        return False
    if not isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        return False
    value = string_value(node)
    if value is None:
        return False
    if _in_collection(a, node) or _is_key(a, node):
        return False
    if value in container_names(a):
        a.sink_site(Sink(node, "container", "a reference"), scope)
        return True
    if value in network_names(a):
        a.sink_site(Sink(node, "network", "a reference"), scope)
        return True
    return False


def on_call(a: AnalysisView, call: cst.Call, scope: Scope) -> None:
    """Fixed subnets (``IPAMPool(subnet=...)``), image tags built by every worker, ``--name=``."""
    method = last_name(call.func)
    if method == "IPAMPool":
        subnet = keyword_arg(call, "subnet")
        if subnet is not None:
            _subnet(a, subnet, scope)
    receiver = call.func.value if isinstance(call.func, cst.Attribute) else None
    if method == "build" and receiver is not None and last_name(receiver) == "images":
        tag = keyword_arg(call, "tag")
        if tag is not None:
            _image_tag(a, tag, scope)
    if (a.facts.qualify(call.func) or "").startswith(("subprocess.", "os.")):
        tokens = cli_tokens(call)
        words = [w for w, _ in tokens]
        if words[:1] == ["docker"]:
            for index, (word, node) in enumerate(tokens):
                following = tokens[index + 1] if index + 1 < len(tokens) else (None, None)
                if word == "--subnet" and following[1] is not None:
                    _subnet(a, following[1], scope)
                elif word is not None and word.startswith("--name=") and node is not None:
                    a.add(
                        Site(
                            "PI104",
                            node,
                            scope,
                            f"fixed container name in {word!r}",
                            manual="build the argument from container_name(...)",
                        )
                    )
                elif word in ("-t", "--tag") and "build" in words and following[1] is not None:
                    _image_tag(a, following[1], scope)


def _subnet(a: AnalysisView, node: cst.BaseExpression, scope: Scope) -> None:
    lit = a.resolver.lit(node, scope)
    if lit is None or lit.kind != "literal" or not lit.strings():
        return
    hazard = ("const", lit.module or a.path, lit.constant) if lit.constant else None
    a.add(
        Site(
            "PI116",
            node,
            scope,
            f"fixed subnet {lit.describe()}: a second worker's network overlaps it",
            manual="drop the IPAM config (Docker picks a free subnet) or give each worker its own",
            hazard=hazard,
            origin=lit.definition,
        )
    )


def _image_tag(a: AnalysisView, node: cst.BaseExpression, scope: Scope) -> None:
    lit = a.resolver.lit(node, scope)
    if lit is None or lit.kind != "literal" or not lit.strings():
        return
    hazard = ("const", lit.module or a.path, lit.constant) if lit.constant else None
    a.add(
        Site(
            "PI117",
            node,
            scope,
            f"image {lit.describe()} is built by every worker at once",
            manual="build it once per run (before the workers start), or tag it per worker",
            hazard=hazard,
            origin=lit.definition,
        )
    )
