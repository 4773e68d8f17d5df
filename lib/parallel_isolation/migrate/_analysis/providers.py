"""Who can give a hazard site the fixture its rewrite needs.

- a test, or a fixture, takes the fixture as a parameter (a wider-scoped
  fixture gets names from ``isolation_worker``; it cannot have the test's
  topic namespace);
- a helper function, or a method called as ``self.method(...)``, takes it as
  a keyword-only parameter when every call of it, in any module of the
  project, comes from a place that can pass it on;
- a method of another class gets it through the constructor (stored on
  ``self``) when every ``Class(...)`` call can pass it on;
- a method of a ``unittest.TestCase`` gets it from an autouse fixture method
  the codemod adds to the class (``self.<fixture>``).

Calls inside ``if __name__ == "__main__":`` never block a rewrite: they are
reported as the one place a person has to pass the value by hand.  A reason
for *not* providing names the place that blocks (``file:line``), not the
chain of calls that leads there.
"""

from __future__ import annotations

import libcst as cst

from parallel_isolation.migrate._facts import Scope
from parallel_isolation.migrate._site import Need
from parallel_isolation.migrate._view import AnalysisView, CallSite, Uses

__all__ = ["INJECTED", "Providers"]

#: The fixture a class gets through its constructor (or a TestCase through
#: its autouse fixture method), by need: valid in every fixture scope for
#: broker and names.
INJECTED: dict[str, str] = {
    "broker": "mqtt_broker",
    "names": "isolation_worker",
    "topics": "topic_namespace",
}
_CLASS_LEVEL = frozenset(
    {
        "setUpClass",
        "tearDownClass",
        "setUpModule",
        "tearDownModule",
        "setup_class",
        "teardown_class",
    }
)


class _Line:
    """``file:line`` of a node, worked out only if a message uses it."""

    def __init__(self, analysis: AnalysisView, node: cst.CSTNode) -> None:
        self.analysis = analysis
        self.node = node

    def __format__(self, spec: str) -> str:
        return format(self.analysis.line_of(self.node), spec)

    def __str__(self) -> str:
        return self.analysis.line_of(self.node)


