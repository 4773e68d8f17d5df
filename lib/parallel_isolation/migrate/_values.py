"""What an expression is known to hold.

A literal, or a name bound to literals (module constants, locals, loop
variables over literal lists, ``@pytest.mark.parametrize`` strings), or a
string built from them (f-strings, ``+``, ``%``, ``.format``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
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
    #: Where the module-level constant is defined: its module's key and the
    #: assigned expression (a hazard reached through a constant is defined there).
    module: str | None = None
    definition: cst.CSTNode | None = None

    def strings(self) -> tuple[str, ...]:
        return tuple(v for v in self.values if isinstance(v, str))

    def describe(self) -> str:
        if self.kind == "built":
            return f"built topic via {self.name}" if self.name else "built"
        shown = ", ".join(repr(v) for v in self.values[:3])
        more = ", ..." if len(self.values) > 3 else ""
        via = f" (via {self.constant or self.name})" if (self.constant or self.name) else ""
        return f"{shown}{more}{via}"


def _of_constant(result: Lit | None, name: str, module: str, definition: cst.CSTNode) -> Lit | None:
    """The values of a loop over a module constant belong to that constant."""
    if result is None or result.kind != "literal":
        return result
    if isinstance(definition, cst.List | cst.Tuple | cst.Set) and definition.elements:
        definition = definition.elements[0].value  # the line to change: the first element
    return replace(result, constant=name, name=name, module=module, definition=definition)


def namespaceish(node: cst.CSTNode) -> bool:
    if isinstance(node, cst.Name):
        return bool(_NAMESPACEISH.search(node.value))
    return any(namespaceish(child) for child in iter_children(node))


#: Resolves a name imported from another module of the project: the
#: defining module's resolver and the expression assigned to the name there.
Importer = Callable[[str], "tuple[Resolver, cst.BaseExpression] | None"]


class Resolver:
    """Resolves names to the literals they may hold, following scopes (and
    imports from the project's other modules, through ``importer``)."""

    def __init__(
        self, facts: ModuleFacts, key: str = "<module>", importer: Importer | None = None
    ) -> None:
        self.facts = facts
        self.key = key
        self.importer = importer
        self._binders: dict[tuple[int, str], Scope | None] = {}

    def imported(self, name: str) -> tuple[Resolver, cst.BaseExpression] | None:
        """The defining module's resolver and value of an imported module-level name."""
        if self.importer is None or name not in self.facts.imports:
            return None
        return self.importer(name)

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
        if isinstance(expr, cst.Subscript) and isinstance(expr.value, cst.Name):
            return self._item(expr, scope, depth)
        return None

    def _item(self, expr: cst.Subscript, scope: Scope, depth: int) -> Lit | None:
        """``BROKER[0]`` of a module-level tuple constant."""
        if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
            return None
        index = expr.slice[0].slice.value
        if not isinstance(index, cst.Integer):
            return None
        position = int(index.evaluated_value)
        assert isinstance(expr.value, cst.Name)
        found = self.tuple_value(expr.value.value, scope)
        if found is None:
            return None
        owner, value = found
        if not isinstance(value, cst.Tuple | cst.List) or position >= len(value.elements):
            return None
        element = value.elements[position].value
        result = owner.lit(element, owner.facts.scope, depth + 1)
        if result is None or result.kind != "literal":
            return result
        name = expr.value.value
        return replace(result, constant=name, name=name, module=owner.key, definition=element)

    def tuple_value(self, name: str, scope: Scope) -> tuple[Resolver, cst.BaseExpression] | None:
        """The resolver and assigned value of a module-level name (here or imported)."""
        binder = self.binder(name, scope)
        if binder is None or binder.role != "module":
            return None
        if name in self.facts.imports:
            return self.imported(name)
        bindings = binder.bindings.get(name, [])
        if len(bindings) != 1 or bindings[0].value is None:
            return None
        return self, bindings[0].value

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
        if binder.role == "module" and name in self.facts.imports and len(bindings) == 1:
            source = self.imported(name)
            if source is None:
                return None
            other, value = source
            imported = other.lit(value, other.facts.scope, depth + 1)
            if imported is None:
                return None
            if imported.kind == "literal" and imported.constant is None:
                imported = replace(
                    imported, constant=name, name=name, module=other.key, definition=value
                )
            return imported
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
        definition: cst.CSTNode | None = (
            bindings[0].value if constant and len(bindings) == 1 else None
        )
        module = self.key if constant else None
        if (
            constant is None
            and len(found) == 1
            and bindings[0].iterable is not None
            and found[0].constant is not None
        ):
            # A loop variable over a constant: its values are the constant's.
            constant, module, definition = found[0].constant, found[0].module, found[0].definition
        return Lit(
            kind,
            tuple(values) if kind == "literal" else (),
            constant=constant,
            name=name,
            module=module,
            definition=definition,
        )

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
            if binder.role == "module" and iterable.value in self.facts.imports:
                source = self.imported(iterable.value)
                if source is None:
                    return None
                other, value = source
                result = other.elements(value, other.facts.scope, path, depth + 1)
                return _of_constant(result, iterable.value, other.key, value)
            if len(bindings) != 1 or bindings[0].value is None:
                return None
            result = self.elements(bindings[0].value, binder, path, depth + 1)
            if binder.role == "module":
                return _of_constant(result, iterable.value, self.key, bindings[0].value)
            return result
        if isinstance(iterable, cst.BinaryOperation) and isinstance(iterable.operator, cst.Add):
            parts = [
                self.elements(iterable.left, scope, path, depth + 1),
                self.elements(iterable.right, scope, path, depth + 1),
            ]
            if any(part is None for part in parts):
                return None
            merged: list[str | int] = []
            for part in parts:
                assert part is not None
                if part.kind != "literal":
                    return Lit("built")
                merged += [v for v in part.values if v not in merged]
            return Lit("literal", tuple(merged))
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
