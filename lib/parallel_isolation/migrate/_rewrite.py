"""The rewrite of the whole project from one set of decisions.

Every site decided fixable contributes its edit; the fixtures the edits use
become parameters of the tests and fixtures, keyword-only parameters of the
helpers they call (with ``name=name`` at every call, in whatever module it
is), constructor parameters of the classes whose methods use them
(``self.<fixture>``), or an autouse fixture method of a ``unittest``
class.  All edits of a module are applied in one pass over it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._builders import Builder, Result
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
    ModuleFacts,
    Scope,
    collect_facts,
)
from parallel_isolation.migrate._site import Site

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["ANNOTATIONS", "Plan", "apply", "site_edits"]

ANNOTATIONS = {
    "mqtt_broker": "TestMQTTBroker",
    "parallel_test_context": "ParallelTestContext",
    "isolation_worker": "WorkerContext",
    "topic_namespace": "TopicNamespace",
}

Edit = Callable[[cst.CSTNode], Result]


@dataclass
class Plan:
    """The edits of one module (by node id, applied in order) and what it needs added."""

    edits: dict[int, list[Edit]] = field(default_factory=dict)
    imports: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def add(self, node_id: int, edit: Edit) -> None:
        self.edits.setdefault(node_id, []).append(edit)


def _bind(build: Builder, provider: str) -> Edit:
    return lambda node: build(provider, node)


def site_edits(a: AnalysisView, site: Site, plan: Plan) -> None:
    """The edits of one fixable site (its node, and any others it changes)."""
    provider = ""
    if site.need is not None:
        got, _ = a.provider(site.scope, site.need)
        assert got is not None, (site.code, site.message)
        provider = got
    if site.build is not None:
        plan.add(id(site.node), _bind(site.build, provider))
    for key, extra in site.extra.items():
        if isinstance(key, int) and callable(extra):
            plan.add(key, _bind(extra, provider))


def _needs(site: Site) -> tuple[str, ...]:
    needs = site.extra.get("needs")
    if isinstance(needs, tuple):
        return needs
    return (site.need,) if site.need is not None else ()


def _fixtures(
    fixed: Sequence[tuple[AnalysisView, Site]], plan_of: Callable[[AnalysisView], Plan]
) -> None:
    needs: dict[tuple[int, int], set[str]] = {}
    owners: dict[tuple[int, int], tuple[AnalysisView, Scope]] = {}
    injected: dict[tuple[int, str], set[str]] = {}
    autouse: dict[tuple[int, str], set[str]] = {}
    classes: dict[tuple[int, str], AnalysisView] = {}
    class_key: tuple[int, str]
    pending: list[tuple[int, int]] = []

    def need(a: AnalysisView, scope: Scope, fixture: str) -> None:
        top = scope.outermost_function()
        if top is None:
            return
        for candidate in scope.function_chain():
            if fixture in candidate.all_params():
                return
            if candidate is top:
                break
        key = (id(a), id(top))
        wanted = needs.setdefault(key, set())
        owners[key] = (a, top)
        if fixture not in wanted:
            wanted.add(fixture)
            pending.append(key)

    for a, site in fixed:
        for need_name in _needs(site):
            got, _ = a.provider(site.scope, need_name)  # type: ignore[arg-type]
            if got is None:
                continue
            if got.startswith("self."):
                fixture = got[len("self.") :]
                top = site.scope.outermost_function()
                assert top is not None
                assert top.cls is not None
                class_key = (id(a), top.cls.name)
                classes[class_key] = a
                if top.role == "unittest":
                    autouse.setdefault(class_key, set()).add(fixture)
                elif fixture not in injected.setdefault(class_key, set()):
                    injected[class_key].add(fixture)
                    for call_site in a.class_uses(top.cls.name).calls:
                        _pass(
                            call_site.analysis,
                            call_site.record.scope,
                            call_site.call,
                            fixture,
                            plan_of,
                            need,
                        )
            else:
                need(a, site.scope, got)
    threaded: set[tuple[tuple[int, int], str]] = set()
    while pending:
        key = pending.pop()
        a, scope = owners[key]
        if scope.role not in ("helper", "method"):
            continue
        uses = a.uses(scope)
        for fixture in sorted(needs[key]):
            if (key, fixture) in threaded:
                continue
            threaded.add((key, fixture))
            for call_site in uses.calls:
                _pass(
                    call_site.analysis,
                    call_site.record.scope,
                    call_site.call,
                    fixture,
                    plan_of,
                    need,
                )
    for key, wanted in needs.items():
        a, scope = owners[key]
        if not isinstance(scope.node, cst.FunctionDef):
            continue
        ordered = [n for n in FIXTURE_PARAMETERS if n in wanted]
        if scope.role in ("test", "fixture") and not scope.has_positional_defaults:
            positional, keyword_only = ordered, []
        else:
            positional, keyword_only = [], ordered
        plan_of(a).add(
            id(scope.node), _parameters_edit(positional, keyword_only, scope, plan_of(a))
        )
    for (a_id, name), fixtures in injected.items():
        a = classes[(a_id, name)]
        plan_of(a).add(
            id(a.facts.classes[name].node), _inject_edit(sorted(fixtures), a, name, plan_of(a))
        )
    for (a_id, name), fixtures in autouse.items():
        a = classes[(a_id, name)]
        plan_of(a).modules.add("pytest")
        plan_of(a).add(id(a.facts.classes[name].node), _autouse_edit(sorted(fixtures)))


def _pass(
    a: AnalysisView,
    scope: Scope,
    call: cst.Call,
    fixture: str,
    plan_of: Callable[[AnalysisView], Plan],
    need: Callable[[AnalysisView, Scope, str], None],
) -> None:
    """``fixture=<what the caller has>`` at a call, and the caller's own need of it."""
    if any(arg.keyword is not None and arg.keyword.value == fixture for arg in call.args):
        return
    got, _ = a.provide(scope, fixture)
    if got is None:
        return
    if not got.startswith("self."):
        need(a, scope, got)
    plan_of(a).add(id(call), _argument_edit(fixture, got))


