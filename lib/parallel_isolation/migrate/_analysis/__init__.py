"""The analysis of one module, built once and shared by the linter and every
codemod command.

:class:`FileAnalysis` runs in three phases, each on first use:

1. *summaries*: the sinks of known APIs in the module and, for each of its
   functions, which parameters flow into which kind of sink
   (:mod:`.summaries`);
2. *providers*: who can give a site the fixture its rewrite needs
   (:mod:`.providers`): tests and fixtures take it as a parameter, helpers
   when every call of them (in any module of the project) can pass it on,
   classes through their constructor;
3. *sites*: every hazard of the module, found by the rule families in
   :mod:`parallel_isolation.migrate._rules`.

Other modules of the project are reached through the :class:`Project`:
names imported from them resolve to their literals, calls to their
functions use their summaries, and their call sites decide whether a helper
here can be given a fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import libcst as cst

from parallel_isolation.migrate._analysis.providers import Providers
from parallel_isolation.migrate._analysis.summaries import (
    External,
    Flow,
    FunctionSummary,
    summarize,
)
from parallel_isolation.migrate._facts import ModuleFacts, Record, Scope, last_name
from parallel_isolation.migrate._project import Module, Project, is_test_file
from parallel_isolation.migrate._rules import brokers, clients, commands, names, run_rules, topics
from parallel_isolation.migrate._sinks import (
    TOPIC_KINDS,
    Kind,
    Sink,
    call_sinks,
    cli_sinks,
    env_dict,
    unwrap_conversion,
)
from parallel_isolation.migrate._site import Need, Site
from parallel_isolation.migrate._values import Resolver
from parallel_isolation.migrate._view import AnalysisView, Uses
from parallel_isolation.migrate._walk import start_positions

__all__ = [
    "External",
    "FileAnalysis",
    "Flow",
    "FunctionSummary",
    "Workspace",
]


class Workspace:
    """The analyses of a project's modules, each built once, on first use."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._analyses: dict[int, FileAnalysis | None] = {}

    def analysis(self, module: Module) -> FileAnalysis | None:
        """The module's analysis (None when it does not parse)."""
        key = id(module)
        if key not in self._analyses:
            self._analyses[key] = None
            if module.facts is not None:
                self._analyses[key] = FileAnalysis(module, self)
        return self._analyses[key]

    def loaded(self) -> list[FileAnalysis]:
        """The analyses of every module loaded so far."""
        found = []
        for module in self.project.loaded():
            analysis = self.analysis(module)
            if analysis is not None:
                found.append(analysis)
        return found


