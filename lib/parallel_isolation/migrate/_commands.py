"""The codemod commands: one LibCST command per transformation.

Each command rewrites the fixable sites of its own codes.  The tool does not
run them one after the other on a re-parsed tree: it analyses the project
once, lets every command contribute its edits from that one analysis
(:meth:`_SiteCommand.contribute`), and applies them together
(``_rewrite``).  Run on its own (``CodemodTest``, or LibCST's runner), a
command analyses the module it is given and applies only its own edits,
warning about the sites of its codes it leaves alone; its output may then
use a fixture no parameter provides yet (adding those is
:class:`FixtureParametersCommand`'s job).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import libcst as cst
from libcst.codemod import CodemodCommand, CodemodContext

from parallel_isolation.migrate._analysis import FileAnalysis, Workspace
from parallel_isolation.migrate._decide import decide
from parallel_isolation.migrate._edit import append_arguments, keyword_argument
from parallel_isolation.migrate._facts import FIXTURE_PARAMETERS, Record, Scope
from parallel_isolation.migrate._project import DEFAULT_PREFIX_ENV, Project, Settings
from parallel_isolation.migrate._rewrite import (
    Edit,
    Plan,
    _autouse_edit,
    _drop_constants,
    _fixtures,
    _inject_edit,
    _parameters_edit,
    apply,
    site_edits,
)
from parallel_isolation.migrate._site import Site
from parallel_isolation.migrate._view import AnalysisView

__all__ = [
    "COMMANDS",
    "PREFIX_ENV_KEY",
    "BrokerAddressCommand",
    "ClientIdCommand",
    "ContainerNameCommand",
    "FixtureParametersCommand",
    "IncomingTopicCommand",
    "NetworkNameCommand",
    "ServiceEnvPrefixCommand",
    "SubscriptionWaitCommand",
    "TopicNamespaceCommand",
    "commands_for",
]

#: ``context.scratch`` key: the variable the services read for their topic prefix.
PREFIX_ENV_KEY = "parallel_isolation.migrate.prefix_env"


def _analysis(tree: cst.Module, context: CodemodContext) -> FileAnalysis:
    """The analysis of a module given on its own (no project around it)."""
    prefix_env = context.scratch.get(PREFIX_ENV_KEY, DEFAULT_PREFIX_ENV)
    settings = Settings(None, str(prefix_env), "given")
    name = context.filename or "<string>"
    project = Project.single(tree, Path(name), name, settings)
    analysis = Workspace(project).analysis(project.targets[0])
    assert analysis is not None
    decide([analysis])
    return analysis


class _Command(CodemodCommand):
    """A command that needs no LibCST metadata, so the tree is not copied for it."""

    def transform_module(self, tree: cst.Module) -> cst.Module:
        return self.transform_module_impl(tree)


class _SiteCommand(_Command):
    """Rewrites the fixable sites of ``CODES``; warns about the others."""

    CODES: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def owns(cls, site: Site) -> bool:
        return site.code in cls.CODES

    def contribute(self, analysis: AnalysisView, sites: list[Site], plan: Plan) -> None:
        """Add the edits of the fixable ``sites`` of this command's codes to ``plan``."""
        defined = {s.hazard for s in analysis.sites if s.origin is not None and s.node is s.origin}
        for site in sites:
            if not self.owns(site):
                continue
            fixable, reason = analysis.fixable(site)
            if not fixable:
                if site.report and (site.hazard not in defined or site.node is site.origin):
                    self.warn(
                        f"{site.code} left as is: {analysis.snippet(site.node, 60)}: {reason}"
                    )
                continue
            if site.build is None and not any(isinstance(k, int) for k in site.extra):
                continue  # fixed elsewhere (a constant goes once its uses are rewritten)
            site_edits(analysis, site, plan)

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        analysis = _analysis(tree, self.context)
        plan = Plan()
        self.contribute(analysis, analysis.sites, plan)
        if not plan.edits:
            return tree
        return self.after(analysis, _apply(analysis, plan))

    def after(self, analysis: FileAnalysis, tree: cst.Module) -> cst.Module:
        """A hook for clean-ups once the sites are rewritten."""
        return tree


