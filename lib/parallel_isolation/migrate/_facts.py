"""First pass over a module: scopes, bindings, roles, references, imports.

One traversal records everything the hazard rules and the codemod commands
need later: every function's role (test, fixture and its scope, helper,
method, ...), what each name is bound to in each scope (so that a name can be
resolved to the string literals it may hold), every call, dict, comparison,
string and name in order with the scope it appears in.  No rule runs here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import libcst as cst

from parallel_isolation.migrate._walk import Walker

__all__ = [
    "FIXTURE_PARAMETERS",
    "PLUGIN_FIXTURES",
    "Binding",
    "ClassInfo",
    "ImportRef",
    "ModuleFacts",
    "Record",
    "Scope",
    "collect_facts",
    "dotted",
    "is_namespace_call",
    "is_suppressed",
    "last_name",
    "string_value",
    "suppressions",
]

#: Fixtures the codemod inserts, in the order it adds them.
FIXTURE_PARAMETERS = ("mqtt_broker", "parallel_test_context", "isolation_worker", "topic_namespace")
#: Every fixture the plugin provides (a module defining one of these shadows it).
PLUGIN_FIXTURES = (*FIXTURE_PARAMETERS, "mqtt_client", "wait_for_message")

Role = Literal[
    "module", "class", "test", "fixture", "helper", "method", "unittest", "setup", "hook", "nested"
]

_SETUP_NAMES = frozenset(
    {
        "setup_method",
        "teardown_method",
        "setup_class",
        "teardown_class",
        "setup_module",
        "teardown_module",
        "setup_function",
        "teardown_function",
        "setup",
        "teardown",
        "setUp",
        "tearDown",
        "setUpClass",
        "tearDownClass",
        "setUpModule",
        "tearDownModule",
        "asyncSetUp",
        "asyncTearDown",
    }
)
_UNITTEST_BASES = frozenset({"TestCase", "IsolatedAsyncioTestCase", "AsyncTestCase"})
_NAMESPACED_FACTORIES = frozenset({"mqtt_client", "connect_client", "NamespacedClient"})
_NAMESPACED_WAITS = frozenset({"wait_for", "wait_for_message"})
#: Client libraries whose clients publish topics as given.
RAW_MQTT_LIBRARIES = ("paho", "aiomqtt", "asyncio_mqtt", "gmqtt", "hbmqtt", "amqtt.client")


def dotted(expr: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        head = dotted(expr.value)
        return None if head is None else f"{head}.{expr.attr.value}"
    return None


def last_name(expr: cst.BaseExpression) -> str | None:
    """The last identifier of a callee: ``run`` for ``docker.from_env().containers.run``."""
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    return None


def is_namespace_call(call: cst.Call) -> bool:
    """``topic_namespace.topic(...)`` or ``topic_namespace.filter(...)``."""
    func = call.func
    return (
        isinstance(func, cst.Attribute)
        and func.attr.value in ("topic", "filter")
        and last_name(func.value) == "topic_namespace"
    )


def string_value(expr: cst.BaseExpression) -> str | None:
    """The value of a plain (non-bytes, non-f) string literal, else None."""
    if isinstance(expr, cst.SimpleString):
        raw = expr.value
        quote = raw[0]
        if quote in "'\"" and "\\" not in raw:
            width = 3 if raw.startswith(quote * 3) and len(raw) >= 6 else 1
            return raw[width:-width]
    if isinstance(expr, cst.SimpleString | cst.ConcatenatedString):
        try:
            value = expr.evaluated_value
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, str) else None
    return None


@dataclass(frozen=True, eq=False)
class Binding:
    """One way a name gets a value: an assignment or a ``for`` target.

    ``value`` is the assigned expression; for a loop variable ``iterable`` is
    what is iterated and ``path`` the position of the name inside the target
    tuple (``for a, b in x`` binds ``b`` at ``(1,)``).  Both None: unknown.
    """

    value: cst.BaseExpression | None = None
    iterable: cst.BaseExpression | None = None
    path: tuple[int, ...] = ()


@dataclass(frozen=True)
class ImportRef:
    """Where an imported name comes from: ``from module import name`` (``name``
    None for ``import module``); ``level`` counts the leading dots."""

    module: str
    name: str | None
    level: int = 0


@dataclass(eq=False)
class ClassInfo:
    node: cst.ClassDef
    name: str
    is_unittest: bool
    is_test_class: bool
    top_level: bool
    bases: tuple[str, ...]
    methods: dict[str, Scope] = field(default_factory=dict)
    #: ``self.<attr>`` holding a NamespacedClient / a raw client library's client.
    namespaced_attrs: set[str] = field(default_factory=set)
    raw_attrs: set[str] = field(default_factory=set)


@dataclass(eq=False)
class Scope:
    """The module, a class body or a function (``def`` or ``lambda``)."""

    role: Role
    name: str
    node: cst.CSTNode | None
    parent: Scope | None = None
    cls: ClassInfo | None = None
    fixture_scope: str = "function"
    params: list[str] = field(default_factory=list)
    kwonly: list[str] = field(default_factory=list)
    star: str | None = None
    kwstar: str | None = None
    has_positional_defaults: bool = False
    annotated: bool = False
    is_static: bool = False
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    uses: dict[str, list[cst.Name]] = field(default_factory=dict)
    parametrized: dict[str, tuple[str, ...]] = field(default_factory=dict)
    namespaced: set[str] = field(default_factory=set)
    raw_clients: set[str] = field(default_factory=set)
    ns_messages: set[str] = field(default_factory=set)
    loop_depth: int = 0
    #: The loops (``for``/``while``) open at the current point of the walk.
    loops: list[cst.CSTNode] = field(default_factory=list)

    @property
    def is_function(self) -> bool:
        return self.role not in ("module", "class")

    @property
    def qualname(self) -> str:
        if self.cls is not None and self.role != "nested":
            return f"{self.cls.name}.{self.name}"
        return self.name

    def all_params(self) -> list[str]:
        names = [*self.params, *self.kwonly]
        names += [n for n in (self.star, self.kwstar) if n]
        return names

    def binds(self, name: str) -> bool:
        return name in self.bindings or name in self.all_params()

    def function_chain(self) -> Iterator[Scope]:
        """This scope and the enclosing function scopes (class bodies skipped)."""
        scope: Scope | None = self
        while scope is not None:
            if scope.is_function:
                yield scope
            scope = scope.parent

    def outermost_function(self) -> Scope | None:
        """The nearest enclosing scope that is not a nested function."""
        for scope in self.function_chain():
            if scope.role != "nested":
                return scope
        return None


@dataclass(frozen=True, eq=False)
class Record:
    """A node of interest and where it appeared."""

    node: cst.CSTNode
    scope: Scope
    loop_depth: int = 0
    in_fstring: bool = False
    in_annotation: bool = False
    #: Inside ``if __name__ == "__main__":`` (code that never runs under pytest).
    in_main: bool = False
    #: The innermost ``for``/``while`` of the same function around the node.
    loop: cst.CSTNode | None = None


@dataclass(eq=False)
class ModuleFacts:
    module: cst.Module
    scope: Scope
    parents: dict[int, cst.CSTNode] = field(default_factory=dict)
    functions: dict[int, Scope] = field(default_factory=dict)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    #: Local names bound by imports, and where they come from.
    imports: dict[str, ImportRef] = field(default_factory=dict)
    #: Top-level ``if __name__ == "__main__":`` statements.
    main_blocks: list[cst.If] = field(default_factory=list)
    #: The module imports an MQTT client library (paho, aiomqtt, gmqtt, ...):
    #: it can make clients that do not namespace topics.
    uses_raw_mqtt: bool = False
    calls: list[Record] = field(default_factory=list)
    dicts: list[Record] = field(default_factory=list)
    comparisons: list[Record] = field(default_factory=list)
    strings: list[Record] = field(default_factory=list)
    integers: list[Record] = field(default_factory=list)
    names: list[Record] = field(default_factory=list)
    attributes: list[Record] = field(default_factory=list)
    assigns: list[tuple[cst.BaseExpression, cst.BaseExpression, Scope]] = field(
        default_factory=list
    )
    loops: list[Record] = field(default_factory=list)
    docstrings: set[int] = field(default_factory=set)
    call_funcs: set[int] = field(default_factory=set)
    module_top: dict[int, cst.BaseStatement] = field(default_factory=dict)

    def qualify(self, expr: cst.BaseExpression) -> str | None:
        """The dotted name with import aliases resolved (``mqtt.Client`` -> ``paho...``)."""
        name = dotted(expr)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        full = self.aliases.get(head, head)
        return f"{full}.{rest}" if rest else full

    def paths_to(self, targets: set[int]) -> set[int]:
        """Ids of ``targets`` and of all their ancestors."""
        found: set[int] = set()
        for target in targets:
            key = target
            while key not in found:
                found.add(key)
                parent = self.parents.get(key)
                if parent is None:
                    break
                key = id(parent)
        return found

    def module_functions(self) -> dict[str, Scope]:
        return {
            scope.name: scope
            for scope in self.functions.values()
            if scope.parent is self.scope and isinstance(scope.node, cst.FunctionDef)
        }


_SUPPRESS = re.compile(r"#\s*isolation:\s*ignore(?:\[(?P<codes>[A-Z0-9, ]+)\])?")


Suppressions = dict[int, frozenset[str]]


def is_suppressed(suppressed: Suppressions, line: int, code: str) -> bool:
    """``# isolation: ignore`` or ``# isolation: ignore[CODE]`` on the line."""
    codes = suppressed.get(line)
    return codes is not None and (not codes or code in codes)


