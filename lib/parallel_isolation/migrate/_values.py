"""What an expression is known to hold.

A literal, or a name bound to literals (module constants, locals, loop
variables over literal lists, ``@pytest.mark.parametrize`` strings), or a
string built from them (f-strings, ``+``, ``%``, ``.format``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import libcst as cst

from parallel_isolation.migrate._facts import (
    ModuleFacts,
    Scope,
    _element_at,
    last_name,
    string_value,
)
from parallel_isolation.migrate._walk import iter_children

__all__ = ["Lit", "Resolver", "namespaceish"]

_NAMESPACEISH = re.compile(r"(?i)prefix|namespace")


@dataclass(frozen=True)
class Lit:
    """What an expression is known to hold.

    ``literal``: one of ``values`` (strings or ints); ``built``: a string
    built from literals (f-string, ``+``, ``%``, ``.format``).  ``constant``
    names the module-level constant it came through, ``name`` the variable.
    """

    kind: Literal["literal", "built"]
    values: tuple[str | int, ...] = ()
    constant: str | None = None
    name: str | None = None

    def strings(self) -> tuple[str, ...]:
        return tuple(v for v in self.values if isinstance(v, str))

    def describe(self) -> str:
        if self.kind == "built":
            return f"built topic via {self.name}" if self.name else "built"
        shown = ", ".join(repr(v) for v in self.values[:3])
        more = ", ..." if len(self.values) > 3 else ""
        via = f" (via {self.constant or self.name})" if (self.constant or self.name) else ""
        return f"{shown}{more}{via}"


def namespaceish(node: cst.CSTNode) -> bool:
    if isinstance(node, cst.Name):
        return bool(_NAMESPACEISH.search(node.value))
    return any(namespaceish(child) for child in iter_children(node))


class Resolver:
    """Resolves names to the literals they may hold, following scopes."""

    def __init__(self, facts: ModuleFacts) -> None:
        self.facts = facts
        self._binders: dict[tuple[int, str], Scope | None] = {}

    def binder(self, name: str, scope: Scope) -> Scope | None:
        key = (id(scope), name)
        if key in self._binders:
            return self._binders[key]
        found: Scope | None = None
        for candidate in scope.function_chain():
            if candidate.binds(name):
                found = candidate
                break
        else:
            if name in self.facts.scope.bindings:
                found = self.facts.scope
        self._binders[key] = found
        return found

    def lit(self, expr: cst.CSTNode, scope: Scope, depth: int = 0) -> Lit | None:
        if depth > 8:
            return None
        if isinstance(expr, cst.SimpleString):
            if "b" in expr.prefix.lower():
                return None
            value = string_value(expr)
            return None if value is None else Lit("literal", (value,))
        if isinstance(expr, cst.ConcatenatedString):
            value = string_value(expr)
            if value is not None:
                return Lit("literal", (value,))
            return None if namespaceish(expr) else Lit("built")
        if isinstance(expr, cst.Integer):
            return Lit("literal", (int(expr.evaluated_value),))
        if isinstance(expr, cst.FormattedString):
            if "b" in expr.prefix.lower() or namespaceish(expr):
                return None
            if all(isinstance(part, cst.FormattedStringText) for part in expr.parts):
                text = "".join(
                    part.value for part in expr.parts if isinstance(part, cst.FormattedStringText)
                )
                return Lit("literal", (text,))
            return Lit("built")
        if isinstance(expr, cst.BinaryOperation):
            if namespaceish(expr):
                return None
            if isinstance(expr.operator, cst.Add):
                sides = [
                    self.lit(expr.left, scope, depth + 1),
                    self.lit(expr.right, scope, depth + 1),
                ]
                if any(s is not None and (s.kind == "built" or s.strings()) for s in sides):
                    return Lit("built")
            if isinstance(expr.operator, cst.Modulo):
                left = self.lit(expr.left, scope, depth + 1)
                if left is not None and left.strings():
                    return Lit("built")
            return None
        if isinstance(expr, cst.Call):
            func = expr.func
            if isinstance(func, cst.Attribute) and func.attr.value == "format":
                base = self.lit(func.value, scope, depth + 1)
                if base is not None and base.strings() and not namespaceish(expr):
                    return Lit("built")
            return None
        if isinstance(expr, cst.Name):
            return self._name(expr.value, scope, depth)
        return None

    def _name(self, name: str, scope: Scope, depth: int) -> Lit | None:
        binder = self.binder(name, scope)
        if binder is None:
            return None
        if binder.is_function and name in binder.all_params():
            given = binder.parametrized.get(name)
            return Lit("literal", tuple(given), name=name) if given else None
        bindings = binder.bindings.get(name, [])
        if not bindings:
            return None
        found: list[Lit] = []
        for binding in bindings:
            result: Lit | None = None
            if binding.value is not None:
                result = self.lit(binding.value, binder, depth + 1)
            elif binding.iterable is not None:
                result = self.elements(binding.iterable, binder, binding.path, depth + 1)
            if result is None:
                return None
            found.append(result)
        kind: Literal["literal", "built"] = (
            "built" if any(f.kind == "built" for f in found) else "literal"
        )
        values: list[str | int] = []
        for f in found:
            values += [v for v in f.values if v not in values]
        constant = name if binder.role == "module" else None
        return Lit(kind, tuple(values) if kind == "literal" else (), constant=constant, name=name)

    def elements(
        self, iterable: cst.BaseExpression, scope: Scope, path: tuple[int, ...], depth: int = 0
    ) -> Lit | None:
        """What the loop variable at ``path`` takes when iterating ``iterable``."""
        if depth > 8:
            return None
        if isinstance(iterable, cst.Name):
            binder = self.binder(iterable.value, scope)
            if binder is None or (binder.is_function and iterable.value in binder.all_params()):
                return None
            bindings = binder.bindings.get(iterable.value, [])
            if len(bindings) != 1 or bindings[0].value is None:
                return None
            return self.elements(bindings[0].value, binder, path, depth + 1)
        if isinstance(iterable, cst.Call) and last_name(iterable.func) == "enumerate":
            if not iterable.args or not path or path[0] != 1:
                return None
            return self.elements(iterable.args[0].value, scope, path[1:], depth + 1)
        if isinstance(iterable, cst.List | cst.Tuple | cst.Set):
            found: list[Lit] = []
            for element in iterable.elements:
                if isinstance(element, cst.StarredElement):
                    return None
                item = _element_at(element.value, path) if path else element.value
                if item is None:
                    return None
                result = self.lit(item, scope, depth + 1)
                if result is None:
                    return None
                found.append(result)
            if not found:
                return None
            kind: Literal["literal", "built"] = (
                "built" if any(f.kind == "built" for f in found) else "literal"
            )
            values: list[str | int] = []
            for f in found:
                values += [v for v in f.values if v not in values]
            return Lit(kind, tuple(values) if kind == "literal" else ())
        return None