def _apply(analysis: FileAnalysis, plan: Plan) -> cst.Module:
    return apply(analysis, plan, set())


class BrokerAddressCommand(_SiteCommand):
    DESCRIPTION = (
        "Replace hard-coded MQTT broker hosts and ports with mqtt_broker.host / mqtt_broker.port."
    )
    CODES = frozenset({"PI101", "PI102"})

    @classmethod
    def owns(cls, site: Site) -> bool:
        return site.code in cls.CODES and "needs" not in site.extra

    def after(self, analysis: FileAnalysis, tree: cst.Module) -> cst.Module:
        """Drop the broker constants that no code uses any more."""
        candidates = set(analysis.broker_constants)
        return _drop_constants(tree, candidates) if candidates else tree


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
        "Give service environments that set a broker the services' topic prefix variable "
        "(mappings, setenv/os.environ sequences, mappings copied into os.environ)."
    )
    CODES = frozenset({"PI115"})

    @classmethod
    def owns(cls, site: Site) -> bool:
        return site.code in cls.CODES or "needs" in site.extra


class TopicNamespaceCommand(_SiteCommand):
    DESCRIPTION = (
        "Wrap bare topics in topic_namespace.topic(...) and subscription filters in "
        "topic_namespace.filter(...)."
    )
    CODES = frozenset({"PI107", "PI108"})


class IncomingTopicCommand(_SiteCommand):
    DESCRIPTION = "Compare and parse incoming message topics through topic_namespace.strip(...)."
    CODES = frozenset({"PI109"})


class SubscriptionWaitCommand(_SiteCommand):
    DESCRIPTION = (
        "Replace a sleep after a raw client's subscribe()/connect() with a wait for the "
        "SUBACK/CONNACK (an event set by on_subscribe/on_connect, asserted with a deadline)."
    )
    CODES = frozenset({"PI112"})


