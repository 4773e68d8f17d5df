"""Fast read-only traversal and positions for chosen nodes.

LibCST's visitors rebuild every node on the way back up (even a read-only
``CSTVisitor`` goes through ``_visit_and_replace_children``), and
``PositionProvider`` records a range for every node.  The linter reads the
tree once and needs the positions of a few dozen nodes, so it uses these:
:class:`Walker` follows the dataclass fields of the nodes (skipping the
whitespace and punctuation ones) and calls ``visit_<Node>`` /
``leave_<Node>`` / ``visit_<Node>_<field>`` / ``leave_<Node>_<field>`` like
a LibCST visitor; :func:`start_positions` runs LibCST's own code generator
with a state that notes where the wanted nodes start, with the same rules as
``PositionProvider`` (syntactic start, 1-based lines, 0-based columns) for
every node but indented blocks, which are never reported.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import re
from collections.abc import Callable, Collection, Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst._nodes.internal import CodegenState

__all__ = ["Walker", "iter_children", "start_positions"]

_SKIPPED_FIELDS = frozenset(
    {
        "lpar",
        "rpar",
        "leading_lines",
        "lines_after_decorators",
        "header",
        "footer",
        "comma",
        "semicolon",
        "newline",
        "trailing_whitespace",
        "equal",
        "colon",
        "dot",
        "operator",
        "asynchronous",
        "await_",
        "star_tok",
        "lbracket",
        "rbracket",
        "lbrace",
        "rbrace",
        "between",
        "whitespace",
    }
)
_FIELDS: dict[type, tuple[str, ...]] = {}
_NEWLINE = re.compile(r"\r\n?|\n")


def _fields(kind: type) -> tuple[str, ...]:
    names = _FIELDS.get(kind)
    if names is None:
        names = tuple(
            f.name
            for f in dataclasses.fields(kind)
            if f.name not in _SKIPPED_FIELDS and not f.name.startswith("whitespace")
        )
        _FIELDS[kind] = names
    return names


def _values(node: cst.CSTNode, name: str) -> Iterator[cst.CSTNode]:
    value = getattr(node, name)
    if isinstance(value, cst.CSTNode):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, cst.CSTNode):
                yield item


def iter_children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The child nodes that carry code (not whitespace or punctuation)."""
    for name in _fields(type(node)):
        yield from _values(node, name)


Hook = Callable[[cst.CSTNode], Any]


class Walker:
    """A read-only traversal with LibCST-style hook names.

    ``visit_<Node>`` returning False skips the node's children.
    """

    def __init__(self) -> None:
        #: ``id(child) -> parent`` of every node walked.
        self.parents: dict[int, cst.CSTNode] = {}
        self._plans: dict[
            type, tuple[Hook | None, Hook | None, tuple[tuple[str, Hook | None, Hook | None], ...]]
        ] = {}

    def _plan(
        self, kind: type
    ) -> tuple[Hook | None, Hook | None, tuple[tuple[str, Hook | None, Hook | None], ...]]:
        plan = self._plans.get(kind)
        if plan is None:
            name = kind.__name__
            steps = tuple(
                (
                    field_name,
                    getattr(self, f"visit_{name}_{field_name}", None),
                    getattr(self, f"leave_{name}_{field_name}", None),
                )
                for field_name in _fields(kind)
            )
            plan = (
                getattr(self, f"visit_{name}", None),
                getattr(self, f"leave_{name}", None),
                steps,
            )
            self._plans[kind] = plan
        return plan

    def walk(self, node: cst.CSTNode) -> None:
        visit, leave, steps = self._plan(type(node))
        if visit is None or visit(node) is not False:
            parents = self.parents
            for field_name, before, after in steps:
                if before is not None:
                    before(node)
                for child in _values(node, field_name):
                    parents[id(child)] = node
                    self.walk(child)
                if after is not None:
                    after(node)
        if leave is not None:
            leave(node)


@dataclass
class _StartState(CodegenState):
    """Plain code generation that notes the token index where wanted nodes start."""

    wanted: Container[int] = field(default_factory=set)
    found: dict[int, int] = field(default_factory=dict)

    def before_codegen(self, node: cst.CSTNode) -> None:
        if id(node) in self.wanted:
            self.found[id(node)] = len(self.tokens)

    @contextmanager
    def record_syntactic_position(
        self,
        node: cst.CSTNode,
        *,
        start_node: cst.CSTNode | None = None,
        end_node: cst.CSTNode | None = None,
    ) -> Iterator[None]:
        if id(node) in self.wanted:
            hoisted = self.found.get(id(start_node)) if start_node is not None else None
            self.found[id(node)] = len(self.tokens) if hoisted is None else hoisted
        yield


class _Every:
    def __contains__(self, item: object) -> bool:
        return True


_EVERY = _Every()


def start_positions(
    module: cst.Module, nodes: Collection[cst.CSTNode] | None
) -> tuple[dict[int, tuple[int, int]], str]:
    """``id(node) -> (line, column)`` where each of ``nodes`` (None: every
    node) starts (as PositionProvider), and the module's code (generated on
    the way)."""
    wanted: Container[int] = _EVERY if nodes is None else {id(node) for node in nodes}
    state = _StartState(
        default_indent=module.default_indent,
        default_newline=module.default_newline,
        wanted=wanted,
    )
    module._codegen(state)
    text = "".join(state.tokens)
    if not state.found:
        return {}, text
    offsets = [0, *itertools.accumulate(map(len, state.tokens))]
    newlines = [match.end() for match in _NEWLINE.finditer(text)]
    positions = {}
    for key, index in state.found.items():
        offset = offsets[index]
        line = bisect.bisect_right(newlines, offset)
        line_start = newlines[line - 1] if line else 0
        positions[key] = (line + 1, offset - line_start)
    return positions, text
