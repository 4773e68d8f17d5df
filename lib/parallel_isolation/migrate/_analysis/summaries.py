"""Summaries of functions: which parameters flow, unchanged, into which sinks.

``connect("sensor-client")`` is a client-id hazard when ``connect`` passes
its parameter to ``Client(client_id=...)``.  Every function and method gets
a :class:`FunctionSummary`: for each parameter, the kinds of sink it reaches
(directly, through a ``for`` loop over it, or through a call of another
summarised function) and whether it is *pure*: used for nothing but sinks
(and f-strings such as log messages).  Only a pure parameter has its
call-site literals rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import libcst as cst

from parallel_isolation.migrate._facts import ModuleFacts, Record, Scope
from parallel_isolation.migrate._sinks import Kind, positional_args
from parallel_isolation.migrate._values import Resolver

__all__ = ["External", "Flow", "FunctionSummary", "summarize"]


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


def _shell(function: Scope) -> FunctionSummary:
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


def _getter(summary: FunctionSummary, param: str) -> Callable[[], Flow | None]:
    return lambda: summary.flows.get(param)


Resolve = Callable[[cst.Call, Scope], "FunctionSummary | None"]
#: (direct kinds, edges to other parameters' flows, impure, through a loop)
_Contribution = tuple[set[Kind], list[tuple[Callable[[], Flow | None], bool]], bool, bool]


def summarize(
    facts: ModuleFacts,
    resolver: Resolver,
    sink_nodes: dict[int, Kind],
    summaries: dict[int, FunctionSummary],
    resolve: Resolve,
) -> None:
    """Fill ``summaries`` (``id(scope) -> summary``) for the module's helpers and methods.

    ``sink_nodes`` maps the ids of expressions that are sink arguments to
    their kind; ``resolve`` finds the summary of a called function (which
    may live in another module).
    """
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
        binder = resolver.binder(name.value, record.scope)
        if binder is not None and binder.is_function:
            uses.setdefault((id(binder), name.value), []).append(record)
    record_of_call: dict[int, Record] = {id(r.node): r for r in facts.calls}

    def analyze(name: str, binder: Scope, depth: int = 0) -> _Contribution:
        kinds: set[Kind] = set()
        edges: list[tuple[Callable[[], Flow | None], bool]] = []
        impure = False
        each = False
        for record in uses.get((id(binder), name), []):
            node = record.node
            kind = sink_nodes.get(id(node))
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
                summary = resolve(call, caller.scope) if caller is not None else None
                param = None
                if summary is not None:
                    param = next((p for v, p in summary.mapping(call) if v is node), None)
                if summary is None or param is None:
                    impure = True
                    continue
                edges.append((_getter(summary, param), False))
                continue
            impure = True
        return kinds, edges, impure, each

    contributions: dict[tuple[int, str], _Contribution] = {}
    for function in functions:
        summaries[id(function)] = _shell(function)
    for function in functions:
        summary = summaries[id(function)]
        for param in summary.params[summary.offset :] + summary.kwonly:
            contributions[(id(function), param)] = analyze(param, function)
    for _ in range(20):
        changed = False
        for (function_id, param), (kinds, edges, impure, each) in contributions.items():
            flow = summaries[function_id].flows[param]
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