class FileAnalysis:
    """Everything the linter and the codemod know about one module."""

    def __init__(self, module: Module, workspace: Workspace) -> None:
        facts = module.facts
        assert facts is not None
        self.module = module
        self.workspace = workspace
        self.project = workspace.project
        self.cache: dict[str, object] = {}
        self.path = module.key
        self.facts: ModuleFacts = facts
        self.prefix_env = workspace.project.settings.prefix_env
        self.resolver = Resolver(facts, module.key, self._imported_value)
        self.external = self._conftest_view()
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
        self.sink_nodes: dict[int, Kind] = {}
        self.builtin: dict[int, list[Sink]] = {}
        self.summaries: dict[int, FunctionSummary] = {}
        self.providers = Providers(self)
        self._sites: list[Site] | None = None
        self.handled: set[int] = set()
        self.broker_constants: dict[str, str] = {}
        self._positions: dict[int, tuple[int, int]] | None = None
        self._imported: dict[str, tuple[AnalysisView, str | None] | None] = {}
        self._imported_all: list[AnalysisView] | None = None
        self._code: str | None = None
        self._summarize()

    # -- the project -----------------------------------------------------------

    def _conftest_view(self) -> External:
        merged = External()
        for analysis in self.conftest_analyses():
            if isinstance(analysis, FileAnalysis):
                merged = merged.merged(analysis.exported())
        return merged

    def conftest_analyses(self) -> list[AnalysisView]:
        """The analyses of the conftest files that apply to this module."""
        cached = self.cache.get("conftests")
        if isinstance(cached, list):
            return cached
        found: list[AnalysisView] = []
        for conftest in self.project.conftests(self.module):
            analysis = self.workspace.analysis(conftest)
            if analysis is not None:
                found.append(analysis)
        self.cache["conftests"] = found
        return found

    def loaded_analyses(self) -> list[AnalysisView]:
        return list(self.workspace.loaded())

    def _imported_value(self, name: str) -> tuple[Resolver, cst.BaseExpression] | None:
        """The resolver and assigned value of a name imported from another project module."""
        found = self.imported(name)
        if found is None:
            return None
        other, symbol = found
        if symbol is None:
            return None
        bindings = other.facts.scope.bindings.get(symbol, [])
        if len(bindings) != 1 or bindings[0].value is None:
            return None
        return other.resolver, bindings[0].value

    def imported(self, name: str) -> tuple[AnalysisView, str | None] | None:
        """The analysis of the project module a local name is imported from."""
        if name in self._imported:
            return self._imported[name]
        found = self._import(name)
        self._imported[name] = found
        return found

    def _import(self, name: str) -> tuple[AnalysisView, str | None] | None:
        ref = self.facts.imports.get(name)
        if ref is None:
            return None
        found = self.project.resolve(self.module, ref)
        if found is None:
            return None
        module, symbol = found
        if module is self.module:
            return None
        analysis = self.workspace.analysis(module)
        if analysis is None:
            return None
        module.dependents.add(self.path)
        return analysis, symbol

    def exported(self) -> External:
        """What modules that see this one as a conftest learn from it."""
        classes: dict[str, list[FunctionSummary]] = {}
        for cls in self.facts.classes.values():
            for name, method in cls.methods.items():
                summary = self.summaries.get(id(method))
                if summary is not None and not name.startswith("__"):
                    classes.setdefault(name, []).append(summary)
        return External(classes, self.local_fixtures, self.facts.uses_raw_mqtt)

    # -- phase 1: sinks and summaries -------------------------------------------

    def _summarize(self) -> None:
        facts = self.facts
        for record in facts.calls:
            call = record.node
            assert isinstance(call, cst.Call)
            sinks = call_sinks(call, facts) + cli_sinks(call, facts)
            func = call.func
            if isinstance(func, cst.Attribute) and (
                self.receiver_kind(func.value, record.scope) == "namespaced"
            ):
                sinks = [sink for sink in sinks if sink.kind not in TOPIC_KINDS]
            self.builtin[id(call)] = sinks
            for sink in sinks:
                self.sink_nodes.setdefault(id(sink.node), sink.kind)
        for record in facts.dicts:
            assert isinstance(record.node, cst.Dict)
            info = env_dict(record.node, self.prefix_env)
            if info is None:
                continue
            if info.host is not None:
                self.sink_nodes.setdefault(id(info.host.value), "host")
            for element in info.ports:
                self.sink_nodes.setdefault(id(unwrap_conversion(element.value)), "port")
            for element in info.clients:
                self.sink_nodes.setdefault(id(element.value), "client_id")
        for node, kind in commands.expression_sinks(self):
            self.sink_nodes.setdefault(id(node), kind)
        for node in topics.topic_param_sinks(self):
            self.sink_nodes.setdefault(id(node), "topic")
        summarize(facts, self.resolver, self.sink_nodes, self.summaries, self.resolve_call)

    def resolve_call(self, call: cst.Call, scope: Scope) -> FunctionSummary | None:
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
            found = self.imported(func.value)
            if found is not None:
                other, symbol = found
                if symbol is not None and isinstance(other, FileAnalysis):
                    return other.summary_of(symbol)
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
        for other in self.imported_analyses():
            if not isinstance(other, FileAnalysis):
                continue
            for cls in other.facts.classes.values():
                target = cls.methods.get(method)
                if target is not None and id(target) in other.summaries:
                    candidates.append(other.summaries[id(target)])
        fitting = [c for c in candidates if c.accepts(call)]
        return fitting[0] if len(fitting) == 1 else None

    def summary_of(self, symbol: str) -> FunctionSummary | None:
        """The summary of a module-level function (or a class's ``__init__``) of this module."""
        function = self.facts.module_functions().get(symbol)
        if function is not None:
            return self.summaries.get(id(function))
        cls = self.facts.classes.get(symbol)
        if cls is not None and "__init__" in cls.methods:
            return self.summaries.get(id(cls.methods["__init__"]))
        return None

    def imported_analyses(self) -> Iterator[AnalysisView]:
        """The analyses of the project modules this one imports from."""
        if self._imported_all is None:
            seen: set[int] = set()
            found_all: list[AnalysisView] = []
            for name in self.facts.imports:
                found = self.imported(name)
                if found is not None and id(found[0]) not in seen:
                    seen.add(id(found[0]))
                    found_all.append(found[0])
            self._imported_all = found_all
        yield from self._imported_all

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

    # -- phase 2: providers (see providers.py) ----------------------------------

    def fixture_for(self, scope: Scope, need: Need) -> str:
        return self.providers.fixture_for(scope, need)

    def provider(self, scope: Scope, need: Need) -> tuple[str | None, str]:
        """The expression that provides ``need`` inside ``scope``, or None and why not."""
        return self.providers.provider(scope, need)

    def provide(self, scope: Scope, fixture: str) -> tuple[str | None, str]:
        return self.providers.provide(scope, fixture)

    def uses(self, function: Scope) -> Uses:
        return self.providers.uses(function)

    def class_uses(self, name: str) -> Uses:
        return self.providers.class_uses(name)

    def fixable(self, site: Site) -> tuple[bool, str]:
        """Whether the site can be rewritten, and why not (``decided`` by the project wins)."""
        if site.decided is not None:
            return site.decided
        return self.locally_fixable(site)

    def locally_fixable(self, site: Site) -> tuple[bool, str]:
        if site.autofix is not None:
            return site.autofix, site.manual or ""
        if not self.module.target:
            return False, "this module is only read: it is not among the paths being migrated"
        if site.build is None:
            return False, site.manual or "needs a decision only a person can make"
        if site.need is None:
            return True, ""
        provider, reason = self.provider(site.scope, site.need)
        return provider is not None, reason

    # -- phase 3: sites --------------------------------------------------------

    @property
    def is_test_code(self) -> bool:
        """A test module, a conftest, or a helper under a tests directory (not the
        services' own source, whose defaults are nobody's hazard)."""
        root = self.project.settings.root
        path = self.module.path
        if root is not None and path.is_relative_to(root):
            path = path.relative_to(root)
        return is_test_file(path)

    @property
    def sites(self) -> list[Site]:
        if self._sites is None:
            self._sites = []
            if self.module.target or self.is_test_code:
                run_rules(self)
        return self._sites

    def add_shared(self, site: Site) -> None:
        """Record a site on a node that may carry others (several words of one string)."""
        assert self._sites is not None
        self._sites.append(site)

    def add(self, site: Site) -> Site | None:
        """Record a site, unless its node already is one."""
        if id(site.node) in self.handled:
            return None
        self.handled.add(id(site.node))
        assert self._sites is not None
        self._sites.append(site)
        return site

    def sink_site(
        self, sink: Sink, scope: Scope, via: str | None = None, pure: bool = True
    ) -> None:
        """A literal reaching a sink of a known kind is a hazard of that kind's family."""
        node = sink.node
        if id(node) in self.handled:
            return
        lit = self.resolver.lit(node, scope)
        if lit is None:
            return
        kind = sink.kind
        if kind in TOPIC_KINDS:
            topics.sink_site(self, sink, lit, scope, via, pure)
        elif kind == "client_id":
            clients.sink_site(self, sink, lit, scope, via, pure)
        elif kind in ("host", "port"):
            brokers.sink_site(self, sink, lit, scope, via, pure)
        elif kind in ("container", "network"):
            names.sink_site(self, sink, lit, scope, via, pure)

    def summary_flows(self, record: Record, summary: FunctionSummary) -> None:
        """Literals passed to a summarised function's parameters that reach sinks."""
        call = record.node
        assert isinstance(call, cst.Call)
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
                            self.sink_site(
                                Sink(element.value, kind, "a call"), record.scope, via, flow.pure
                            )
                continue
            self.sink_site(Sink(value, kind, "a call"), record.scope, via, flow.pure)

    # -- positions ----------------------------------------------------------------

    def position(self, node: cst.CSTNode) -> tuple[int, int]:
        """Where ``node`` starts: (line, column), both 1-based."""
        if self._positions is None:
            found, code = start_positions(self.facts.module, None)
            self._positions, self._code = found, code
        line, column = self._positions.get(id(node), (1, 0))
        return line, column + 1

    def where(self, node: cst.CSTNode) -> str:
        line, column = self.position(node)
        return f"{self.path}:{line}:{column}"

    def line_of(self, node: cst.CSTNode) -> str:
        return f"{self.path}:{self.position(node)[0]}"

    @property
    def code(self) -> str:
        if self._code is None:
            self.position(self.facts.module)
        assert self._code is not None
        return self._code

    def snippet(self, node: cst.CSTNode, width: int = 40) -> str:
        text = " ".join(self.facts.module.code_for_node(node).split())
        return text if len(text) <= width else text[: width - 3] + "..."