class FixtureParametersCommand(_Command):
    DESCRIPTION = (
        "Add the fixtures rewritten code uses as parameters of tests and fixtures, and thread "
        "them into helpers called only from those."
    )

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        analysis = _analysis(tree, self.context)
        plan = Plan()
        self.contribute_unbound(analysis, plan)
        if not plan.edits:
            return tree
        return _apply(analysis, plan)

    def contribute_unbound(self, analysis: FileAnalysis, plan: Plan) -> None:
        """Parameters for the fixture names the module uses without binding them."""
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
        threaded: dict[int, list[Record]] = {}
        pending = list(needs)
        while pending:
            key = pending.pop()
            scope = scopes[key]
            if scope.role in ("test", "fixture"):
                continue
            uses = analysis.providers.uses(scope) if scope.role in ("helper", "method") else None
            if uses is None or uses.other is not None or not uses.calls:
                if key not in threaded:
                    self.warn(
                        f"cannot pass {', '.join(sorted(needs[key]))} into {scope.qualname}: "
                        "not a test, fixture or helper called only from those"
                    )
                threaded[key] = []
                continue
            threaded[key] = [site.record for site in uses.calls if site.analysis is analysis]
            for record in threaded[key]:
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
        self._self_attributes(analysis, plan)
        for key, wanted in needs.items():
            scope = scopes[key]
            ordered = [n for n in FIXTURE_PARAMETERS if n in wanted]
            if not isinstance(scope.node, cst.FunctionDef):
                continue
            if scope.role in ("test", "fixture"):
                if scope.has_positional_defaults:
                    plan.add(id(scope.node), _parameters_edit([], ordered, scope, plan))
                else:
                    plan.add(id(scope.node), _parameters_edit(ordered, [], scope, plan))
                continue
            calls = threaded.get(key) or []
            if not calls:
                continue
            plan.add(id(scope.node), _parameters_edit([], ordered, scope, plan))
            for record in calls:
                call = record.node
                assert isinstance(call, cst.Call)
                present = {a.keyword.value for a in call.args if a.keyword is not None}
                names = [n for n in ordered if n not in present]
                if names:
                    plan.add(id(call), _arguments(names))

    def _self_attributes(self, analysis: FileAnalysis, plan: Plan) -> None:
        """``self.<fixture>`` in a class that never sets it: an autouse fixture method
        (unittest classes) or a constructor parameter (other classes)."""
        facts = analysis.facts
        used: dict[str, set[str]] = {}
        assigned: dict[str, set[str]] = {}
        for target, _value, scope in facts.assigns:
            top = scope.outermost_function()
            if (
                top is not None
                and top.cls is not None
                and isinstance(target, cst.Attribute)
                and isinstance(target.value, cst.Name)
                and target.value.value == "self"
            ):
                assigned.setdefault(top.cls.name, set()).add(target.attr.value)
        for record in facts.attributes:
            node = record.node
            assert isinstance(node, cst.Attribute)
            top = record.scope.outermost_function()
            if (
                top is None
                or top.cls is None
                or not top.cls.top_level
                or not isinstance(node.value, cst.Name)
                or node.value.value != "self"
                or node.attr.value not in FIXTURE_PARAMETERS
            ):
                continue
            used.setdefault(top.cls.name, set()).add(node.attr.value)
        for name, fixtures in used.items():
            missing = fixtures - assigned.get(name, set())
            cls = facts.classes.get(name)
            if not missing or cls is None:
                continue
            if "_isolation_fixtures" in cls.methods:
                continue
            if cls.is_unittest:
                plan.modules.add("pytest")
                plan.add(id(cls.node), _autouse_edit(sorted(missing)))
                continue
            plan.add(id(cls.node), _inject_edit(sorted(missing), analysis, name, plan))
            for site in analysis.providers.class_uses(name).calls:
                if site.analysis is analysis:
                    present = {a.keyword.value for a in site.call.args if a.keyword is not None}
                    names = [n for n in sorted(missing) if n not in present]
                    if names:
                        plan.add(id(site.call), _arguments(names))


def _arguments(names: list[str]) -> Edit:
    def edit(node: cst.CSTNode) -> cst.CSTNode:
        assert isinstance(node, cst.Call)
        return append_arguments(node, [keyword_argument(n) for n in names])

    return edit


#: The order the tool composes the commands' edits in.
COMMANDS: tuple[type[CodemodCommand], ...] = (
    BrokerAddressCommand,
    ContainerNameCommand,
    NetworkNameCommand,
    ClientIdCommand,
    ServiceEnvPrefixCommand,
    TopicNamespaceCommand,
    IncomingTopicCommand,
    SubscriptionWaitCommand,
    FixtureParametersCommand,
)


def commands_for(context: CodemodContext) -> list[_SiteCommand]:
    """Instances of the site commands, sharing one context."""
    return [c(context) for c in COMMANDS if issubclass(c, _SiteCommand)]


def plan(analyses: list[FileAnalysis], fixed: list[tuple[FileAnalysis, Site]]) -> dict[str, Plan]:
    """The project's edits per module key: every site command contributes its
    edits for the fixed sites from the one analysis of each module, then the
    fixture parameters those edits use are added."""
    plans: dict[str, Plan] = {}

    def plan_of(a: AnalysisView) -> Plan:
        return plans.setdefault(a.path, Plan())

    by_module: dict[int, list[Site]] = {}
    owners: dict[int, FileAnalysis] = {}
    for a, site in fixed:
        by_module.setdefault(id(a), []).append(site)
        owners[id(a)] = a
    for key, sites in by_module.items():
        a = owners[key]
        context = CodemodContext(filename=a.path)
        for command in commands_for(context):
            command.contribute(a, sites, plan_of(a))
        plan_of(a).notes.extend(context.warnings)
    _fixtures(fixed, plan_of)
    return plans
