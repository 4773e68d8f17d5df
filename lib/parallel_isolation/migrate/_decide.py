"""The project-wide verdict on every site: rewritten together, or not at all.

Two kinds of group tie sites together:

- a *name* (``("container", "mqtt-broker")``): the helper that creates a
  container and the test that looks it up must both use the worker's name;
- a *flow*: the sites a test reaches (its body, the fixtures it requests, the
  helpers and classes it calls, the module constants they read), for the
  broker address, the topics and the services' prefix.  A test and the
  services it starts end up on the same broker and the same prefix, or the
  flow is left as it is.

A group is *blocked* when one of its blocking sites cannot be rewritten; then
none of its sites is, and each names the site that holds it back.  A flow
that publishes a broker container of the suite's own on a fixed host port
(PI103) talks to that broker: its topics and client ids are that broker's
business once the port is the worker's, so they are not reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._facts import PLUGIN_FIXTURES, Scope, is_namespace_call, last_name
from parallel_isolation.migrate._site import Site
from parallel_isolation.migrate._walk import iter_children

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["FLOW_CODES", "decide", "flow_of"]

#: Codes whose sites belong to a flow (broker address, topics, prefix).
FLOW_CODES = frozenset({"PI101", "PI102", "PI103", "PI106", "PI107", "PI108", "PI109", "PI115"})
_TOPIC_CODES = frozenset({"PI107", "PI108", "PI109", "PI115", "PI110"})
_BROKER_CODES = frozenset({"PI101", "PI102", "PI103", "PI106"})
_PREFIX_CODES = frozenset({"PI107", "PI108", "PI109", "PI115"})

Node = tuple[object, ...]


class _Union:
    def __init__(self) -> None:
        self.parent: dict[Node, Node] = {}

    def find(self, node: Node) -> Node:
        parent = self.parent.setdefault(node, node)
        if parent != node:
            root = self.find(parent)
            self.parent[node] = root
            return root
        return node

    def union(self, a: Node, b: Node) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


def _function_node(a: AnalysisView, scope: Scope) -> Node:
    top = scope.outermost_function()
    if top is None:
        return ("module", a.path)
    if top.cls is not None and top.cls.top_level:
        return ("class", a.path, top.cls.name)
    return ("function", a.path, id(top))


def _verdict(a: AnalysisView, site: Site) -> tuple[bool, str]:
    fixable, reason = a.locally_fixable(site)
    needs = site.extra.get("needs")
    if fixable and isinstance(needs, tuple):
        for need in needs[1:]:
            got, why = a.provider(site.scope, need)
            if got is None:
                return False, why
    return fixable, reason


def decide(analyses: Iterable[AnalysisView]) -> None:
    """Set ``site.decided`` on every site of ``analyses`` (targets and context)."""
    analyses = list(analyses)
    everything = [(a, s) for a in analyses for s in a.sites]
    for a, site in everything:
        site.decided = _verdict(a, site)
    for _a, site in everything:
        partner = site.extra.get("with")
        if isinstance(partner, Site) and partner.decided is not None:
            site.decided = partner.decided
    # Two unions over the same calls and fixtures: a broker constant ties the
    # tests that read it to one broker, a topic constant to one set of topics.
    brokers = _flows(analyses, _BROKER_CODES | _TOPIC_CODES)
    topics = _flows(analyses, _PREFIX_CODES)
    for a in analyses:
        a.cache["flows"] = topics
    on_broker: dict[Node, list[tuple[AnalysisView, Site]]] = {}
    on_topics: dict[Node, list[tuple[AnalysisView, Site]]] = {}
    for a, site in everything:
        if site.code in _BROKER_CODES or site.code in _TOPIC_CODES:
            on_broker.setdefault(brokers.find(_site_node(a, site)), []).append((a, site))
        if site.code in _PREFIX_CODES:
            on_topics.setdefault(topics.find(_site_node(a, site)), []).append((a, site))
    for group in on_broker.values():
        if any(s.code == "PI103" for _, s in group):
            for _a, site in group:
                if site.code in _TOPIC_CODES:
                    site.report = False
                    site.decided = (False, "on the suite's own broker container")
        _block([(a, s) for a, s in group if s.code in _BROKER_CODES], "the broker")
    for group in on_topics.values():
        _block([(a, s) for a, s in group if s.code in _PREFIX_CODES and s.report], "the topics")
    by_value: dict[tuple[object, ...], list[tuple[AnalysisView, Site]]] = {}
    for a, site in everything:
        for key in site.groups:
            by_value.setdefault(key, []).append((a, site))
    for key, group in by_value.items():
        _block(group, f"the {key[0]} name {key[1]!r}")
    for _a, site in everything:
        partner = site.extra.get("with")
        if isinstance(partner, Site) and partner.decided is not None:
            site.decided = partner.decided
    _constants(analyses)


def _block(group: list[tuple[AnalysisView, Site]], what: str) -> None:
    blockers = [
        (a, s)
        for a, s in group
        if s.blocking and s.report and s.decided is not None and not s.decided[0]
    ]
    if not blockers:
        return
    a0, first = blockers[0]
    assert first.decided is not None
    line = a0.position(first.node)[0]
    for a, site in group:
        if site is first or site.decided is None or not site.decided[0]:
            continue
        where = f"line {line}" if a is a0 else f"{a0.path}:{line}"
        site.decided = (False, f"{what} changes together with {where} ({first.code}), which stays")
        site.extra["blocked_by"] = first
        site.extra["blocker_analysis"] = a0


def flow_of(a: AnalysisView, scope: Scope) -> Node | None:
    """The flow (tests, fixtures, helpers that reach each other) ``scope`` belongs to,
    once :func:`decide` has run."""
    flows = a.cache.get("flows")
    if not isinstance(flows, _Union):
        return None
    return flows.find(_function_node(a, scope))


def _site_node(a: AnalysisView, site: Site) -> Node:
    return _function_node(a, site.scope)


def _flows(analyses: list[AnalysisView], codes: frozenset[str]) -> _Union:
    """Union of the functions, classes and constants a test reaches (constants
    only through the sites of ``codes`` they hold)."""
    flows = _Union()
    fixtures: dict[str, list[tuple[AnalysisView, Scope]]] = {}
    for a in analyses:
        for scope in a.facts.functions.values():
            if scope.role == "fixture":
                fixtures.setdefault(scope.name, []).append((a, scope))
    for a in analyses:
        facts = a.facts
        for scope in facts.functions.values():
            top = scope.outermost_function()
            if top is None:
                continue
            here = _function_node(a, scope)
            if top.role in ("test", "fixture") and top is scope:
                for param in top.all_params():
                    if param in PLUGIN_FIXTURES:
                        continue
                    for other, fixture in _visible(a, fixtures.get(param, [])):
                        flows.union(here, _function_node(other, fixture))
        for record in facts.calls:
            call = record.node
            assert isinstance(call, cst.Call)
            here = _function_node(a, record.scope)
            for target in _targets(a, call, record.scope):
                flows.union(here, target)
    owned: set[Node] = set()
    for a in analyses:
        for site in a.sites:
            if site.code not in codes:
                continue
            if site.hazard is not None and site.hazard[0] == "const":
                key: Node = ("const", site.hazard[1], site.hazard[2])
                owned.add(key)
                flows.union(_function_node(a, site.scope), key)
            if site.scope.role == "module":
                name = _assigned_name(a, site.node)
                if name is not None:
                    key = ("const", a.path, name)
                    owned.add(key)
                    flows.union(("module", a.path), key)
    if "PI107" in codes:
        # A topic constant ties its readers whether or not a namespace wraps it
        # already: otherwise a flow split by the rewrite decides differently on
        # a second pass (a rewrite must be idempotent).
        for a in analyses:
            owned.update(_namespaced_constants(a))
    for a in analyses:
        facts = a.facts
        functions = facts.module_functions()
        clients = {
            name
            for name, bindings in facts.scope.bindings.items()
            if any(
                isinstance(b.value, cst.Call)
                and last_name(b.value.func) in ("Client", "MQTTClient", "connect_client")
                for b in bindings
            )
        }
        for record in facts.names:
            node = record.node
            assert isinstance(node, cst.Name)
            if not record.scope.is_function:
                # Module-level code that hands a function over (``client.on_message = f``).
                function = functions.get(node.value)
                if function is not None and not record.in_main and node is not function.node:
                    flows.union(("module", a.path), ("function", a.path, id(function)))
                continue
            if a.resolver.binder(node.value, record.scope) is not facts.scope:
                continue
            key = _constant_key(a, node.value)
            if node.value in clients:
                # A module-level client: its callbacks are set at module level.
                flows.union(_function_node(a, record.scope), ("module", a.path))
            if key in owned:
                flows.union(_function_node(a, record.scope), key)
    return flows


def _constant_key(a: AnalysisView, name: str) -> Node:
    """The flow node of a module-level name of ``a`` (where it is defined, when imported)."""
    found = a.imported(name)
    if found is not None and found[1] is not None:
        return ("const", found[0].path, found[1])
    return ("const", a.path, name)


def _namespaced_constants(a: AnalysisView) -> set[Node]:
    """Module-level names read inside ``topic_namespace.topic(...)``/``.filter(...)``."""
    keys: set[Node] = set()
    for record in a.facts.calls:
        call = record.node
        assert isinstance(call, cst.Call)
        if not is_namespace_call(call):
            continue
        pending: list[cst.CSTNode] = [arg.value for arg in call.args]
        while pending:
            node = pending.pop()
            if isinstance(node, cst.Name):
                if a.resolver.binder(node.value, record.scope) is a.facts.scope:
                    keys.add(_constant_key(a, node.value))
                continue
            pending.extend(iter_children(node))
    return keys


def _assigned_name(a: AnalysisView, node: cst.CSTNode) -> str | None:
    """The module-level name whose assigned value contains ``node``."""
    parents = a.facts.parents
    current = parents.get(id(node))
    while current is not None:
        if isinstance(current, cst.Assign) and len(current.targets) == 1:
            target = current.targets[0].target
            return target.value if isinstance(target, cst.Name) else None
        if isinstance(current, cst.AnnAssign):
            return current.target.value if isinstance(current.target, cst.Name) else None
        if isinstance(current, cst.BaseStatement | cst.FunctionDef | cst.ClassDef):
            return None
        current = parents.get(id(current))
    return None


def _visible(
    a: AnalysisView, candidates: list[tuple[AnalysisView, Scope]]
) -> list[tuple[AnalysisView, Scope]]:
    """The fixtures of that name a test in ``a`` can request: its own module's, its conftests'."""
    own = [(o, s) for o, s in candidates if o is a]
    if own:
        return own
    conftests = {id(c) for c in a.conftest_analyses()}
    return [(o, s) for o, s in candidates if id(o) in conftests]


def _targets(a: AnalysisView, call: cst.Call, scope: Scope) -> list[Node]:
    """The functions or classes a call reaches, as flow nodes."""
    func = call.func
    facts = a.facts
    if isinstance(func, cst.Name):
        if a.resolver.binder(func.value, scope) is not facts.scope:
            return []
        function = facts.module_functions().get(func.value)
        if function is not None:
            return [("function", a.path, id(function))]
        if func.value in facts.classes:
            return [("class", a.path, func.value)]
        found = a.imported(func.value)
        if found is not None and found[1] is not None:
            other, symbol = found
            function = other.facts.module_functions().get(str(symbol))
            if function is not None:
                return [("function", other.path, id(function))]
            if symbol in other.facts.classes:
                return [("class", other.path, symbol)]
        return []
    if not isinstance(func, cst.Attribute):
        return []
    method = func.attr.value
    if isinstance(func.value, cst.Name) and func.value.value in ("self", "cls"):
        return []  # the class node already holds every method
    owners = [
        (a, cls.name) for cls in facts.classes.values() if method in cls.methods and cls.top_level
    ]
    for other in a.imported_analyses():
        owners += [
            (other, cls.name) for cls in other.facts.classes.values() if method in cls.methods
        ]
    for other in a.conftest_analyses():
        if other is not None:
            owners += [
                (other, cls.name) for cls in other.facts.classes.values() if method in cls.methods
            ]
    if len(owners) == 1 and not method.startswith("__") and method not in _COMMON:
        other, name = owners[0]
        return [("class", other.path, name)]
    return []


#: Method names too common to tie a call to the one project class that has one.
_COMMON = frozenset({"get", "put", "close", "start", "stop", "run", "append", "update", "wait"})


def _constants(analyses: list[AnalysisView]) -> None:
    """A broker constant's definition is auto-fixed when every use of it is."""
    uses: dict[tuple[object, ...], list[tuple[AnalysisView, Site]]] = {}
    for a in analyses:
        for site in a.sites:
            if (
                site.hazard is not None
                and site.hazard[0] == "const"
                and site.node is not site.origin
            ):
                uses.setdefault(site.hazard, []).append((a, site))
    for a in analyses:
        for site in a.sites:
            if site.hazard is None or site.hazard[0] != "const" or site.node is not site.origin:
                continue
            if site.code not in ("PI101", "PI102"):
                continue
            mine = uses.get(site.hazard, [])
            references = _references(a, str(site.hazard[2]), analyses)
            covered: set[int] = set()
            for other, use in mine:
                if use.decided is not None and use.decided[0]:
                    covered |= _names_in(other, use.node)
            left = [r for r in references if id(r) not in covered]
            if references and not left:
                site.decided = (True, "")
            elif not references:
                site.decided = (False, "unused constant")
            else:
                reasons = [
                    u.decided[1] for _, u in mine if u.decided and not u.decided[0] and u.decided[1]
                ]
                why = f"; {reasons[0]}" if reasons else ""
                site.decided = (False, f"{_stay(len(left), len(references))}{why}")


