"""Sleeps: PI112.

A ``time.sleep`` waits and hopes: under load it is too short, unloaded it
wastes the time.  Excused only inside a loop that re-checks a condition
(``while not ready():``, a loop that ``break``s, returns, raises or asserts):
a sleep in a ``for name in containers:`` teardown loop is a plain wait.

Two waits have a condition the codemod can name: a sleep right after a
raw client's ``subscribe()`` waits for the SUBACK, a sleep right after its
``connect()`` (and ``loop_start()``) for the CONNACK.  Those become an
event set by ``on_subscribe``/``on_connect`` and an assertion with a
deadline; the other sleeps are left for a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._builders import Builder, Result
from parallel_isolation.migrate._facts import Record, Scope, dotted, last_name, string_value
from parallel_isolation.migrate._sinks import keyword_arg, positional_args
from parallel_isolation.migrate._site import Site
from parallel_isolation.migrate._walk import iter_children

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["WAIT_SECONDS", "on_call", "polls"]

#: The deadline of the waits the codemod writes.
WAIT_SECONDS = 10
_EXITS = (cst.Break, cst.Return, cst.Raise, cst.Assert)


def polls(loop: cst.CSTNode) -> bool:
    """The loop re-checks a condition: ``while <condition>``, or it can exit early."""
    if isinstance(loop, cst.While):
        test = loop.test
        constant = isinstance(test, cst.Name) and test.value == "True"
        constant = constant or (isinstance(test, cst.Integer) and test.value != "0")
        if not constant:
            return True
    body = loop.body if isinstance(loop, cst.For | cst.While) else None
    return body is not None and _exits(body)


def _exits(node: cst.CSTNode) -> bool:
    if isinstance(node, _EXITS):
        return True
    if isinstance(node, cst.FunctionDef | cst.Lambda | cst.ClassDef):
        return False
    return any(_exits(child) for child in iter_children(node))


def on_call(a: AnalysisView, record: Record) -> None:
    call = record.node
    assert isinstance(call, cst.Call)
    qualified = a.facts.qualify(call.func) or ""
    if qualified not in ("time.sleep", "asyncio.sleep") or record.in_main:
        return
    if record.loop is not None and polls(record.loop):
        return
    shown = a.facts.module.code_for_node(call.args[0].value) if call.args else ""
    scope = record.scope
    rewrite = _ack_rewrite(a, call, scope) if qualified == "time.sleep" else None
    if rewrite is not None:
        statement, edits, what = rewrite
        a.add(
            Site(
                "PI112",
                statement,
                scope,
                f"{qualified}({shown}) after {what[0]} hopes the broker answered; "
                f"wait for the {what[1]} with a deadline",
                build=edits[id(statement)],
                extra={k: v for k, v in edits.items() if k != id(statement)},
            )
        )
        a.handled.add(id(call))
        return
    in_loop = " in a loop that re-checks nothing" if record.loop is not None else ""
    a.add(
        Site(
            "PI112",
            call,
            scope,
            f"{qualified}({shown}) waits and hopes{in_loop}; wait for the condition with a deadline",
            manual="name the condition and wait for it (or drop the wait)",
        )
    )


Edit = Builder


def _ack_rewrite(
    a: AnalysisView, call: cst.Call, scope: Scope
) -> tuple[cst.SimpleStatementLine, dict[int, Edit], tuple[str, str]] | None:
    parents = a.facts.parents
    expr = parents.get(id(call))
    statement = parents.get(id(expr)) if expr is not None else None
    block = parents.get(id(statement)) if statement is not None else None
    if not (
        isinstance(expr, cst.Expr)
        and isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(block, cst.IndentedBlock)
    ):
        return None
    body: Sequence[cst.BaseStatement] = block.body
    index = next((i for i, s in enumerate(body) if s is statement), None)
    if index is None:
        return None
    if index + 1 < len(body) and _checks(body[index + 1]):
        return None  # it waits for what the subscription delivers (a retained message...)
    position = index - 1
    receiver: str | None = None
    while position >= 0:
        started = _single_call(body[position])
        if (
            started is None
            or last_name(started.func) != "loop_start"
            or not isinstance(started.func, cst.Attribute)
        ):
            break
        receiver = receiver or dotted(started.func.value)
        position -= 1
    if position < 0:
        return None
    previous = body[position]
    called = _single_call(previous)
    kind: str | None = None
    subscribe_loop: cst.For | None = None
    if called is not None and isinstance(called.func, cst.Attribute):
        method = called.func.attr.value
        if method == "subscribe":
            kind = "subscribe"
        elif method in ("connect", "connect_async"):
            kind = "connect"
        receiver_node = called.func.value
    elif isinstance(previous, cst.For):
        inner = _loop_subscribe(previous)
        if inner is None:
            return None
        called, subscribe_loop = inner, previous
        assert isinstance(called.func, cst.Attribute)
        receiver_node = called.func.value
        kind = "subscribe"
    else:
        return None
    if kind is None:
        return None
    name = dotted(receiver_node)
    if name is None or (receiver is not None and receiver != name):
        return None
    if a.receiver_kind(receiver_node, scope) == "namespaced" or not a.raw_messages:
        return None
    callback = "on_subscribe" if kind == "subscribe" else "on_connect"
    if _assigns(a, name, callback):
        return None
    event = _free_name(scope, "subscribed" if kind == "subscribe" else "connected")
    answer = "SUBACK" if kind == "subscribe" else "CONNACK"
    message = (
        "no SUBACK for the subscription" if kind == "subscribe" else "no CONNACK from the broker"
    )
    edits: dict[int, Edit] = {}
    loop = subscribe_loop

    def insert(provider: str, node: cst.CSTNode) -> Result:
        assert isinstance(node, cst.BaseStatement)
        before = [
            cst.parse_statement(f"{event} = threading.Event()\n"),
            cst.parse_statement(f"{name}.{callback} = lambda *_: {event}.set()\n"),
        ]
        replacement: cst.BaseStatement = node
        if loop is not None:
            replacement = _subscribe_list(node)
        lines = list(getattr(node, "leading_lines", ()))
        first = before[0].with_changes(leading_lines=lines) if lines else before[0]
        replacement = replacement.with_changes(leading_lines=[])
        return cst.FlattenSentinel([first, before[1], replacement])

    def wait(provider: str, node: cst.CSTNode) -> cst.CSTNode:
        assert isinstance(node, cst.SimpleStatementLine)
        added = cst.parse_statement(f'assert {event}.wait({WAIT_SECONDS}), "{message}"\n')
        assert isinstance(added, cst.SimpleStatementLine)
        return added.with_changes(
            leading_lines=node.leading_lines, trailing_whitespace=node.trailing_whitespace
        )

    edits[id(previous)] = insert
    edits[id(statement)] = wait
    edits[id(a.facts.module)] = _import_threading
    what = ("subscribe()" if kind == "subscribe" else "connect()", answer)
    return statement, edits, what


def _checks(statement: cst.CSTNode) -> bool:
    """An assertion: the sleep waited for a result, not only for the broker's answer."""
    if not isinstance(statement, cst.SimpleStatementLine) or not statement.body:
        return False
    small = statement.body[0]
    if isinstance(small, cst.Assert):
        return True
    called = _single_call(statement)
    return called is not None and (last_name(called.func) or "").startswith("assert")


