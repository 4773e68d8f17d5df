"""Topics: PI107 bare topics, PI108 built topics, PI109 incoming topics.

Topics published and subscribed by raw clients get the test's namespace.
An incoming message's topic then carries the prefix, so wherever the test
compares it with a bare topic or parses it by position, the topic is first
stripped: where it is compared (``msg.topic == 'a/b'``), or where a callback
stores a copy that the test compares later (``seen.append((msg.topic, ...))``),
unless the copies are matched against filters the codemod namespaces too
(``topic_matches_sub(filter, t)``), which needs the full topic.

A substring test (``'camera' in msg.topic``) and ``endswith`` hold for the
prefixed topic as well, and are left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._builders import strip_topic, wrap_in
from parallel_isolation.migrate._facts import Record, Scope, dotted, last_name
from parallel_isolation.migrate._sinks import Sink
from parallel_isolation.migrate._site import Site
from parallel_isolation.migrate._values import Lit
from parallel_isolation.migrate._walk import iter_children

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["copies", "incoming", "on_call", "on_comparison", "sink_site", "topic_param_sinks"]

_PARSERS = ("startswith", "split", "partition", "rsplit")
_STORES = ("append", "put", "put_nowait", "appendleft", "add", "insert")


def sink_site(
    a: AnalysisView, sink: Sink, lit: Lit, scope: Scope, via: str | None, pure: bool
) -> None:
    node = sink.node
    strings = lit.strings()
    if lit.kind == "literal" and (
        not strings or all(s.startswith("$") and not s.startswith("$share/") for s in strings)
    ):
        return
    if lit.kind == "built" and _namespaced(node):
        return
    kind = sink.kind
    if kind == "either":
        kind = "filter" if any("+" in s or "#" in s for s in strings) else "topic"
    method = "filter" if kind == "filter" else "topic"
    code = "PI108" if lit.kind == "built" else "PI107"
    where = f"{sink.label}" + (f" via {via}" if via else "")
    what = "topic built without a namespace" if code == "PI108" else f"bare topic {lit.describe()}"
    hazard = None
    if lit.constant is not None and lit.kind == "literal":
        hazard = ("const", lit.module or a.path, lit.constant)
    a.add(
        Site(
            code,
            node,
            scope,
            f"{what} in {where}; use topic_namespace.{method}(...)",
            need="topics",
            build=wrap_in(method) if pure else None,
            manual=None if pure else f"{via} also uses the value for something else",
            hazard=hazard,
            origin=lit.definition,
        )
    )


def _namespaced(node: cst.CSTNode) -> bool:
    if isinstance(node, cst.Call) and last_name(node.func) in ("topic", "filter", "strip"):
        return True
    return any(_namespaced(child) for child in iter_children(node))


def _message_name(a: AnalysisView, expr: cst.BaseExpression, scope: Scope) -> bool:
    """``msg.topic`` of a message the plugin's clients hand out (bare already)?"""
    base = expr.value if isinstance(expr, cst.Attribute) else None
    return isinstance(base, cst.Name) and any(
        base.value in s.ns_messages for s in scope.function_chain()
    )


def incoming(a: AnalysisView, expr: cst.BaseExpression, scope: Scope, where: str) -> None:
    if not (isinstance(expr, cst.Attribute) and expr.attr.value == "topic"):
        return
    if _message_name(a, expr, scope):
        return
    a.add(
        Site(
            "PI109",
            expr,
            scope,
            f"incoming topic {a.facts.module.code_for_node(expr)} used as a bare topic in "
            f"{where}; use topic_namespace.strip(...)",
            need="topics",
            build=strip_topic,
        )
    )


def on_call(a: AnalysisView, call: cst.Call, scope: Scope) -> None:
    func = call.func
    if last_name(func) in _PARSERS and isinstance(func, cst.Attribute) and a.raw_messages:
        incoming(a, func.value, scope, f".{last_name(func)}()")


def on_comparison(a: AnalysisView, record: Record) -> None:
    if not a.raw_messages:
        return
    node = record.node
    assert isinstance(node, cst.Comparison)
    operands: list[cst.BaseExpression] = [node.left, *(t.comparator for t in node.comparisons)]
    for index, target in enumerate(node.comparisons):
        operator = target.operator
        if not isinstance(operator, cst.Equal | cst.NotEqual | cst.In | cst.NotIn):
            continue
        left, right = operands[index], operands[index + 1]
        pairs = [(left, right)]
        if isinstance(operator, cst.Equal | cst.NotEqual):
            pairs.append((right, left))
        for mine, other in pairs:
            # ``x in msg.topic`` is a substring test: the prefixed topic passes it too.
            if (
                isinstance(mine, cst.Attribute)
                and mine.attr.value == "topic"
                and _topicish(a, other, record.scope)
            ):
                incoming(a, mine, record.scope, "a comparison")


def _topicish(a: AnalysisView, expr: cst.BaseExpression, scope: Scope) -> bool:
    if isinstance(expr, cst.Tuple | cst.List | cst.Set):
        return bool(expr.elements) and all(_topicish(a, e.value, scope) for e in expr.elements)
    lit = a.resolver.lit(expr, scope)
    return lit is not None and (lit.kind == "built" or bool(lit.strings()))