def _argument_edit(name: str, value: str) -> Edit:
    def edit(node: cst.CSTNode) -> cst.CSTNode:
        assert isinstance(node, cst.Call)
        if any(arg.keyword is not None and arg.keyword.value == name for arg in node.args):
            return node
        argument = keyword_argument(name)
        if value != name:
            argument = argument.with_changes(value=cst.parse_expression(value))
        return append_arguments(node, [argument])

    return edit


def _param(name: str, scope: Scope, plan: Plan) -> cst.Param:
    if not scope.annotated:
        return cst.Param(cst.Name(name))
    annotation = ANNOTATIONS[name]
    plan.imports.add(annotation)
    return cst.Param(cst.Name(name), annotation=cst.Annotation(cst.Name(annotation)))


def _parameters_edit(
    positional: list[str], keyword_only: list[str], scope: Scope, plan: Plan
) -> Edit:
    new_positional = [_param(n, scope, plan) for n in positional]
    new_keyword_only = [_param(n, scope, plan) for n in keyword_only]

    def edit(node: cst.CSTNode) -> cst.CSTNode:
        assert isinstance(node, cst.FunctionDef)
        present = {p.name.value for p in (*node.params.params, *node.params.kwonly_params)}
        return append_parameters(
            node,
            [p for p in new_positional if p.name.value not in present],
            [p for p in new_keyword_only if p.name.value not in present],
        )

    return edit


def _inject_edit(fixtures: list[str], a: AnalysisView, name: str, plan: Plan) -> Edit:
    """``__init__(self, ..., *, <fixture>)`` storing each on ``self``."""
    cls = a.facts.classes[name]
    init = cls.methods.get("__init__")
    annotated = init.annotated if init is not None else False
    ordered = [f for f in FIXTURE_PARAMETERS if f in fixtures]

    def edit(node: cst.CSTNode) -> cst.CSTNode:
        assert isinstance(node, cst.ClassDef)
        assert isinstance(node.body, cst.IndentedBlock)
        stores = [cst.parse_statement(f"self.{f} = {f}\n") for f in ordered]
        body = list(node.body.body)
        for index, statement in enumerate(body):
            if isinstance(statement, cst.FunctionDef) and statement.name.value == "__init__":
                params = []
                for fixture in ordered:
                    if annotated:
                        plan.imports.add(ANNOTATIONS[fixture])
                        params.append(
                            cst.Param(
                                cst.Name(fixture),
                                annotation=cst.Annotation(cst.Name(ANNOTATIONS[fixture])),
                            )
                        )
                    else:
                        params.append(cst.Param(cst.Name(fixture)))
                function = append_parameters(statement, [], params)
                assert isinstance(function.body, cst.IndentedBlock)
                inner = list(function.body.body)
                at = 1 if inner and _is_docstring(inner[0]) else 0
                inner[at:at] = stores
                body[index] = function.with_changes(body=function.body.with_changes(body=inner))
                return node.with_changes(body=node.body.with_changes(body=body))
        text = (
            "def __init__(self, *, "
            + ", ".join(ordered)
            + "):\n"
            + "".join(f"    self.{f} = {f}\n" for f in ordered)
        )
        created = cst.parse_statement(text)
        at = 1 if body and _is_docstring(body[0]) else 0
        body.insert(at, created)
        return node.with_changes(body=node.body.with_changes(body=body))

    return edit