def _stay(left: int, total: int) -> str:
    """``its 2 uses stay``, ``its 1 use stays``, ``1 of its 3 uses stays``."""
    uses = "use" if total == 1 else "uses"
    verb = "stays" if left == 1 else "stay"
    if left == total:
        return f"its {total} {uses} {verb}"
    return f"{left} of its {total} {uses} {verb}"


def _names_in(a: AnalysisView, node: cst.CSTNode) -> set[int]:
    from parallel_isolation.migrate._walk import iter_children

    found: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Name):
            found.add(id(current))
        stack.extend(iter_children(current))
    return found


def _references(a: AnalysisView, name: str, analyses: list[AnalysisView]) -> list[cst.Name]:
    """Name references to a module constant, in its module and the modules importing it."""
    found: list[cst.Name] = []
    for other in analyses:
        facts = other.facts
        local = name
        if other is not a:
            matches = [
                local_name
                for local_name, ref in facts.imports.items()
                if ref.name == name
                and (imported := other.imported(local_name)) is not None
                and imported[0] is a
            ]
            if not matches:
                continue
            local = matches[0]
        for record in facts.names:
            node = record.node
            if (
                isinstance(node, cst.Name)
                and node.value == local
                and other.resolver.binder(local, record.scope) is facts.scope
            ):
                found.append(node)
    return found
