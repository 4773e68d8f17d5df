"""Cleanup by name: PI111 (containers listed and removed by a name test,
``prune``, ``pkill``/``killall``, ``docker rm $(docker ps --filter name=...)``).

Removing by exact name is not this hazard: once the name is the worker's, it
only ever removes the worker's own leftovers (the name is the hazard, PI104).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._facts import Record, Scope, dotted, last_name, string_value
from parallel_isolation.migrate._sinks import SUBPROCESS, cli_tokens, keyword_arg
from parallel_isolation.migrate._site import Site
from parallel_isolation.migrate._walk import iter_children

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["on_call", "on_loop"]

_REMOVERS = frozenset({"remove", "kill", "stop", "terminate", "disconnect"})
_LISTERS = frozenset({"containers", "networks", "volumes", "images"})


def on_call(a: AnalysisView, call: cst.Call, scope: Scope) -> None:
    if last_name(call.func) == "prune":
        a.add(
            Site(
                "PI111",
                call,
                scope,
                f"{dotted(call.func) or 'prune'}() removes what other workers and runs still use",
                manual="remove only what the test created",
            )
        )
    if (a.facts.qualify(call.func) or "") not in SUBPROCESS:
        return
    words = [t for t, _ in cli_tokens(call)]
    head = [w for w in words[:2] if w is not None]
    first = head[0] if head else None
    if first == "sudo" and len(head) > 1:
        first = head[1]
    if first is not None and first.rsplit("/", 1)[-1] in ("pkill", "killall"):
        a.add(
            Site(
                "PI111",
                call,
                scope,
                f"{first} kills processes of every worker by pattern",
                manual="stop the process handle the test started",
            )
        )
        return
    if first not in ("docker", "docker-compose"):
        return
    if "prune" in words:
        a.add(
            Site(
                "PI111",
                call,
                scope,
                "docker ... prune removes what other workers and runs still use",
                manual="remove only what the test created",
            )
        )
    if any(w is not None and "name=" in w for w in words) and any(
        w in ("rm", "kill", "stop") for w in words
    ):
        a.add(
            Site(
                "PI111",
                call,
                scope,
                "docker cleanup selected by a name filter",
                manual="select by the plugin's labels",
            )
        )


def on_loop(a: AnalysisView, record: Record) -> None:
    node = record.node
    iterable: cst.BaseExpression | None = None
    if isinstance(node, cst.For):
        iterable = node.iter
    elif isinstance(node, cst.ListComp | cst.SetComp | cst.GeneratorExp | cst.DictComp):
        iterable = node.for_in.iter
    if not isinstance(iterable, cst.Call):
        return
    method = last_name(iterable.func)
    holder = last_name(iterable.func.value) if isinstance(iterable.func, cst.Attribute) else None
    listing = (method == "list" and holder in _LISTERS) or method == "process_iter"
    if not listing:
        return
    filters = keyword_arg(iterable, "filters")
    by_name_filter = isinstance(filters, cst.Dict) and any(
        isinstance(e, cst.DictElement) and string_value(e.key) == "name" for e in filters.elements
    )
    if keyword_arg(iterable, "names") is not None and not by_name_filter:
        return  # exact names (networks.list(names=[...])): see PI105
    removes = _contains_call(node, _REMOVERS)
    by_name = by_name_filter or _mentions_name_attribute(node)
    if removes and by_name:
        target = node if isinstance(node, cst.For) else iterable
        a.add(
            Site(
                "PI111",
                target,
                record.scope,
                f"cleanup that selects {holder or 'processes'} by name and removes them "
                "hits other workers' resources",
                manual="remove only what the test created, or select by labels and liveness",
            )
        )


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