def _single_call(statement: cst.CSTNode) -> cst.Call | None:
    if (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, cst.Call)
    ):
        return statement.body[0].value
    return None


def _loop_subscribe(loop: cst.For) -> cst.Call | None:
    """``for t in topics: client.subscribe(t, qos=1)``: one subscribe of the loop variable."""
    if not isinstance(loop.target, cst.Name) or not isinstance(loop.body, cst.IndentedBlock):
        return None
    if len(loop.body.body) != 1 or loop.orelse is not None:
        return None
    called = _single_call(loop.body.body[0])
    if called is None or last_name(called.func) != "subscribe":
        return None
    positional = positional_args(called)
    if not positional or not (
        isinstance(positional[0], cst.Name) and positional[0].value == loop.target.value
    ):
        return None
    return called


def _subscribe_list(node: cst.CSTNode) -> cst.BaseStatement:
    """``for t in topics: c.subscribe(t, qos=1)`` -> ``c.subscribe([(t, 1) for t in topics])``."""
    assert isinstance(node, cst.For)
    assert isinstance(node.body, cst.IndentedBlock)
    called = _single_call(node.body.body[0])
    assert called is not None
    assert isinstance(called.func, cst.Attribute)
    positional = positional_args(called)
    qos = keyword_arg(called, "qos")
    if qos is None and len(positional) > 1:
        qos = positional[1]
    code = cst.Module([]).code_for_node
    qos_text = code(qos) if qos is not None else "0"
    target = code(node.target)
    text = f"{code(called.func)}([({target}, {qos_text}) for {target} in {code(node.iter)}])\n"
    return cst.parse_statement(text)


def _assigns(a: AnalysisView, receiver: str, callback: str) -> bool:
    """Something already sets ``<receiver>.<callback>`` (the rewrite would replace it)."""
    for target, _value, _scope in a.facts.assigns:
        if (
            isinstance(target, cst.Attribute)
            and target.attr.value == callback
            and (dotted(target.value) == receiver or receiver.startswith("self."))
        ):
            return True
    return False


def _free_name(scope: Scope, base: str) -> str:
    taken: set[str] = set()
    for candidate in scope.function_chain():
        taken |= set(candidate.bindings) | set(candidate.all_params())
    if base not in taken:
        return base
    for number in range(2, 100):
        name = f"{base}_{number}"
        if name not in taken:
            return name
    return f"{base}_event"


def _import_threading(provider: str, node: cst.CSTNode) -> cst.CSTNode:
    """``import threading`` among the module's top ``import`` lines, unless it has it."""
    assert isinstance(node, cst.Module)
    body = list(node.body)
    position = None
    for index, statement in enumerate(body):
        if not isinstance(statement, cst.SimpleStatementLine):
            break
        small = statement.body[0]
        if isinstance(small, cst.Import):
            names = [alias.evaluated_name for alias in small.names]
            if "threading" in names:
                return node
            if position is None and min(names) > "threading":
                position = index
            continue
        if isinstance(small, cst.ImportFrom) or (
            index == 0 and isinstance(small, cst.Expr) and string_value(small.value) is not None
        ):
            continue
        break
    if position is None:
        position = next(
            (
                index + 1
                for index in range(len(body) - 1, -1, -1)
                if isinstance(body[index], cst.SimpleStatementLine)
                and isinstance(body[index].body[0], cst.Import)  # type: ignore[index]
            ),
            None,
        )
    if position is None:
        position = 0
        for index, statement in enumerate(body):
            if isinstance(statement, cst.SimpleStatementLine) and isinstance(
                statement.body[0], cst.ImportFrom | cst.Expr
            ):
                position = index + 1
                continue
            break
    added = cst.parse_statement("import threading\n")
    body.insert(position, added)
    return node.with_changes(body=body)