def topic_param_sinks(a: AnalysisView) -> list[cst.CSTNode]:
    """``msg.topic == topic`` with ``topic`` a parameter: callers pass a topic."""
    found: list[cst.CSTNode] = []
    if not a.raw_messages:
        return found
    for record in a.facts.comparisons:
        node = record.node
        assert isinstance(node, cst.Comparison)
        operands = [node.left, *(t.comparator for t in node.comparisons)]
        for index, target in enumerate(node.comparisons):
            if not isinstance(target.operator, cst.Equal | cst.NotEqual):
                continue
            left, right = operands[index], operands[index + 1]
            for mine, other in ((left, right), (right, left)):
                if (
                    isinstance(mine, cst.Attribute)
                    and mine.attr.value == "topic"
                    and isinstance(other, cst.Name)
                    and not _message_name(a, mine, record.scope)
                ):
                    binder = a.resolver.binder(other.value, record.scope)
                    if (
                        binder is not None
                        and binder.is_function
                        and other.value in binder.all_params()
                    ):
                        found.append(other)
    return found


# -- copies of incoming topics --------------------------------------------------


def copies(a: AnalysisView) -> None:
    """``seen.append((msg.topic, ...))`` in a callback, compared with bare topics later."""
    if not a.raw_messages or not _compares_bare_topics(a):
        return
    facts = a.facts
    for record in facts.attributes:
        node = record.node
        assert isinstance(node, cst.Attribute)
        if node.attr.value != "topic" or id(node) in a.handled:
            continue
        if not isinstance(node.value, cst.Name) or _message_name(a, node, record.scope):
            continue
        if not _is_message_param(node.value.value, record.scope):
            continue
        store = _stored_into(a, node)
        if store is None:
            continue
        container, shown = store
        if container is not None and _matched_with_filters(a, container):
            continue
        a.add(
            Site(
                "PI109",
                node,
                record.scope,
                f"incoming topic {a.facts.module.code_for_node(node)} stored in {shown} and "
                "compared with bare topics; store topic_namespace.strip(...)",
                need="topics",
                build=strip_topic,
            )
        )


def _is_message_param(name: str, scope: Scope) -> bool:
    for candidate in scope.function_chain():
        if name in candidate.all_params():
            return candidate.role in ("nested", "method", "helper") or name in ("msg", "message")
    return False


def _stored_into(a: AnalysisView, node: cst.CSTNode) -> tuple[str | None, str] | None:
    """Where a copy of ``node`` is kept: (dotted container, as shown), or None."""
    parents = a.facts.parents
    current: cst.CSTNode = node
    parent = parents.get(id(current))
    while isinstance(parent, cst.Element | cst.DictElement | cst.Tuple | cst.List | cst.Dict):
        if isinstance(parent, cst.DictElement) and parent.key is current:
            return None
        current = parent
        parent = parents.get(id(current))
    if current is node and not isinstance(parent, cst.Arg | cst.Assign | cst.AssignTarget):
        return None
    if isinstance(parent, cst.Arg):
        call = parents.get(id(parent))
        if (
            isinstance(call, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value in _STORES
        ):
            container = dotted(call.func.value)
            return container, container or "a collection"
        return None
    if isinstance(parent, cst.Assign) and current is not node:
        target = parent.targets[0].target if parent.targets else None
        shown = dotted(target) if target is not None else None
        return shown, shown or "a variable"
    return None


def _matched_with_filters(a: AnalysisView, container: str) -> bool:
    """The copies are matched with ``topic_matches_sub`` (they must stay full topics)."""
    for record in a.facts.calls:
        call = record.node
        assert isinstance(call, cst.Call)
        if last_name(call.func) != "topic_matches_sub" or len(call.args) < 2:
            continue
        subject = call.args[1].value
        if isinstance(subject, cst.Name) and _iterates(a, subject.value, container, record.scope):
            return True
    return False


def _iterates(a: AnalysisView, name: str, container: str, scope: Scope) -> bool:
    for record in a.facts.loops:
        loop = record.node
        iterated: cst.BaseExpression | None = None
        target: cst.BaseExpression | None = None
        if isinstance(loop, cst.For):
            iterated, target = loop.iter, loop.target
        elif isinstance(loop, cst.ListComp | cst.SetComp | cst.GeneratorExp | cst.DictComp):
            iterated, target = loop.for_in.iter, loop.for_in.target
        if iterated is None or target is None:
            continue
        if dotted(iterated) != container and last_name(iterated) != container.rsplit(".", 1)[-1]:
            continue
        if name in _target_names(target):
            return True
    return False


def _target_names(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, cst.Tuple | cst.List):
        names: set[str] = set()
        for element in target.elements:
            names |= _target_names(element.value)
        return names
    return set()


def _compares_bare_topics(a: AnalysisView) -> bool:
    """The module compares something with a topic literal (``'a/b'``) or checks a prefix of one."""
    for record in a.facts.strings:
        node = record.node
        if not isinstance(node, cst.SimpleString | cst.FormattedString):
            continue
        text = a.facts.module.code_for_node(node)
        if "/" not in text or " " in text.strip("'\"f"):
            continue
        parent = a.facts.parents.get(id(node))
        while isinstance(parent, cst.Element | cst.Tuple | cst.List | cst.Set | cst.Arg):
            parent = a.facts.parents.get(id(parent))
        if isinstance(parent, cst.Comparison | cst.ComparisonTarget):
            return True
        if isinstance(parent, cst.Call) and last_name(parent.func) in (
            "startswith",
            "assertEqual",
            "assertIn",
            "assertTrue",
        ):
            return True
    return False
