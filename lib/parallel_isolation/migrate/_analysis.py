"""Second pass: the hazard sites of a module, and who can fix each.

A *site* is one node that is a hazard (a bare topic literal in ``publish``,
a fixed container name, a ``time.sleep``...).  Sites that can be rewritten
carry a builder and the fixture they need (``mqtt_broker``, a names
provider, ``topic_namespace``); :meth:`Analysis.provider` decides whether the
enclosing function can get that fixture: tests and fixtures take it as a
parameter, helpers only when every use of them is a direct call from a place
that can pass it on.  The linter reports every site; each codemod command
rewrites the fixable sites of its own codes.

Literals reach hazards through helpers too (``connect("sensor-client")``
where ``connect`` passes its parameter to ``Client(client_id=...)``): every
function gets a summary of which parameters flow, unchanged, into which kind
of sink, and whether they are used for anything else.  Only a parameter that
flows nowhere else ("pure") has its call-site literals rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import libcst as cst

from parallel_isolation.migrate._builders import (
    Builder,
    add_prefix,
    broker_attribute,
    env_container,
    env_string,
    strip_topic,
    wrap_in,
)
from parallel_isolation.migrate._facts import (
    PLUGIN_FIXTURES,
    ModuleFacts,
    Record,
    Scope,
    dotted,
    last_name,
    string_value,
)
from parallel_isolation.migrate._sinks import (
    KNOWN_PORTS,
    SUBPROCESS,
    TOPIC_KINDS,
    Kind,
    Sink,
    call_sinks,
    cli_sinks,
    cli_tokens,
    env_dict,
    env_kind,
    keyword_arg,
    positional_args,
    unwrap_conversion,
)
from parallel_isolation.migrate._values import Lit, Resolver
from parallel_isolation.migrate._walk import iter_children

__all__ = ["Analysis", "External", "FunctionSummary", "Need", "Site"]

Need = Literal["broker", "names", "topics"]

_HOST_NAME = re.compile(
    r"(?i)^(?:(?:mqtt|broker)_?(?:broker_?)?(?:host|server|address|addr)|mqtt_broker|broker|host)$"
)
_PORT_NAME = re.compile(r"(?i)^(?:(?:mqtt|broker)_?(?:broker_?)?port|port)$")
_TMP_PREFIXES = ("/tmp/", "/var/tmp/", "/dev/shm/")
_REMOVERS = frozenset({"remove", "kill", "stop", "terminate", "disconnect"})
_LISTERS = frozenset({"containers", "networks", "volumes", "images"})


# --------------------------------------------------------------------------
# summaries of functions: which parameters flow into which sinks


@dataclass
class Flow:
    kinds: set[Kind] = field(default_factory=set)
    each: bool | None = None
    pure: bool = True


@dataclass
class FunctionSummary:
    """How a function's parameters reach sinks (computed or loaded from a conftest)."""

    label: str
    scope: Scope | None
    params: list[str]
    offset: int
    kwonly: list[str]
    star: bool
    kwstar: bool
    flows: dict[str, Flow]

    def accepts(self, call: cst.Call) -> bool:
        positional = positional_args(call)
        if not self.star and len(positional) > len(self.params) - self.offset:
            return False
        names = set(self.params[self.offset :]) | set(self.kwonly)
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value not in names and not self.kwstar:
                return False
        return True

    def mapping(self, call: cst.Call) -> Iterator[tuple[cst.BaseExpression, str]]:
        for index, value in enumerate(positional_args(call)):
            position = self.offset + index
            if position < len(self.params):
                yield value, self.params[position]
        for arg in call.args:
            if arg.keyword is not None:
                yield arg.value, arg.keyword.value


@dataclass(frozen=True)
class External:
    """What a module sees of its conftest files: class method summaries, fixture names."""

    classes: dict[str, list[FunctionSummary]] = field(default_factory=dict)
    fixtures: frozenset[str] = frozenset()
    raw_mqtt: bool = False

    def merged(self, other: External) -> External:
        classes = {name: list(summaries) for name, summaries in self.classes.items()}
        for name, summaries in other.classes.items():
            classes.setdefault(name, []).extend(summaries)
        return External(classes, self.fixtures | other.fixtures, self.raw_mqtt or other.raw_mqtt)


@dataclass(eq=False)
class Site:
    """One hazard node; ``build`` rewrites it given the providing fixture's name."""

    code: str
    node: cst.CSTNode
    scope: Scope
    message: str
    need: Need | None = None
    build: Builder | None = None
    report: bool = True
    manual: str | None = None
    autofix: bool | None = None


# --------------------------------------------------------------------------
# the analysis