def suppressions(code: str) -> Suppressions:
    """``# isolation: ignore[PI112]`` comments by line; an empty set means every code."""
    found: dict[int, frozenset[str]] = {}
    if "isolation:" not in code:
        return found
    for number, line in enumerate(code.splitlines(), start=1):
        match = _SUPPRESS.search(line)
        if match:
            codes = match.group("codes")
            found[number] = frozenset(c.strip() for c in codes.split(",")) if codes else frozenset()
    return found


def _decorator_names(node: cst.FunctionDef) -> list[tuple[str, cst.Decorator]]:
    names = []
    for decorator in node.decorators:
        expr = decorator.decorator
        target = expr.func if isinstance(expr, cst.Call) else expr
        name = dotted(target)
        if name:
            names.append((name, decorator))
    return names


def _fixture_scope(decorator: cst.Decorator) -> str:
    expr = decorator.decorator
    if not isinstance(expr, cst.Call):
        return "function"
    for arg in expr.args:
        if arg.keyword is not None and arg.keyword.value == "scope":
            value = string_value(arg.value)
            return value if value is not None else "dynamic"
    return "function"


def _parametrized(node: cst.FunctionDef) -> dict[str, tuple[str, ...]]:
    """Parameters of ``@pytest.mark.parametrize`` whose every value is a string literal."""
    found: dict[str, tuple[str, ...]] = {}
    for name, decorator in _decorator_names(node):
        expr = decorator.decorator
        if not name.endswith("parametrize") or not isinstance(expr, cst.Call):
            continue
        if len(expr.args) < 2:
            continue
        names_value = expr.args[0].value
        argnames: list[str] = []
        raw = string_value(names_value)
        if raw is not None:
            argnames = [n.strip() for n in raw.split(",") if n.strip()]
        elif isinstance(names_value, cst.List | cst.Tuple):
            argnames = [string_value(e.value) or "" for e in names_value.elements]
        values = expr.args[1].value
        if not isinstance(values, cst.List | cst.Tuple) or not argnames:
            continue
        columns: list[list[str] | None] = [[] for _ in argnames]
        for element in values.elements:
            row: Sequence[cst.BaseExpression]
            item = element.value
            if len(argnames) == 1:
                row = [item]
            elif isinstance(item, cst.Tuple | cst.List):
                row = [e.value for e in item.elements]
            else:
                columns = [None] * len(argnames)
                break
            for index, column in enumerate(columns):
                text = string_value(row[index]) if index < len(row) else None
                if column is None or text is None:
                    columns[index] = None
                else:
                    column.append(text)
        for argname, column in zip(argnames, columns, strict=True):
            if column:
                found[argname] = tuple(column)
    return found


