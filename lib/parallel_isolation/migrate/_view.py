"""What the rules and the provider logic see of a module's analysis.

:class:`AnalysisView` is the interface :class:`~._analysis.FileAnalysis`
implements; the rule families and :mod:`._analysis.providers` are written
against it, so they never import the analysis that runs them (the package
has no import cycle, not even one only a type checker follows).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

import libcst as cst

from parallel_isolation.migrate._analysis.summaries import FunctionSummary
from parallel_isolation.migrate._facts import ModuleFacts, Record, Scope
from parallel_isolation.migrate._project import Module
from parallel_isolation.migrate._sinks import Sink
from parallel_isolation.migrate._site import Need, Site
from parallel_isolation.migrate._values import Resolver

__all__ = ["AnalysisView", "CallSite", "Uses"]


@dataclass(frozen=True, eq=False)
class CallSite:
    """A call of a function, in the module (analysis) where it is written."""

    analysis: AnalysisView
    record: Record

    @property
    def call(self) -> cst.Call:
        node = self.record.node
        assert isinstance(node, cst.Call)
        return node


@dataclass(frozen=True)
class Uses:
    """Every use of a function or class in the project's loaded modules.

    ``calls`` are direct calls from functions; ``main`` those in
    ``__main__`` blocks; ``other`` the first use that is not a call (or a
    call from module-level code), which rules the function out.
    """

    calls: tuple[CallSite, ...] = ()
    main: tuple[CallSite, ...] = ()
    other: str | None = None


class AnalysisView(Protocol):
    """One module's analysis, as the rules use it."""

    facts: ModuleFacts
    resolver: Resolver
    path: str
    module: Module
    prefix_env: str
    raw_messages: bool
    handled: set[int]
    broker_constants: dict[str, str]
    builtin: dict[int, list[Sink]]
    cache: dict[str, object]

    @property
    def sites(self) -> list[Site]: ...

    @property
    def code(self) -> str: ...

    # -- sites
    def add(self, site: Site) -> Site | None: ...

    def add_shared(self, site: Site) -> None: ...

    def sink_site(
        self, sink: Sink, scope: Scope, via: str | None = None, pure: bool = True
    ) -> None: ...

    def resolve_call(self, call: cst.Call, scope: Scope) -> FunctionSummary | None: ...

    def summary_flows(self, record: Record, summary: FunctionSummary) -> None: ...

    def fixable(self, site: Site) -> tuple[bool, str]: ...

    def locally_fixable(self, site: Site) -> tuple[bool, str]: ...

    # -- providers
    def fixture_for(self, scope: Scope, need: Need) -> str: ...

    def provider(self, scope: Scope, need: Need) -> tuple[str | None, str]: ...

    def provide(self, scope: Scope, fixture: str) -> tuple[str | None, str]: ...

    def uses(self, function: Scope) -> Uses: ...

    def class_uses(self, name: str) -> Uses: ...

    def receiver_kind(
        self, receiver: cst.BaseExpression, scope: Scope
    ) -> Literal["namespaced", "raw"] | None: ...

    # -- the project
    def imported(self, name: str) -> tuple[AnalysisView, str | None] | None: ...

    def imported_analyses(self) -> Iterator[AnalysisView]: ...

    def conftest_analyses(self) -> list[AnalysisView]: ...

    def loaded_analyses(self) -> list[AnalysisView]: ...

    # -- positions
    def position(self, node: cst.CSTNode) -> tuple[int, int]: ...

    def line_of(self, node: cst.CSTNode) -> str: ...

    def where(self, node: cst.CSTNode) -> str: ...

    def snippet(self, node: cst.CSTNode, width: int = 40) -> str: ...