class Analysis:
    """All hazard sites of one module, with the providers that can fix them."""

    def __init__(self, facts: ModuleFacts, external: External | None = None) -> None:
        self.facts = facts
        self.resolver = Resolver(facts)
        self.external = external or External()
        self.local_fixtures = frozenset(
            s.name for s in facts.functions.values() if s.role == "fixture"
        )
        #: Clients here may publish topics as given: the module imports an MQTT
        #: client library, or a conftest in scope does, or its ``mqtt_client``
        #: fixture is a local one.  Elsewhere every client is the plugin's.
        self.raw_messages = (
            facts.uses_raw_mqtt
            or self.external.raw_mqtt
            or "mqtt_client" in self.local_fixtures
            or "mqtt_client" in self.external.fixtures
        )
        self.sites: list[Site] = []
        self.handled: set[int] = set()
        self.container_names: set[str] = set()
        self.network_names: set[str] = set()
        self.broker_constants: dict[str, Kind] = {}
        self.constant_sink_uses: dict[str, list[Site]] = {}
        self._provider_memo: dict[tuple[int, str], tuple[str | None, str]] = {}
        self._in_progress: set[tuple[int, str]] = set()
        self._call_sites_memo: dict[int, list[Record] | None] = {}
        self.sink_nodes: dict[int, Kind] = {}
        self.summaries: dict[int, FunctionSummary] = {}
        self._builtin: dict[int, list[Sink]] = {}
        self._run()

    # -- providers --------------------------------------------------------

    def fixture_for(self, scope: Scope, need: Need) -> str:
        top = scope.outermost_function()
        if need == "broker":
            return "mqtt_broker"
        if need == "topics":
            return "topic_namespace"
        if top is not None and top.role == "fixture" and top.fixture_scope != "function":
            return "isolation_worker"
        return "parallel_test_context"

    def provider(self, scope: Scope, need: Need) -> tuple[str | None, str]:
        """The fixture that provides ``need`` inside ``scope``, or None and why not."""
        key = (id(scope), need)
        if key in self._provider_memo:
            return self._provider_memo[key]
        if key in self._in_progress:
            return self.fixture_for(scope, need), ""
        self._in_progress.add(key)
        try:
            result = self._provider(scope, need)
        finally:
            self._in_progress.discard(key)
        self._provider_memo[key] = result
        return result

    def _provider(self, scope: Scope, need: Need) -> tuple[str | None, str]:
        top = scope.outermost_function()
        if top is None:
            where = "a class body" if scope.role == "class" else "module-level code"
            return None, f"{where} runs before any fixture exists"
        fixture = self.fixture_for(scope, need)
        for candidate in scope.function_chain():
            if fixture in candidate.all_params():
                return fixture, ""
            if fixture in candidate.bindings:
                return None, f"{candidate.name} already has a local variable named {fixture}"
            if candidate is top:
                break
        if top.name == fixture and top.role == "fixture":
            return None, f"the fixture {fixture} cannot request itself"
        if top.role == "test":
            return fixture, ""
        if top.role == "fixture":
            if need == "topics" and top.fixture_scope != "function":
                return None, (
                    f"the {top.fixture_scope}-scoped fixture {top.name} outlives each "
                    "test's topic namespace"
                )
            return fixture, ""
        if top.role in ("helper", "method"):
            sites = self.call_sites(top)
            if sites is None:
                return None, f"{top.qualname} is used other than by direct calls in this module"
            for record in sites:
                got, why = self.provider(record.scope, need)
                if got != fixture:
                    caller = record.scope.outermost_function()
                    name = caller.qualname if caller is not None else "module-level code"
                    reason = why or f"it provides {got} instead"
                    return None, f"{top.qualname} is called from {name}, where {reason}"
            return fixture, ""
        reasons = {
            "unittest": "unittest.TestCase methods cannot receive pytest fixtures",
            "setup": "setup/teardown methods cannot receive fixtures; use a fixture",
            "hook": "pytest hooks cannot receive fixtures",
        }
        return None, reasons.get(top.role, f"{top.role} functions cannot receive fixtures")

    def call_sites(self, function: Scope) -> list[Record] | None:
        """Every call of a helper or method, if those are its only uses (else None)."""
        key = id(function)
        if key not in self._call_sites_memo:
            self._call_sites_memo[key] = self._find_call_sites(function)
        return self._call_sites_memo[key]

    def _find_call_sites(self, function: Scope) -> list[Record] | None:
        facts = self.facts
        if not isinstance(function.node, cst.FunctionDef):
            return None
        calls = {id(r.node.func): r for r in facts.calls if isinstance(r.node, cst.Call)}
        found: list[Record] = []
        if function.cls is None:
            if function.parent is not facts.scope:
                return None
            for record in facts.names:
                name = record.node
                assert isinstance(name, cst.Name)
                if name.value != function.name:
                    continue
                if self.resolver.binder(name.value, record.scope) is not facts.scope:
                    continue
                if record.in_annotation:
                    continue
                call = calls.get(id(name))
                if call is None:
                    return None
                found.append(call)
            return found or None
        cls = function.cls
        if not cls.top_level or function.role != "method":
            return None
        if function.name == "__init__":
            if any(cls.name in c.bases for c in facts.classes.values()):
                return None
            for record in facts.names:
                name = record.node
                assert isinstance(name, cst.Name)
                if name.value != cls.name or record.in_annotation:
                    continue
                if self.resolver.binder(name.value, record.scope) is not facts.scope:
                    continue
                call = calls.get(id(name))
                if call is None:
                    return None
                found.append(call)
            return found or None
        if function.name.startswith("__"):
            return None
        for record in facts.attributes:
            attribute = record.node
            assert isinstance(attribute, cst.Attribute)
            if attribute.attr.value != function.name:
                continue
            call = calls.get(id(attribute))
            owner = record.scope.outermost_function()
            if (
                call is None
                or not isinstance(attribute.value, cst.Name)
                or attribute.value.value not in ("self", "cls")
                or owner is None
                or owner.cls is not cls
            ):
                return None
            found.append(call)
        return found or None

    def fixable(self, site: Site) -> tuple[bool, str]:
        if site.autofix is not None:
            return site.autofix, site.manual or ""
        if site.build is None:
            return False, site.manual or "needs a decision only a human can make"
        if site.need is None:
            return True, ""
        provider, reason = self.provider(site.scope, site.need)
        return provider is not None, reason

    # -- the passes --------------------------------------------------------------

    def _add(self, site: Site) -> Site | None:
        if id(site.node) in self.handled:
            return None
        self.handled.add(id(site.node))
        self.sites.append(site)
        return site

    def _run(self) -> None:
        facts = self.facts
        for record in facts.calls:
            assert isinstance(record.node, cst.Call)
            sinks = call_sinks(record.node, facts) + cli_sinks(record.node, facts)
            func = record.node.func
            if isinstance(func, cst.Attribute) and (
                self.receiver_kind(func.value, record.scope) == "namespaced"
            ):
                sinks = [sink for sink in sinks if sink.kind not in TOPIC_KINDS]
            self._builtin[id(record.node)] = sinks
            for sink in sinks:
                self.sink_nodes.setdefault(id(sink.node), sink.kind)
                if sink.kind in ("container", "network"):
                    lit = self.resolver.lit(sink.node, record.scope)
                    if lit is not None:
                        names = (
                            self.container_names if sink.kind == "container" else self.network_names
                        )
                        names.update(lit.strings())
        self._env_sinks_for_summaries()
        self._summarize()
        self._shadowed_fixtures()
        for record in facts.calls:
            self._call(record)
        for record in facts.dicts:
            self._dict(record)
        for target, value, scope in facts.assigns:
            self._assign(target, value, scope)
        self._constant_definitions()
        for record in facts.comparisons:
            self._comparison(record)
        for record in facts.loops:
            self._cleanup_loop(record)
        for record in facts.names:
            self._name_reference(record)
        for record in facts.strings:
            self._string(record)
        for record in facts.integers:
            self._integer(record)

    # -- summaries ----------------------------------------------------------------

    def _env_sinks_for_summaries(self) -> None:
        for record in self.facts.dicts:
            assert isinstance(record.node, cst.Dict)
            info = env_dict(record.node)
            if info is None:
                continue
            if info.host is not None:
                self.sink_nodes.setdefault(id(info.host.value), "host")
            for element in info.ports:
                self.sink_nodes.setdefault(id(unwrap_conversion(element.value)), "port")
            for element in info.clients:
                self.sink_nodes.setdefault(id(element.value), "client_id")

    def _summarize(self) -> None:
        facts = self.facts
        functions = [
            s
            for s in facts.functions.values()
            if s.role in ("helper", "method") and isinstance(s.node, cst.FunctionDef)
        ]
        arg_calls: dict[int, cst.Call] = {}
        for record in facts.calls:
            call = record.node
            assert isinstance(call, cst.Call)
            for arg in call.args:
                arg_calls[id(arg.value)] = call
        loop_targets: dict[int, tuple[cst.Name, Scope]] = {}
        for record in facts.loops:
            loop = record.node
            if isinstance(loop, cst.For) and isinstance(loop.target, cst.Name):
                loop_targets[id(loop.iter)] = (loop.target, record.scope)
        uses: dict[tuple[int, str], list[Record]] = {}
        for record in facts.names:
            name = record.node
            assert isinstance(name, cst.Name)
            binder = self.resolver.binder(name.value, record.scope)
            if binder is not None and binder.is_function:
                uses.setdefault((id(binder), name.value), []).append(record)
        record_of_call: dict[int, Record] = {id(r.node): r for r in facts.calls}

        # contributions: (direct kinds, [(callee summary id or external, param, each)], impure)
        Contribution = tuple[set[Kind], list[tuple[Callable[[], Flow | None], bool]], bool, bool]

        def analyze(name: str, binder: Scope, depth: int = 0) -> Contribution:
            kinds: set[Kind] = set()
            edges: list[tuple[Callable[[], Flow | None], bool]] = []
            impure = False
            each = False
            for record in uses.get((id(binder), name), []):
                node = record.node
                kind = self.sink_nodes.get(id(node))
                if kind is not None:
                    kinds.add(kind)
                    continue
                if record.in_fstring:
                    continue
                target = loop_targets.get(id(node))
                if target is not None and depth < 3:
                    sub_kinds, sub_edges, sub_impure, sub_each = analyze(
                        target[0].value, target[1], depth + 1
                    )
                    if sub_impure or sub_each:
                        impure = True
                    each = True
                    kinds |= sub_kinds
                    edges += [(getter, True) for getter, _ in sub_edges]
                    continue
                call = arg_calls.get(id(node))
                if call is not None:
                    caller = record_of_call.get(id(call))
                    summary = self._resolve(call, caller.scope) if caller is not None else None
                    param = None
                    if summary is not None:
                        param = next((p for v, p in summary.mapping(call) if v is node), None)
                    if summary is None or param is None:
                        impure = True
                        continue
                    edges.append((_flow_getter(summary, param), False))
                    continue
                impure = True
            return kinds, edges, impure, each

        contributions: dict[tuple[int, str], Contribution] = {}
        for function in functions:
            summary = self._summary_shell(function)
            self.summaries[id(function)] = summary
        for function in functions:
            summary = self.summaries[id(function)]
            for param in summary.params[summary.offset :] + summary.kwonly:
                contributions[(id(function), param)] = analyze(param, function)
        for _ in range(20):
            changed = False
            for (function_id, param), (kinds, edges, impure, each) in contributions.items():
                flow = self.summaries[function_id].flows[param]
                new_kinds = set(kinds)
                new_each: bool | None = True if each else (False if kinds else None)
                pure = not impure
                for getter, via_loop in edges:
                    other = getter()
                    if other is None:
                        pure = False
                        continue
                    pure = pure and other.pure
                    if not other.kinds:
                        continue
                    new_kinds |= other.kinds
                    other_each = bool(other.each) or via_loop
                    if via_loop and other.each:
                        pure = False
                    if new_each is None:
                        new_each = other_each
                    elif new_each != other_each:
                        pure = False
                if (new_kinds, new_each, pure) != (flow.kinds, flow.each, flow.pure):
                    flow.kinds, flow.each, flow.pure = new_kinds, new_each, pure
                    changed = True
            if not changed:
                break

    def _summary_shell(self, function: Scope) -> FunctionSummary:
        offset = 0 if (function.cls is None or function.is_static) else 1
        if function.cls is None and function.role == "helper":
            offset = 0
        params = list(function.params)
        return FunctionSummary(
            label=function.qualname,
            scope=function,
            params=params,
            offset=offset,
            kwonly=list(function.kwonly),
            star=function.star is not None,
            kwstar=function.kwstar is not None,
            flows={p: Flow() for p in params[offset:] + function.kwonly},
        )

    def _resolve(self, call: cst.Call, scope: Scope) -> FunctionSummary | None:
        """The summary of the function a call reaches, if it can be told."""
        func = call.func
        facts = self.facts
        if isinstance(func, cst.Name):
            binder = self.resolver.binder(func.value, scope)
            if binder is not facts.scope:
                return None
            function = facts.module_functions().get(func.value)
            if function is not None:
                return self.summaries.get(id(function))
            cls = facts.classes.get(func.value)
            if cls is not None and "__init__" in cls.methods:
                return self.summaries.get(id(cls.methods["__init__"]))
            return None
        if not isinstance(func, cst.Attribute):
            return None
        method = func.attr.value
        if isinstance(func.value, cst.Name) and func.value.value in ("self", "cls"):
            owner = scope.outermost_function()
            if owner is not None and owner.cls is not None and method in owner.cls.methods:
                return self.summaries.get(id(owner.cls.methods[method]))
            return None
        if method.startswith("__"):
            return None
        candidates: list[FunctionSummary] = []
        for cls in facts.classes.values():
            target = cls.methods.get(method)
            if target is not None and id(target) in self.summaries:
                candidates.append(self.summaries[id(target)])
        candidates += self.external.classes.get(method, [])
        fitting = [c for c in candidates if c.accepts(call)]
        return fitting[0] if len(fitting) == 1 else None

    def exported(self) -> External:
        """What modules that see this one as a conftest learn from it."""
        classes: dict[str, list[FunctionSummary]] = {}
        for cls in self.facts.classes.values():
            for name, method in cls.methods.items():
                summary = self.summaries.get(id(method))
                if summary is not None and not name.startswith("__"):
                    classes.setdefault(name, []).append(summary)
        return External(classes, self.local_fixtures, self.facts.uses_raw_mqtt)

    def receiver_kind(
        self, receiver: cst.BaseExpression, scope: Scope
    ) -> Literal["namespaced", "raw"] | None:
        """Whether a call's receiver is a NamespacedClient (it prefixes bare
        topics itself), a raw library client, or unknown."""
        if isinstance(receiver, cst.Call):
            callee = last_name(receiver.func)
            if callee in ("mqtt_client", "connect_client"):
                return "namespaced"
            return "raw" if callee in ("Client", "MQTTClient") else None
        if isinstance(receiver, cst.Attribute) and isinstance(receiver.value, cst.Name):
            owner = scope.outermost_function()
            if receiver.value.value != "self" or owner is None or owner.cls is None:
                return None
            if receiver.attr.value in owner.cls.namespaced_attrs:
                return "namespaced"
            return "raw" if receiver.attr.value in owner.cls.raw_attrs else None
        if not isinstance(receiver, cst.Name):
            return None
        name = receiver.value
        binder = self.resolver.binder(name, scope)
        if binder is None or not binder.is_function:
            return None
        if name in binder.namespaced:
            return "namespaced"
        if name in binder.raw_clients:
            return "raw"
        shadowed = name in self.local_fixtures or name in self.external.fixtures
        if (
            name == "mqtt_client"
            and name in binder.all_params()
            and binder.role in ("test", "fixture")
            and not shadowed
        ):
            return "namespaced"
        return None

    # -- rules: calls --------------------------------------------------------------

    def _sink_site(
        self, sink: Sink, scope: Scope, via: str | None = None, pure: bool = True
    ) -> None:
        node = sink.node
        if id(node) in self.handled:
            return
        lit = self.resolver.lit(node, scope)
        if lit is None:
            return
        where = f"{sink.label}" + (f" via {via}" if via else "")
        manual = (
            None if pure else (f"{via} also uses the value for something else; migrate by hand")
        )
        kind = sink.kind
        if kind in TOPIC_KINDS:
            strings = lit.strings()
            if lit.kind == "literal" and (
                not strings
                or all(s.startswith("$") and not s.startswith("$share/") for s in strings)
            ):
                return
            if kind == "either":
                kind = "filter" if any("+" in s or "#" in s for s in strings) else "topic"
            method = "filter" if kind == "filter" else "topic"
            code = "PI108" if lit.kind == "built" else "PI107"
            what = (
                "topic built without a namespace"
                if code == "PI108"
                else (f"bare topic {lit.describe()}")
            )
            self._add(
                Site(
                    code,
                    node,
                    scope,
                    f"{what} in {where}; use topic_namespace.{method}(...)",
                    need="topics",
                    build=wrap_in(method) if pure else None,
                    manual=manual,
                )
            )
        elif kind == "client_id":
            if lit.kind == "literal" and (not lit.strings() or lit.strings() == ("",)):
                return
            self._add(
                Site(
                    "PI110",
                    node,
                    scope,
                    f"fixed MQTT client id {lit.describe()} in {where}; use "
                    f"{self.fixture_for(scope, 'names')}.client_id(...)",
                    need="names",
                    build=wrap_in("client_id") if pure else None,
                    manual=manual,
                )
            )
        elif kind == "host":
            strings = lit.strings()
            if lit.kind != "literal" or not strings:
                return
            if set(strings) <= self.container_names:
                self._sink_site(Sink(node, "container", sink.label), scope, via, pure)
                return
            self._broker_site(
                "PI101",
                node,
                scope,
                lit,
                f"hard-coded broker host {lit.describe()} in {where}",
                broker_attribute("host"),
                pure,
                manual,
            )
        elif kind == "port":
            if lit.kind != "literal" or not lit.values:
                return
            if not all(isinstance(v, int) or v.isdigit() for v in lit.values):
                return
            as_string = all(isinstance(v, str) for v in lit.values)
            self._broker_site(
                "PI102",
                node,
                scope,
                lit,
                f"hard-coded broker port {lit.describe()} in {where}",
                broker_attribute("port", as_string),
                pure,
                manual,
            )
        elif kind in ("container", "network"):
            if lit.kind == "literal" and not lit.strings():
                return
            if kind == "network" and "host" in lit.strings():
                self._add(
                    Site(
                        "PI106",
                        node,
                        scope,
                        f"host network in {where}",
                        manual="needs the worker's own network",
                    )
                )
                return
            if kind == "network" and set(lit.strings()) <= {"bridge", "none", "default"}:
                return
            code, method, what = (
                ("PI104", "container_name", "container name")
                if kind == "container"
                else ("PI105", "network_name", "Docker network name")
            )
            provider = self.fixture_for(scope, "names")
            self._add(
                Site(
                    code,
                    node,
                    scope,
                    f"fixed {what} {lit.describe()} in {where}; use {provider}.{method}(...)",
                    need="names",
                    build=wrap_in(method) if pure else None,
                    manual=manual,
                )
            )

    def _broker_site(
        self,
        code: str,
        node: cst.CSTNode,
        scope: Scope,
        lit: Lit,
        message: str,
        build: Builder,
        pure: bool,
        manual: str | None,
    ) -> None:
        if lit.constant is not None and isinstance(node, cst.Name):
            self.broker_constants.setdefault(lit.constant, "host" if code == "PI101" else "port")
            site = self._add(
                Site(
                    code,
                    node,
                    scope,
                    message,
                    need="broker",
                    build=build if pure else None,
                    report=False,
                    manual=manual,
                )
            )
            if site is not None:
                self.constant_sink_uses.setdefault(lit.constant, []).append(site)
            return
        self._add(
            Site(
                code,
                node,
                scope,
                message + "; use mqtt_broker." + ("host" if code == "PI101" else "port"),
                need="broker",
                build=build if pure else None,
                manual=manual,
            )
        )

    def _call(self, record: Record) -> None:
        call = record.node
        assert isinstance(call, cst.Call)
        scope = record.scope
        facts = self.facts
        method = last_name(call.func)
        qualified = facts.qualify(call.func) or ""
        func = call.func
        receiver = func.value if isinstance(func, cst.Attribute) else None
        receiving = self.receiver_kind(receiver, scope) if receiver is not None else None
        namespaced = receiving == "namespaced"
        summary = None
        if method is not None and not namespaced and receiving != "raw":
            summary = self._resolve(call, scope)
            if summary is not None and summary.scope is scope.outermost_function():
                summary = None  # a method calling its namesake on another object
        if summary is None or not isinstance(func, cst.Attribute):
            for sink in self._builtin.get(id(call), []):
                if sink.kind in TOPIC_KINDS and (namespaced or not self.raw_messages):
                    continue
                self._sink_site(sink, scope)
        if (
            method in ("startswith", "split", "partition", "rsplit")
            and isinstance(func, cst.Attribute)
            and self.raw_messages
        ):
            self._incoming(func.value, scope, f".{method}()")
        if summary is not None:
            for value, param in summary.mapping(call):
                flow = summary.flows.get(param)
                if flow is None or not flow.kinds:
                    continue
                kinds = flow.kinds
                kind: Kind
                if kinds <= TOPIC_KINDS:
                    kind = "either" if len(kinds) > 1 else next(iter(kinds))
                elif len(kinds) == 1:
                    kind = next(iter(kinds))
                else:
                    continue
                if kind in TOPIC_KINDS and not self.raw_messages:
                    continue
                via = f"{summary.label}({param})"
                if flow.each:
                    if isinstance(value, cst.List | cst.Tuple | cst.Set):
                        for element in value.elements:
                            if not isinstance(element, cst.StarredElement):
                                self._sink_site(
                                    Sink(element.value, kind, "a call"), scope, via, flow.pure
                                )
                    continue
                self._sink_site(Sink(value, kind, "a call"), scope, via, flow.pure)
        for arg in call.args:
            keyword = arg.keyword.value if arg.keyword is not None else None
            if keyword == "network_mode" and string_value(arg.value) == "host":
                self._add(
                    Site(
                        "PI106",
                        arg.value,
                        scope,
                        "network_mode='host' shares the host's ports and brokers",
                        manual="needs the worker's own network",
                    )
                )
            elif keyword == "ports" and isinstance(arg.value, cst.Dict):
                self._ports(arg.value, scope)
        if method == "prune":
            self._add(
                Site(
                    "PI111",
                    call,
                    scope,
                    f"{dotted(call.func) or 'prune'}() removes what other workers and runs still use",
                    manual="remove only what the test created",
                )
            )
        if qualified in ("time.sleep", "asyncio.sleep") and record.loop_depth == 0:
            shown = facts.module.code_for_node(call.args[0].value) if call.args else ""
            self._add(
                Site(
                    "PI112",
                    call,
                    scope,
                    f"{qualified}({shown}) waits and hopes; wait for the condition with a deadline",
                    manual="name the condition and wait for it",
                )
            )
        if qualified in SUBPROCESS:
            self._subprocess(call, scope)

    def _ports(self, mapping: cst.Dict, scope: Scope) -> None:
        for element in mapping.elements:
            if not isinstance(element, cst.DictElement):
                continue
            if element.key is not None:
                self.handled.add(id(element.key))
            value = element.value
            candidates: list[cst.BaseExpression] = []
            if isinstance(value, cst.Tuple) and value.elements:
                candidates.append(value.elements[-1].value)
            elif isinstance(value, cst.List):
                candidates += [e.value for e in value.elements]
            else:
                candidates.append(value)
            for candidate in candidates:
                lit = self.resolver.lit(candidate, scope)
                if lit is None or lit.kind != "literal":
                    continue
                if not any(isinstance(v, int) for v in lit.values):
                    continue
                self._add(
                    Site(
                        "PI103",
                        candidate,
                        scope,
                        f"fixed host port {lit.describe()} in a port mapping; publish on a port "
                        "reserved for the test (parallel_test_context.port(...)) on 127.0.0.1",
                        manual="the mapped port must come from the allocator",
                    )
                )

    def _subprocess(self, call: cst.Call, scope: Scope) -> None:
        tokens = cli_tokens(call)
        if not tokens:
            return
        words = [t for t, _ in tokens]
        head = [w for w in words[:2] if w is not None]
        first = head[0] if head else None
        if first == "sudo" and len(head) > 1:
            first = head[1]
        if first is not None and first.rsplit("/", 1)[-1] in ("pkill", "killall"):
            self._add(
                Site(
                    "PI111",
                    call,
                    scope,
                    f"{first} kills processes of every worker by pattern",
                    manual="stop the process handle the test started",
                )
            )
            return
        if first != "docker" and first != "docker-compose":
            return
        if "prune" in words:
            self._add(
                Site(
                    "PI111",
                    call,
                    scope,
                    "docker ... prune removes what other workers and runs still use",
                    manual="remove only what the test created",
                )
            )
        if any(w is not None and ("name=" in w) for w in words) and any(
            w in ("rm", "kill", "stop") for w in words
        ):
            self._add(
                Site(
                    "PI111",
                    call,
                    scope,
                    "docker cleanup selected by name filter",
                    manual="select by the plugin's labels",
                )
            )
        for index, (word, node) in enumerate(tokens):
            following = tokens[index + 1] if index + 1 < len(tokens) else (None, None)
            if word in ("--network", "--net") and following[0] == "host":
                self._add(
                    Site(
                        "PI106",
                        following[1] or call,
                        scope,
                        "host network in docker run",
                        manual="needs the worker's own network",
                    )
                )
            elif (
                word is not None
                and word.startswith(("--network=", "--net="))
                and word.endswith("=host")
            ):
                self._add(
                    Site(
                        "PI106",
                        node or call,
                        scope,
                        "host network in docker run",
                        manual="needs the worker's own network",
                    )
                )
            elif word in ("-p", "--publish") and following[0] is not None and ":" in following[0]:
                target = following[1] or call
                self._add(
                    Site(
                        "PI103",
                        target,
                        scope,
                        f"fixed published port {following[0]!r}",
                        manual="the published port must come from the allocator",
                    )
                )
            elif word is not None and word.startswith("--name=") and node is not None:
                self._add(
                    Site(
                        "PI104",
                        node,
                        scope,
                        f"fixed container name in {word!r}",
                        manual="build the argument from parallel_test_context.container_name(...)",
                    )
                )

    # -- rules: dicts, assignments, constants -------------------------------------

    def _dict(self, record: Record) -> None:
        node = record.node
        assert isinstance(node, cst.Dict)
        scope = record.scope
        info = env_dict(node)
        if info is None:
            return
        internal = False
        if info.host is not None:
            lit = self.resolver.lit(info.host.value, scope)
            if _names_a_container(info.host.value):
                internal = True
            elif lit is not None and lit.strings() and set(lit.strings()) <= self.container_names:
                internal = True
                self._sink_site(Sink(info.host.value, "container", "MQTT_BROKER"), scope)
            else:
                self._sink_site(Sink(info.host.value, "host", "MQTT_BROKER"), scope)
        for element in info.ports:
            value = unwrap_conversion(element.value)
            if internal:
                self.handled.add(id(value))
                self.handled.add(id(element.value))
            else:
                self._sink_site(Sink(value, "port", "MQTT_PORT"), scope)
        for element in info.clients:
            self._sink_site(Sink(element.value, "client_id", "MQTT_CLIENT_ID"), scope)
        if info.host is not None and not info.has_prefix and not info.unknown_splat:
            self._add(
                Site(
                    "PI115",
                    node,
                    scope,
                    "service environment sets MQTT_BROKER but no TOPIC_PREFIX; add "
                    "'TOPIC_PREFIX': topic_namespace.prefix",
                    need="topics",
                    build=add_prefix,
                )
            )

    def _assign(self, target: cst.BaseExpression, value: cst.BaseExpression, scope: Scope) -> None:
        if isinstance(target, cst.Subscript) and dotted(target.value) == "os.environ":
            key = None
            if target.slice and isinstance(target.slice[0].slice, cst.Index):
                key = string_value(target.slice[0].slice.value)
            kind = env_kind(key) if key else None
            if kind in ("host", "port", "client_id"):
                self._sink_site(
                    Sink(
                        unwrap_conversion(value) if kind == "port" else value,
                        kind,
                        key or "os.environ",
                    ),
                    scope,
                )
            return
        if not isinstance(target, cst.Name):
            return
        name = target.value
        if scope.role == "module":
            lit = self.resolver.lit(value, scope)
            if lit is None or lit.kind != "literal" or len(lit.values) != 1:
                return
            only = lit.values[0]
            if _HOST_NAME.match(name) and isinstance(only, str) and only:
                self.broker_constants.setdefault(name, "host")
            elif _PORT_NAME.match(name) and (isinstance(only, int) or only.isdigit()):
                self.broker_constants.setdefault(name, "port")
            return
        if (scope.is_function or scope.role == "class") and isinstance(
            value, cst.SimpleString | cst.Integer
        ):
            lit = self.resolver.lit(value, scope)
            if lit is None:
                return
            if _HOST_NAME.match(name) and lit.strings():
                self._sink_site(Sink(value, "host", f"{name} = ..."), scope)
            elif _PORT_NAME.match(name):
                self._sink_site(Sink(value, "port", f"{name} = ..."), scope)

    def _constant_definitions(self) -> None:
        module = self.facts.scope
        for name, kind in self.broker_constants.items():
            bindings = module.bindings.get(name, [])
            if len(bindings) != 1 or bindings[0].value is None:
                continue
            value = bindings[0].value
            lit = self.resolver.lit(value, module)
            if lit is None:
                continue
            uses = [
                r
                for r in self.facts.names
                if isinstance(r.node, cst.Name)
                and r.node.value == name
                and self.resolver.binder(name, r.scope) is module
            ]
            rewritten = [s for s in self.constant_sink_uses.get(name, []) if self.fixable(s)[0]]
            autofix = bool(uses) and len(rewritten) == len(uses)
            left = len(uses) - len(rewritten)
            code = "PI101" if kind == "host" else "PI102"
            what = "host" if kind == "host" else "port"
            manual = None
            if not autofix:
                manual = (
                    f"{left} of its {len(uses)} uses cannot be rewritten to mqtt_broker.{what}"
                    if uses
                    else "unused constant"
                )
            node = value
            self.handled.add(id(value))
            self.sites.append(
                Site(
                    code,
                    node,
                    module,
                    f"hard-coded broker {what} in constant {name} = {lit.describe()}; "
                    f"uses become mqtt_broker.{what}",
                    need="broker",
                    autofix=autofix,
                    manual=manual,
                )
            )

    def _shadowed_fixtures(self) -> None:
        for scope in self.facts.functions.values():
            if scope.role == "fixture" and scope.name in PLUGIN_FIXTURES:
                node = scope.node
                assert isinstance(node, cst.FunctionDef)
                self._add(
                    Site(
                        "PI114",
                        node.name,
                        scope,
                        f"fixture {scope.name} hides the plugin's per-worker {scope.name}; "
                        "delete it",
                        manual="deleting a fixture is a human decision",
                    )
                )

    # -- rules: incoming topics ---------------------------------------------------------

    def _incoming(self, expr: cst.BaseExpression, scope: Scope, where: str) -> None:
        if not (isinstance(expr, cst.Attribute) and expr.attr.value == "topic"):
            return
        base = expr.value
        if isinstance(base, cst.Name) and any(
            base.value in s.ns_messages for s in scope.function_chain()
        ):
            return
        self._add(
            Site(
                "PI109",
                expr,
                scope,
                f"incoming topic {self.facts.module.code_for_node(expr)} used as a bare topic in "
                f"{where}; use topic_namespace.strip(...)",
                need="topics",
                build=strip_topic,
            )
        )

    def _comparison(self, record: Record) -> None:
        if not self.raw_messages:
            return
        node = record.node
        assert isinstance(node, cst.Comparison)
        operands: list[cst.BaseExpression] = [node.left, *(t.comparator for t in node.comparisons)]
        for index, target in enumerate(node.comparisons):
            if not isinstance(target.operator, cst.Equal | cst.NotEqual | cst.In | cst.NotIn):
                continue
            left, right = operands[index], operands[index + 1]
            for mine, other in ((left, right), (right, left)):
                if (
                    isinstance(mine, cst.Attribute)
                    and mine.attr.value == "topic"
                    and self._topicish(other, record.scope)
                ):
                    self._incoming(mine, record.scope, "a comparison")

    def _topicish(self, expr: cst.BaseExpression, scope: Scope) -> bool:
        if isinstance(expr, cst.Tuple | cst.List | cst.Set):
            return bool(expr.elements) and all(
                self._topicish(e.value, scope) for e in expr.elements
            )
        lit = self.resolver.lit(expr, scope)
        return lit is not None and (lit.kind == "built" or bool(lit.strings()))

    # -- rules: cleanup loops ---------------------------------------------------------------

    def _cleanup_loop(self, record: Record) -> None:
        node = record.node
        iterable: cst.BaseExpression | None = None
        if isinstance(node, cst.For):
            iterable = node.iter
        elif isinstance(node, cst.ListComp | cst.SetComp | cst.GeneratorExp | cst.DictComp):
            iterable = node.for_in.iter
        if not isinstance(iterable, cst.Call):
            return
        method = last_name(iterable.func)
        holder = (
            last_name(iterable.func.value) if isinstance(iterable.func, cst.Attribute) else None
        )
        listing = (method == "list" and holder in _LISTERS) or method == "process_iter"
        if not listing:
            return
        filters = keyword_arg(iterable, "filters")
        by_name_filter = isinstance(filters, cst.Dict) and any(
            isinstance(e, cst.DictElement) and string_value(e.key) == "name"
            for e in filters.elements
        )
        removes = _contains_call(node, _REMOVERS)
        by_name = by_name_filter or _mentions_name_attribute(node)
        if removes and by_name:
            target = node if isinstance(node, cst.For) else iterable
            self._add(
                Site(
                    "PI111",
                    target,
                    record.scope,
                    f"cleanup that selects {holder or 'processes'} by name and removes them "
                    "hits other workers' resources",
                    manual="remove only what the test created, or select by labels and liveness",
                )
            )

    # -- rules: names and literals -----------------------------------------------------------

    def _name_reference(self, record: Record) -> None:
        node = record.node
        assert isinstance(node, cst.Name)
        if id(node) in self.handled or record.in_annotation:
            return
        scope = record.scope
        if not scope.is_function:
            return
        if not (self.container_names or self.network_names):
            return
        binder = self.resolver.binder(node.value, scope)
        if binder is not self.facts.scope:
            return
        lit = self.resolver.lit(node, scope)
        if lit is None or lit.kind != "literal" or not lit.strings():
            return
        values = set(lit.strings())
        if values <= self.container_names:
            self._sink_site(Sink(node, "container", "a reference"), scope)
        elif values <= self.network_names:
            self._sink_site(Sink(node, "network", "a reference"), scope)

    def _string(self, record: Record) -> None:
        node = record.node
        if id(node) in self.handled:
            return
        scope = record.scope
        if isinstance(node, cst.FormattedString):
            head = node.parts[0] if node.parts else None
            if (
                isinstance(head, cst.FormattedStringText)
                and head.value.startswith(_TMP_PREFIXES)
                and not _unique_path(node)
            ):
                self._add(
                    Site(
                        "PI113",
                        node,
                        scope,
                        f"fixed temp path {head.value!r}...; use tmp_path",
                        manual="choose tmp_path or tmp_path_factory",
                    )
                )
            return
        if not isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            return
        value = string_value(node)
        if value is None:
            return
        if value.startswith(_TMP_PREFIXES) and len(value) > len(value.split("/")[1]) + 2:
            self._add(
                Site(
                    "PI113",
                    node,
                    scope,
                    f"fixed temp path {value!r} shared by every worker; use tmp_path",
                    manual="choose tmp_path or tmp_path_factory",
                )
            )
            return
        key, sep, rest = value.partition("=")
        kind = env_kind(key) if sep else None
        if kind in ("host", "port", "client_id") and rest:
            self.env_string(node, scope, key, kind, rest)
            return
        if value in ("1883", "8883", "18833"):
            self._add(
                Site(
                    "PI102",
                    node,
                    scope,
                    f"hard-coded MQTT port {value!r}",
                    manual="take the port from mqtt_broker.port",
                )
            )
            return
        if scope.role == "module" or record.in_fstring:
            return
        if value in self.container_names and scope.is_function:
            self._sink_site(Sink(node, "container", "a reference"), scope)
        elif value in self.network_names and scope.is_function:
            self._sink_site(Sink(node, "network", "a reference"), scope)

    def env_string(self, node: cst.CSTNode, scope: Scope, key: str, kind: Kind, value: str) -> None:
        if kind == "host":
            if value in self.container_names:
                if "'" not in value and '"' not in value:
                    self._add(
                        Site(
                            "PI104",
                            node,
                            scope,
                            f"fixed container name in {key}={value}; build it from "
                            f"{self.fixture_for(scope, 'names')}.container_name(...)",
                            need="names",
                            build=env_container(key, value),
                        )
                    )
                return
            self._add(
                Site(
                    "PI101",
                    node,
                    scope,
                    f"hard-coded broker host in {key}={value}; use mqtt_broker.host",
                    need="broker",
                    build=env_string(key, "host"),
                )
            )
        elif kind == "port" and value.isdigit():
            self._add(
                Site(
                    "PI102",
                    node,
                    scope,
                    f"hard-coded broker port in {key}={value}; use mqtt_broker.port",
                    need="broker",
                    build=env_string(key, "port"),
                )
            )
        elif kind == "client_id":
            self._add(
                Site(
                    "PI110",
                    node,
                    scope,
                    f"fixed MQTT client id in {key}={value}",
                    manual="build it from parallel_test_context.client_id(...)",
                )
            )

    def _integer(self, record: Record) -> None:
        node = record.node
        assert isinstance(node, cst.Integer)
        if id(node) in self.handled:
            return
        value = int(node.evaluated_value)
        if value in KNOWN_PORTS:
            self._add(
                Site(
                    "PI102",
                    node,
                    record.scope,
                    f"hard-coded MQTT port {value}; take it from mqtt_broker.port",
                    manual="not in a place the codemod recognises as a broker port",
                )
            )


def _names_a_container(expr: cst.BaseExpression) -> bool:
    """``ctx.container_name(...)``: a broker reached by container name (internal port)."""
    return (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Attribute)
        and expr.func.attr.value == "container_name"
    )


def _flow_getter(summary: FunctionSummary, param: str) -> Callable[[], Flow | None]:
    return lambda: summary.flows.get(param)


def _contains_call(node: cst.CSTNode, methods: frozenset[str]) -> bool:
    if isinstance(node, cst.Call) and last_name(node.func) in methods:
        return True
    return any(_contains_call(child, methods) for child in iter_children(node))


def _mentions_name_attribute(node: cst.CSTNode) -> bool:
    if isinstance(node, cst.Attribute) and node.attr.value == "name":
        return True
    if isinstance(node, cst.Call) and last_name(node.func) == "name":
        return True
    return any(_mentions_name_attribute(child) for child in iter_children(node))


def _unique_path(node: cst.FormattedString) -> bool:
    text = cst.Module(body=[]).code_for_node(node)
    return bool(re.search(r"(?i)pid|uuid|worker|run_id|token|mkdtemp|tmp_path|random", text))