def _target_names(
    target: cst.BaseExpression, path: tuple[int, ...] = ()
) -> Iterator[tuple[cst.Name, tuple[int, ...]]]:
    """Names bound by an assignment target, with their position in nested tuples."""
    if isinstance(target, cst.Name):
        yield target, path
    elif isinstance(target, cst.Tuple | cst.List):
        for index, element in enumerate(target.elements):
            inner = element.value
            if isinstance(element, cst.StarredElement):
                yield from _target_names(inner, (*path, -1))
            else:
                yield from _target_names(inner, (*path, index))
    elif isinstance(target, cst.StarredElement):
        yield from _target_names(target.value, (*path, -1))


def _docstring(
    body: Sequence[cst.BaseStatement] | Sequence[cst.BaseSmallStatement],
) -> cst.CSTNode | None:
    if not body:
        return None
    first = body[0]
    if isinstance(first, cst.SimpleStatementLine) and len(first.body) == 1:
        expr = first.body[0]
        if isinstance(expr, cst.Expr) and isinstance(
            expr.value, cst.SimpleString | cst.ConcatenatedString
        ):
            return expr.value
    return None


class _FactsVisitor(Walker):
    def __init__(self, module: cst.Module) -> None:
        super().__init__()
        root = Scope(role="module", name="<module>", node=module)
        self.facts = ModuleFacts(module=module, scope=root)
        self.stack: list[Scope] = [root]
        self.non_loads: set[int] = set()
        self.fstring = 0
        self.annotation = 0
        self.class_stack: list[ClassInfo] = []
        self._pending: Scope | None = None
        self.main = 0

    # -- helpers ---------------------------------------------------------

    @property
    def scope(self) -> Scope:
        return self.stack[-1]

    def _record(self, node: cst.CSTNode) -> Record:
        scope = self.scope
        return Record(
            node,
            scope,
            loop_depth=scope.loop_depth,
            in_fstring=self.fstring > 0,
            in_annotation=self.annotation > 0,
            in_main=self.main > 0,
            loop=scope.loops[-1] if scope.loops else None,
        )

    def _bind(self, name: cst.Name, binding: Binding) -> None:
        self.non_loads.add(id(name))
        self.scope.bindings.setdefault(name.value, []).append(binding)

    def _bind_target(
        self, target: cst.BaseExpression, value: cst.BaseExpression | None, loop: bool = False
    ) -> None:
        for name, path in _target_names(target):
            if loop:
                self._bind(name, Binding(iterable=value, path=path))
            elif path == ():
                self._bind(name, Binding(value=value))
            else:
                self._bind(name, Binding(value=_element_at(value, path)))

    # -- module, imports ---------------------------------------------------

    def visit_Module(self, node: cst.Module) -> None:
        doc = _docstring(node.body)
        if doc is not None:
            self.facts.docstrings.add(id(doc))

    def visit_Import(self, node: cst.Import) -> bool:
        for alias in node.names:
            full = dotted(alias.name) or ""
            if full.startswith(RAW_MQTT_LIBRARIES):
                self.facts.uses_raw_mqtt = True
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
                self.facts.aliases[local] = full
                target = full
            else:
                local = full.split(".")[0]
                target = local
            if self.scope.role == "module":
                self.facts.imports[local] = ImportRef(target, None)
            self.scope.bindings.setdefault(local, []).append(Binding())
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        module = dotted(node.module) if node.module is not None else ""
        module = module or ""
        if module.startswith(RAW_MQTT_LIBRARIES):
            self.facts.uses_raw_mqtt = True
        if isinstance(node.names, cst.ImportStar):
            return False
        for alias in node.names:
            name = dotted(alias.name) or ""
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            if not node.relative:
                self.facts.aliases[local] = f"{module}.{name}" if module else name
            if self.scope.role == "module":
                self.facts.imports[local] = ImportRef(module, name, len(node.relative))
            self.scope.bindings.setdefault(local, []).append(Binding())
        return False

    # -- classes and functions ----------------------------------------------

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.non_loads.add(id(node.name))
        bases = tuple(
            (dotted(arg.value) or "").split(".")[-1] for arg in node.bases if arg.keyword is None
        )
        info = ClassInfo(
            node=node,
            name=node.name.value,
            is_unittest=any(base in _UNITTEST_BASES for base in bases),
            is_test_class=node.name.value.startswith("Test"),
            top_level=self.scope.role == "module",
            bases=bases,
        )
        if info.top_level:
            self.facts.classes[info.name] = info
        self.scope.bindings.setdefault(info.name, []).append(Binding())
        self.class_stack.append(info)
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        doc = _docstring(body)
        if doc is not None:
            self.facts.docstrings.add(id(doc))

    def visit_ClassDef_body(self, node: cst.ClassDef) -> None:
        info = self.class_stack[-1]
        self.stack.append(
            Scope(role="class", name=info.name, node=node, parent=self.scope, cls=info)
        )

    def leave_ClassDef_body(self, node: cst.ClassDef) -> None:
        self.stack.pop()

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.class_stack.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.non_loads.add(id(node.name))
        enclosing = self.scope
        name = node.name.value
        decorators = _decorator_names(node)
        fixture = next((d for n, d in decorators if n.split(".")[-1] == "fixture"), None)
        cls = enclosing.cls if enclosing.role == "class" else None
        role: Role
        fixture_scope = "function"
        if enclosing.is_function:
            role = "nested"
        elif fixture is not None:
            role = "fixture"
            fixture_scope = _fixture_scope(fixture)
        elif cls is not None:
            if cls.is_unittest:
                role = "unittest"
            elif name in _SETUP_NAMES:
                role = "setup"
            elif name.startswith("test") and cls.is_test_class:
                role = "test"
            else:
                role = "method"
        elif name.startswith("pytest_"):
            role = "hook"
        elif name.startswith("test"):
            role = "test"
        elif name in _SETUP_NAMES:
            role = "setup"
        else:
            role = "helper"
        if cls is not None and cls.is_unittest and role == "fixture":
            role = "unittest"
        scope = Scope(
            role=role,
            name=name,
            node=node,
            parent=enclosing,
            cls=cls,
            fixture_scope=fixture_scope,
            is_static=any(n.split(".")[-1] == "staticmethod" for n, _ in decorators),
        )
        _fill_params(scope, node.params)
        if node.returns is not None and not any(
            p.name.value not in ("self", "cls")
            for p in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params)
        ):
            scope.annotated = True  # only ``self`` and a return annotation: a typed method
        if role == "test":
            scope.parametrized = _parametrized(node)
        if cls is not None and not enclosing.is_function:
            cls.methods[name] = scope
        enclosing.bindings.setdefault(name, []).append(Binding())
        self.facts.functions[id(node)] = scope
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        doc = _docstring(body)
        if doc is not None:
            self.facts.docstrings.add(id(doc))
        self._pending = scope

    def visit_FunctionDef_body(self, node: cst.FunctionDef) -> None:
        self.stack.append(self.facts.functions[id(node)])

    def leave_FunctionDef_body(self, node: cst.FunctionDef) -> None:
        self.stack.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        scope = Scope(role="nested", name="<lambda>", node=node, parent=self.scope)
        _fill_params(scope, node.params)
        self.facts.functions[id(node)] = scope
        self._pending = scope

    def visit_Lambda_body(self, node: cst.Lambda) -> None:
        self.stack.append(self.facts.functions[id(node)])

    def leave_Lambda_body(self, node: cst.Lambda) -> None:
        self.stack.pop()

    def visit_Param(self, node: cst.Param) -> None:
        self.non_loads.add(id(node.name))
        annotation = node.annotation
        if annotation is not None and "NamespacedClient" in (dotted(annotation.annotation) or ""):
            scope = self.facts.functions.get(id(self._owner_of_params()))
            if scope is not None:
                scope.namespaced.add(node.name.value)

    def _owner_of_params(self) -> cst.CSTNode | None:
        return self._pending.node if self._pending is not None else None

    # -- bindings ------------------------------------------------------------

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind_target(target.target, node.value)
            self.facts.assigns.append((target.target, node.value, self.scope))
            self._note_namespaced(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bind_target(node.target, node.value)
        if node.value is not None:
            self.facts.assigns.append((node.target, node.value, self.scope))
            self._note_namespaced(node.target, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind_target(node.target, None)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind_target(node.target, node.value)

    def visit_For(self, node: cst.For) -> None:
        self._bind_target(node.target, node.iter, loop=True)
        self.facts.loops.append(self._record(node))
        self.scope.loop_depth += 1
        self.scope.loops.append(node)
        iterated = node.iter
        if (
            isinstance(iterated, cst.Call)
            and last_name(iterated.func) == "messages"
            and isinstance(node.target, cst.Name)
        ):
            self.scope.ns_messages.add(node.target.value)

    def leave_For(self, original_node: cst.For) -> None:
        self.scope.loop_depth -= 1
        self.scope.loops.pop()

    def visit_While(self, node: cst.While) -> None:
        self.scope.loop_depth += 1
        self.scope.loops.append(node)

    def leave_While(self, original_node: cst.While) -> None:
        self.scope.loop_depth -= 1
        self.scope.loops.pop()

    # -- ``if __name__ == "__main__":`` ------------------------------------------

    def visit_If(self, node: cst.If) -> None:
        if self.scope.role == "module" and _is_main_test(node.test):
            self.facts.main_blocks.append(node)
            self.main += 1

    def leave_If(self, original_node: cst.If) -> None:
        if self.facts.main_blocks and self.facts.main_blocks[-1] is original_node:
            self.main -= 1

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bind_target(node.target, None)

    def visit_ListComp(self, node: cst.ListComp) -> None:
        self.facts.loops.append(self._record(node))

    def visit_SetComp(self, node: cst.SetComp) -> None:
        self.facts.loops.append(self._record(node))

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> None:
        self.facts.loops.append(self._record(node))

    def visit_DictComp(self, node: cst.DictComp) -> None:
        self.facts.loops.append(self._record(node))

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind_target(node.asname.name, None)

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if node.name is not None:
            self._bind_target(node.name.name, None)

    def visit_Global(self, node: cst.Global) -> bool:
        return False

    def visit_Nonlocal(self, node: cst.Nonlocal) -> bool:
        return False

    def _note_namespaced(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        """Remember names (and ``self`` attributes) that hold a client of known kind."""
        namespaced = raw = False
        if isinstance(value, cst.Call):
            callee = last_name(value.func)
            namespaced = callee in _NAMESPACED_FACTORIES
            raw = callee in ("Client", "MQTTClient")
            if callee in _NAMESPACED_WAITS and isinstance(target, cst.Name):
                self.scope.ns_messages.add(target.value)
        elif isinstance(value, cst.Name):
            namespaced = any(value.value in s.namespaced for s in self.scope.function_chain())
        if isinstance(target, cst.Name):
            if namespaced:
                self.scope.namespaced.add(target.value)
            elif raw:
                self.scope.raw_clients.add(target.value)
        elif (
            isinstance(target, cst.Attribute)
            and isinstance(target.value, cst.Name)
            and target.value.value == "self"
        ):
            owner = self.scope.outermost_function()
            if owner is not None and owner.cls is not None:
                if namespaced:
                    owner.cls.namespaced_attrs.add(target.attr.value)
                elif raw:
                    owner.cls.raw_attrs.add(target.attr.value)

    # -- records ---------------------------------------------------------------

    def visit_Call(self, node: cst.Call) -> None:
        self.facts.calls.append(self._record(node))
        self.facts.call_funcs.add(id(node.func))
        if last_name(node.func) in _NAMESPACED_WAITS:
            for arg in node.args:
                if isinstance(arg.value, cst.Lambda):
                    for param in arg.value.params.params:
                        self.scope.ns_messages.add(param.name.value)

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.non_loads.add(id(node.keyword))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.non_loads.add(id(node.attr))
        self.facts.attributes.append(self._record(node))

    def visit_Dict(self, node: cst.Dict) -> None:
        self.facts.dicts.append(self._record(node))

    def visit_Comparison(self, node: cst.Comparison) -> None:
        self.facts.comparisons.append(self._record(node))

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if id(node) not in self.facts.docstrings:
            self.facts.strings.append(self._record(node))

    def visit_ConcatenatedString(self, node: cst.ConcatenatedString) -> bool:
        if id(node) in self.facts.docstrings:
            return False
        self.facts.strings.append(self._record(node))
        return True

    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        self.facts.strings.append(self._record(node))
        self.fstring += 1

    def leave_FormattedString(self, original_node: cst.FormattedString) -> None:
        self.fstring -= 1

    def visit_Annotation(self, node: cst.Annotation) -> None:
        self.annotation += 1

    def leave_Annotation(self, original_node: cst.Annotation) -> None:
        self.annotation -= 1

    def visit_Integer(self, node: cst.Integer) -> None:
        self.facts.integers.append(self._record(node))

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) in self.non_loads:
            return
        record = self._record(node)
        self.facts.names.append(record)
        self.scope.uses.setdefault(node.value, []).append(node)


def _is_main_test(test: cst.BaseExpression) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return False
    target = test.comparisons[0]
    if not isinstance(target.operator, cst.Equal):
        return False
    sides = {dotted(test.left), dotted(target.comparator)}
    values = {string_value(test.left), string_value(target.comparator)}
    return "__name__" in sides and "__main__" in values


def _fill_params(scope: Scope, params: cst.Parameters) -> None:
    positional = [*params.posonly_params, *params.params]
    scope.params = [p.name.value for p in positional]
    scope.kwonly = [p.name.value for p in params.kwonly_params]
    if isinstance(params.star_arg, cst.Param):
        scope.star = params.star_arg.name.value
    if params.star_kwarg is not None:
        scope.kwstar = params.star_kwarg.name.value
    scope.has_positional_defaults = any(p.default is not None for p in positional)
    declared = [*positional, *params.kwonly_params]
    checked = [p for p in declared if p.name.value not in ("self", "cls")]
    scope.annotated = bool(checked) and all(p.annotation is not None for p in checked)


def _element_at(
    value: cst.BaseExpression | None, path: tuple[int, ...]
) -> cst.BaseExpression | None:
    for index in path:
        if not isinstance(value, cst.Tuple | cst.List) or index < 0:
            return None
        if index >= len(value.elements):
            return None
        element = value.elements[index]
        if isinstance(element, cst.StarredElement):
            return None
        value = element.value
    return value


def collect_facts(module: cst.Module) -> ModuleFacts:
    """Run the first pass over ``module`` (the same node objects are kept)."""
    visitor = _FactsVisitor(module)
    visitor.walk(module)
    facts = visitor.facts
    facts.parents = visitor.parents
    for statement in module.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                facts.module_top[id(small)] = statement
    return facts