class Providers:
    """Provider decisions for the scopes of one module (memoised)."""

    def __init__(self, analysis: AnalysisView) -> None:
        self.analysis = analysis
        self._memo: dict[tuple[int, str], tuple[str | None, str]] = {}
        self._in_progress: set[tuple[int, str]] = set()
        self._uses: dict[tuple[int, str], Uses] = {}
        #: Classes that get fixtures through their constructor, and which.
        self.injected: dict[str, set[str]] = {}
        #: unittest classes that get an autouse fixture method, and which fixtures.
        self.autouse: dict[str, set[str]] = {}

    # -- which fixture ---------------------------------------------------------

    def fixture_for(self, scope: Scope, need: Need) -> str:
        top = scope.outermost_function()
        if need == "broker":
            return "mqtt_broker"
        if need == "topics":
            return "topic_namespace"
        if top is not None and top.role == "fixture" and top.fixture_scope != "function":
            return "isolation_worker"
        if top is not None and top.role == "unittest":
            return "parallel_test_context"
        return "parallel_test_context"

    def provider(self, scope: Scope, need: Need) -> tuple[str | None, str]:
        """The expression that provides ``need`` inside ``scope``, or None and why not."""
        fixture = self.fixture_for(scope, need)
        got, why = self.provide(scope, fixture)
        if got is not None:
            return got, why
        top = scope.outermost_function()
        if top is not None and top.role == "method" and top.cls is not None:
            injected = INJECTED[need]
            via, reason = self.inject(top, injected)
            if via is not None:
                return via, ""
            return None, why or reason
        return None, why

    def provide(self, scope: Scope, fixture: str) -> tuple[str | None, str]:
        """Whether ``fixture`` can be had inside ``scope``, as which expression."""
        top = scope.outermost_function()
        key = (id(top if top is not None else scope), fixture)
        if key in self._memo:
            return self._memo[key]
        if key in self._in_progress:
            return fixture, ""  # a recursion: decided by the other calls
        self._in_progress.add(key)
        try:
            result = self._provide(scope, fixture)
        finally:
            self._in_progress.discard(key)
        self._memo[key] = result
        return result

    def _provide(self, scope: Scope, fixture: str) -> tuple[str | None, str]:
        analysis = self.analysis
        top = scope.outermost_function()
        if top is None:
            where = "a class body" if scope.role == "class" else "module-level code"
            return None, f"{where} runs before any fixture exists"
        for candidate in scope.function_chain():
            if fixture in candidate.all_params():
                return fixture, ""
            if fixture in candidate.bindings:
                return None, (
                    f"{candidate.qualname} has a local variable named {fixture} "
                    f"({analysis.line_of(candidate.node or analysis.facts.module)})"
                )
            if candidate is top:
                break
        node = top.node if top.node is not None else analysis.facts.module
        here = _Line(analysis, node)
        if top.name == fixture and top.role == "fixture":
            return None, f"the fixture {fixture} cannot request itself ({here})"
        if top.role == "test":
            return fixture, ""
        if top.role == "fixture":
            if fixture in ("topic_namespace", "parallel_test_context") and (
                top.fixture_scope != "function"
            ):
                what = "topic namespace" if fixture == "topic_namespace" else "context"
                return None, (
                    f"the {top.fixture_scope}-scoped fixture {top.name} ({here}) outlives "
                    f"each test's {what}"
                )
            return fixture, ""
        if top.role == "unittest":
            if (
                top.name in _CLASS_LEVEL
                or top.is_static
                or top.cls is None
                or not top.cls.top_level
            ):
                return None, f"{top.qualname} ({here}) runs once per class, outside any test"
            if fixture in (
                "topic_namespace",
                "parallel_test_context",
                "mqtt_broker",
                "isolation_worker",
            ):
                self.autouse.setdefault(top.cls.name, set()).add(fixture)
                return f"self.{fixture}", ""
        if top.role in ("helper", "method"):
            uses = self.uses(top)
            if uses.other is not None:
                return None, uses.other
            for site in uses.calls:
                got, why = site.analysis.provide(site.record.scope, fixture)
                if got is None:
                    return None, why
            return fixture, ""
        reasons = {
            "setup": "setup/teardown methods cannot receive fixtures; use a fixture",
            "hook": "pytest hooks cannot receive fixtures",
        }
        reason = reasons.get(top.role, f"{top.role} functions cannot receive fixtures")
        return None, f"{top.qualname} ({here}): {reason}"

    def inject(self, method: Scope, fixture: str) -> tuple[str | None, str]:
        """``self.<fixture>`` for the methods of a class whose every construction
        can pass ``fixture`` to ``__init__``."""
        cls = method.cls
        assert cls is not None
        analysis = self.analysis
        if method.is_static or not cls.top_level or cls.is_unittest or cls.is_test_class:
            return None, ""
        init = cls.methods.get("__init__")
        if init is None and any(base not in ("", "object") for base in cls.bases):
            return None, f"{cls.name} inherits its constructor ({analysis.line_of(cls.node)})"
        uses = self.class_uses(cls.name)
        if uses.other is not None:
            return None, uses.other
        if not uses.calls:
            return None, f"{cls.name} is never constructed by the migrated code"
        for site in uses.calls:
            got, why = site.analysis.provide(site.record.scope, fixture)
            if got is None:
                return None, why
        self.injected.setdefault(cls.name, set()).add(fixture)
        return f"self.{fixture}", ""

    # -- uses of functions and classes across the project -----------------------

    def uses(self, function: Scope) -> Uses:
        """Every use of a helper or method, if they are all direct calls."""
        key = (id(function), "function")
        if key not in self._uses:
            self._uses[key] = self._function_uses(function)
        return self._uses[key]

    def class_uses(self, name: str) -> Uses:
        key = (0, f"class:{name}")
        if key not in self._uses:
            self._uses[key] = self._symbol_uses(name)
        return self._uses[key]

    def _function_uses(self, function: Scope) -> Uses:
        analysis = self.analysis
        facts = analysis.facts
        if not isinstance(function.node, cst.FunctionDef):
            return Uses(other=f"{function.qualname} is not a plain function")
        here = _Line(analysis, function.node)
        if function.cls is None:
            if function.parent is not facts.scope:
                return Uses(other=f"{function.qualname} ({here}) is nested in another function")
            uses = self._symbol_uses(function.name)
            if not uses.calls and uses.other is None:
                return Uses(other=f"{function.qualname} ({here}) is never called")
            return uses
        cls = function.cls
        if not cls.top_level or function.role != "method":
            return Uses(
                other=f"{function.qualname} ({here}) is not a method of a module-level class"
            )
        if function.name == "__init__":
            if any(cls.name in c.bases for c in facts.classes.values()):
                return Uses(other=f"{cls.name} ({here}) has subclasses")
            return self.class_uses(cls.name)
        if function.name.startswith("__"):
            return Uses(other=f"{function.qualname} ({here}) is called by Python itself")
        calls = {id(r.node.func): r for r in facts.calls if isinstance(r.node, cst.Call)}
        found: list[CallSite] = []
        for record in facts.attributes:
            attribute = record.node
            assert isinstance(attribute, cst.Attribute)
            if attribute.attr.value != function.name:
                continue
            call = calls.get(id(attribute))
            owner = record.scope.outermost_function()
            if (
                call is None
                or not isinstance(attribute.value, cst.Name)
                or attribute.value.value not in ("self", "cls")
                or owner is None
                or owner.cls is not cls
            ):
                return Uses(other=f"{function.qualname} is used at {analysis.line_of(attribute)}")
            found.append(CallSite(analysis, call))
        if not found:
            return Uses(other=f"{function.qualname} ({here}) is called from outside the class")
        return Uses(tuple(found))

    def _symbol_uses(self, name: str) -> Uses:
        """Uses of a module-level name of this module, here and in the modules importing it."""
        calls: list[CallSite] = []
        main: list[CallSite] = []
        for analysis, local in self._referrers(name):
            facts = analysis.facts
            call_of = {id(r.node.func): r for r in facts.calls if isinstance(r.node, cst.Call)}
            for record in facts.names:
                node = record.node
                assert isinstance(node, cst.Name)
                if node.value != local or record.in_annotation:
                    continue
                if analysis.resolver.binder(local, record.scope) is not facts.scope:
                    continue
                call = call_of.get(id(node))
                if call is None:
                    return Uses(
                        other=f"{name} is used other than by a call at {analysis.line_of(node)}"
                    )
                if record.in_main:
                    main.append(CallSite(analysis, call))
                    continue
                if record.scope.outermost_function() is None:
                    return Uses(
                        other=f"{name}() is called from module-level code at {analysis.line_of(node)}"
                    )
                calls.append(CallSite(analysis, call))
            for record in facts.attributes:
                attribute = record.node
                assert isinstance(attribute, cst.Attribute)
                if attribute.attr.value != name or not isinstance(attribute.value, cst.Name):
                    continue
                found = analysis.imported(attribute.value.value)
                if found is not None and found[0] is self.analysis and found[1] is None:
                    return Uses(
                        other=f"{name} is used as an attribute at {analysis.line_of(attribute)}"
                    )
        return Uses(tuple(calls), tuple(main))

    def _referrers(self, name: str) -> list[tuple[AnalysisView, str]]:
        """(analysis, local name) of this module and of every loaded module importing ``name``."""
        found: list[tuple[AnalysisView, str]] = [(self.analysis, name)]
        for other in self.analysis.loaded_analyses():
            if other is self.analysis:
                continue
            for local, ref in other.facts.imports.items():
                if ref.name != name and not ref.module.endswith(name):
                    continue
                resolved = other.imported(local)
                if resolved is not None and resolved[0] is self.analysis and resolved[1] == name:
                    found.append((other, local))
        return found