def _autouse_edit(fixtures: list[str]) -> Edit:
    """An autouse fixture method that hands the fixtures to a unittest class's methods."""
    ordered = [f for f in FIXTURE_PARAMETERS if f in fixtures]

    def edit(node: cst.CSTNode) -> cst.CSTNode:
        assert isinstance(node, cst.ClassDef)
        assert isinstance(node.body, cst.IndentedBlock)
        body = list(node.body.body)
        for statement in body:
            if (
                isinstance(statement, cst.FunctionDef)
                and statement.name.value == "_isolation_fixtures"
            ):
                return node
        text = (
            "@pytest.fixture(autouse=True)\n"
            f"def _isolation_fixtures(self, {', '.join(ordered)}):\n"
            + "".join(f"    self.{f} = {f}\n" for f in ordered)
        )
        created = cst.parse_statement(text)
        at = 1 if body and _is_docstring(body[0]) else 0
        if at < len(body):
            following = body[at]
            if not getattr(following, "leading_lines", None):
                body[at] = following.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        body.insert(at, created)
        return node.with_changes(body=node.body.with_changes(body=body))

    return edit


def _is_docstring(statement: cst.CSTNode) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    )


def _compose(edits: list[Edit]) -> Edit:
    def edit(node: cst.CSTNode) -> Result:
        current: Result = node
        for step in edits:
            if isinstance(current, cst.FlattenSentinel):
                parts: list[cst.CSTNode] = []
                for part in current.nodes:
                    done = step(part)
                    parts += list(done.nodes) if isinstance(done, cst.FlattenSentinel) else [done]
                current = cst.FlattenSentinel(parts)
            else:
                current = step(current)
        return current

    return edit


def apply(a: AnalysisView, module_plan: Plan, constants: set[str]) -> cst.Module:
    """The module with every edit of its plan applied, unused broker constants removed."""
    tree = a.facts.module
    if not module_plan.edits:
        return tree
    composed = {key: _compose(edits) for key, edits in module_plan.edits.items()}
    paths = a.facts.paths_to(set(composed))
    rewritten = tree.visit(Replacer(composed, paths))
    assert isinstance(rewritten, cst.Module)
    if constants:
        rewritten = _drop_constants(rewritten, constants)
    rewritten = _drop_unused_imports(rewritten, _used_names(a.facts))
    if module_plan.imports:
        rewritten = add_imports(rewritten, "parallel_isolation", sorted(module_plan.imports))
    for name in sorted(module_plan.modules):
        rewritten = _import_module(rewritten, name)
    return rewritten


def _used_names(facts: ModuleFacts) -> set[str]:
    return {r.node.value for r in facts.names if isinstance(r.node, cst.Name)}


def _drop_unused_imports(tree: cst.Module, used_before: set[str]) -> cst.Module:
    """Top-level ``import x`` lines whose only uses the rewrite removed (``time``
    once its sleeps became waits).  Imports that were unused before stay."""
    facts = collect_facts(tree)
    used_now = {r.node.value for r in facts.names if isinstance(r.node, cst.Name)}
    remove: set[int] = set()
    for statement in tree.body:
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            continue
        small = statement.body[0]
        if not isinstance(small, cst.Import) or len(small.names) != 1:
            continue
        alias = small.names[0]
        name = alias.evaluated_alias or alias.evaluated_name.split(".")[0]
        if name in used_before and name not in used_now:
            remove.add(id(statement))
    return remove_statements(tree, remove) if remove else tree


def _drop_constants(tree: cst.Module, candidates: set[str]) -> cst.Module:
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


def _import_module(tree: cst.Module, name: str) -> cst.Module:
    for statement in tree.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.Import) and any(
                    alias.evaluated_name == name for alias in small.names
                ):
                    return tree
    body = list(tree.body)
    position = 0
    for index, statement in enumerate(body):
        if isinstance(statement, cst.SimpleStatementLine) and isinstance(
            statement.body[0], cst.Import | cst.ImportFrom
        ):
            position = index + 1
        elif index == 0 and _is_docstring(statement):
            position = 1
        else:
            break
    body.insert(position, cst.parse_statement(f"import {name}\n"))
    return tree.with_changes(body=body)
