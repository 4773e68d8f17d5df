"""The codemod commands: one LibCST command per transformation.

Each command analyses the module it is given (so commands compose in any
order and each can be tested alone), rewrites the fixable sites of its own
codes and warns about the rest.  :data:`COMMANDS` is the order the tool runs
them in; :class:`FixtureParametersCommand` comes last and adds the fixture
parameters the others' rewrites refer to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import libcst as cst
from libcst.codemod import CodemodCommand, CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from parallel_isolation.migrate._analysis import Analysis, External, Site
from parallel_isolation.migrate._edit import (
    Replacer,
    add_imports,
    append_arguments,
    append_parameters,
    keyword_argument,
    remove_statements,
)
from parallel_isolation.migrate._facts import (
    FIXTURE_PARAMETERS,
    Record,
    Scope,
    collect_facts,
    is_suppressed,
    suppressions,
)
from parallel_isolation.migrate._walk import start_positions

__all__ = [
    "COMMANDS",
    "EXTERNAL_KEY",
    "SUPPRESSIONS_KEY",
    "BrokerAddressCommand",
    "ClientIdCommand",
    "ContainerNameCommand",
    "FixtureParametersCommand",
    "IncomingTopicCommand",
    "NetworkNameCommand",
    "ServiceEnvPrefixCommand",
    "TopicNamespaceCommand",
]

#: ``context.scratch`` key of the class summaries of the conftest files in scope.
EXTERNAL_KEY = "parallel_isolation.migrate.external"
#: ``context.scratch`` key: False when the source has no ``# isolation:`` comment
#: (then no command needs positions to honour suppressions).
SUPPRESSIONS_KEY = "parallel_isolation.migrate.may_suppress"

_ANNOTATIONS = {
    "mqtt_broker": "TestMQTTBroker",
    "parallel_test_context": "ParallelTestContext",
    "isolation_worker": "WorkerContext",
    "topic_namespace": "TopicNamespace",
}


def _external(context: CodemodContext) -> External | None:
    value = context.scratch.get(EXTERNAL_KEY)
    return value if isinstance(value, External) else None


class _Command(CodemodCommand):
    """A command that needs no LibCST metadata, so the tree is not copied for it.

    ``Codemod.transform_module`` wraps the tree in a ``MetadataWrapper``,
    which deep-copies it; these commands compute what they need themselves
    (see ``_walk``), then run the import additions they scheduled, as
    ``CodemodCommand`` does.
    """

    def transform_module(self, tree: cst.Module) -> cst.Module:
        tree = self.transform_module_impl(tree)
        if self.context.scratch.get(AddImportsVisitor.CONTEXT_KEY):
            tree = AddImportsVisitor(self.context).transform_module(tree)
            self.context.scratch[AddImportsVisitor.CONTEXT_KEY] = []
        return tree


class _SiteCommand(_Command):
    """Rewrites the fixable sites of ``CODES``; warns about the others."""

    CODES: ClassVar[frozenset[str]] = frozenset()

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        analysis = Analysis(collect_facts(tree), _external(self.context))
        mine = [site for site in analysis.sites if site.code in self.CODES]
        if not mine:
            return tree
        lines: dict[int, tuple[int, int]] = {}
        suppressed: dict[int, frozenset[str]] = {}
        if self.context.scratch.get(SUPPRESSIONS_KEY, True):
            lines, code = start_positions(tree, [site.node for site in mine])
            suppressed = suppressions(code)
        edits: dict[int, Callable[[cst.CSTNode], cst.CSTNode]] = {}
        for site in mine:
            if lines and is_suppressed(suppressed, lines[id(site.node)][0], site.code):
                continue
            fixable, reason = analysis.fixable(site)
            if not fixable:
                if site.report:
                    self.warn(f"{site.code} left as is: {_snippet(tree, site.node)}: {reason}")
                continue
            if site.build is None:
                continue  # fixed elsewhere (a constant goes once its uses are rewritten)
            provider = analysis.provider(site.scope, site.need)[0] if site.need else ""
            assert provider is not None
            edits[id(site.node)] = _bound(site, provider)
        if not edits:
            return tree
        paths = analysis.facts.paths_to(set(edits))
        return self.after(analysis, tree.visit(Replacer(edits, paths)))

    def after(self, analysis: Analysis, tree: cst.Module) -> cst.Module:
        """A hook for clean-ups once the sites are rewritten."""
        return tree


def _snippet(tree: cst.Module, node: cst.CSTNode) -> str:
    text = " ".join(tree.code_for_node(node).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _bound(site: Site, provider: str) -> Callable[[cst.CSTNode], cst.CSTNode]:
    build = site.build
    assert build is not None
    return lambda node: build(provider, node)


class BrokerAddressCommand(_SiteCommand):
    DESCRIPTION = (
        "Replace hard-coded MQTT broker hosts and ports with mqtt_broker.host / mqtt_broker.port."
    )
    CODES = frozenset({"PI101", "PI102"})

    def after(self, analysis: Analysis, tree: cst.Module) -> cst.Module:
        """Drop the broker constants that no code uses any more."""
        candidates = set(analysis.broker_constants)
        if not candidates:
            return tree
        facts = collect_facts(tree)
        used = {
            record.node.value
            for record in facts.names
            if isinstance(record.node, cst.Name) and record.node.value in candidates
        }
        remove: set[int] = set()
        for statement in tree.body:
            if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
                continue
            small = statement.body[0]
            target: cst.BaseExpression | None = None
            if isinstance(small, cst.Assign) and len(small.targets) == 1:
                target = small.targets[0].target
            elif isinstance(small, cst.AnnAssign):
                target = small.target
            if isinstance(target, cst.Name) and target.value in candidates - used:
                remove.add(id(statement))
        return remove_statements(tree, remove) if remove else tree


class ContainerNameCommand(_SiteCommand):
    DESCRIPTION = "Replace fixed Docker container names with <context>.container_name(...)."
    CODES = frozenset({"PI104"})


class NetworkNameCommand(_SiteCommand):
    DESCRIPTION = "Replace fixed Docker network names with <context>.network_name(...)."
    CODES = frozenset({"PI105"})


class ClientIdCommand(_SiteCommand):
    DESCRIPTION = "Replace fixed MQTT client ids with <context>.client_id(...)."
    CODES = frozenset({"PI110"})


class ServiceEnvPrefixCommand(_SiteCommand):
    DESCRIPTION = (
        "Add TOPIC_PREFIX: topic_namespace.prefix to service environments that set a broker."
    )
    CODES = frozenset({"PI115"})


class TopicNamespaceCommand(_SiteCommand):
    DESCRIPTION = (
        "Wrap bare topics in topic_namespace.topic(...) and subscription filters in "
        "topic_namespace.filter(...)."
    )
    CODES = frozenset({"PI107", "PI108"})


class IncomingTopicCommand(_SiteCommand):
    DESCRIPTION = "Compare and parse incoming message topics through topic_namespace.strip(...)."
    CODES = frozenset({"PI109"})


class FixtureParametersCommand(_Command):
    DESCRIPTION = (
        "Add the fixtures rewritten code uses as parameters of tests and fixtures, and thread "
        "them into helpers called only from those."
    )

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        self._imports: set[str] = set()
        analysis = Analysis(collect_facts(tree), _external(self.context))
        facts = analysis.facts
        needs: dict[int, set[str]] = {}
        scopes: dict[int, Scope] = {}
        for record in facts.names:
            name = record.node
            assert isinstance(name, cst.Name)
            if name.value not in FIXTURE_PARAMETERS:
                continue
            if analysis.resolver.binder(name.value, record.scope) is not None:
                continue
            top = record.scope.outermost_function()
            if top is None:
                self.warn(f"{name.value} is used at module level, where no fixture exists")
                continue
            needs.setdefault(id(top), set()).add(name.value)
            scopes[id(top)] = top
        # Propagate to a fixpoint: a helper that needs a fixture makes its callers need it.
        threaded: dict[int, list[Record]] = {}
        pending = list(needs)
        while pending:
            key = pending.pop()
            scope = scopes[key]
            if scope.role in ("test", "fixture"):
                continue
            calls = analysis.call_sites(scope) if scope.role in ("helper", "method") else None
            if calls is None:
                if key not in threaded:
                    self.warn(
                        f"cannot pass {', '.join(sorted(needs[key]))} into {scope.qualname}: "
                        "not a test, fixture or helper called only from those"
                    )
                threaded[key] = []
                continue
            threaded[key] = calls
            for record in calls:
                caller = record.scope.outermost_function()
                if caller is None:
                    continue
                for fixture in needs[key]:
                    if analysis.resolver.binder(fixture, record.scope) is not None:
                        continue
                    wanted = needs.setdefault(id(caller), set())
                    if fixture not in wanted:
                        wanted.add(fixture)
                        scopes[id(caller)] = caller
                        pending.append(id(caller))
        edits: dict[int, Callable[[cst.CSTNode], cst.CSTNode]] = {}
        for key, wanted in needs.items():
            scope = scopes[key]
            ordered = [n for n in FIXTURE_PARAMETERS if n in wanted]
            if not isinstance(scope.node, cst.FunctionDef):
                continue
            if scope.role in ("test", "fixture"):
                if scope.has_positional_defaults:
                    edits[id(scope.node)] = self._parameters_edit([], ordered, scope)
                else:
                    edits[id(scope.node)] = self._parameters_edit(ordered, [], scope)
                continue
            calls = threaded.get(key) or []
            if not calls:
                continue
            edits[id(scope.node)] = self._parameters_edit([], ordered, scope)
            for record in calls:
                call = record.node
                assert isinstance(call, cst.Call)
                present = {a.keyword.value for a in call.args if a.keyword is not None}
                names = [n for n in ordered if n not in present]
                if names:
                    edits[id(call)] = _arguments_edit(names)
        if not edits:
            return tree
        tree = tree.visit(Replacer(edits, facts.paths_to(set(edits))))
        return add_imports(tree, "parallel_isolation", sorted(self._imports))

    def _parameters_edit(
        self, positional: list[str], keyword_only: list[str], scope: Scope
    ) -> Callable[[cst.CSTNode], cst.CSTNode]:
        def param(name: str) -> cst.Param:
            if not scope.annotated:
                return cst.Param(cst.Name(name))
            annotation = _ANNOTATIONS[name]
            self._imports.add(annotation)
            return cst.Param(cst.Name(name), annotation=cst.Annotation(cst.Name(annotation)))

        new_positional = [param(n) for n in positional]
        new_keyword_only = [param(n) for n in keyword_only]

        def edit(node: cst.CSTNode) -> cst.CSTNode:
            assert isinstance(node, cst.FunctionDef)
            return append_parameters(node, new_positional, new_keyword_only)

        return edit


def _arguments_edit(names: list[str]) -> Callable[[cst.CSTNode], cst.CSTNode]:
    def edit(node: cst.CSTNode) -> cst.CSTNode:
        assert isinstance(node, cst.Call)
        return append_arguments(node, [keyword_argument(n) for n in names])

    return edit


#: The order the tool composes the commands in.
COMMANDS: tuple[type[CodemodCommand], ...] = (
    BrokerAddressCommand,
    ContainerNameCommand,
    NetworkNameCommand,
    ClientIdCommand,
    ServiceEnvPrefixCommand,
    TopicNamespaceCommand,
    IncomingTopicCommand,
    FixtureParametersCommand,
)
