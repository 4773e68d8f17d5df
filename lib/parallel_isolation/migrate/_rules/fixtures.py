"""Fixtures that hide the plugin's: PI114."""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._facts import PLUGIN_FIXTURES
from parallel_isolation.migrate._site import Site

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["shadowed"]


def shadowed(a: AnalysisView) -> None:
    for scope in a.facts.functions.values():
        if scope.role == "fixture" and scope.name in PLUGIN_FIXTURES:
            node = scope.node
            assert isinstance(node, cst.FunctionDef)
            a.add(
                Site(
                    "PI114",
                    node.name,
                    scope,
                    f"fixture {scope.name} hides the plugin's per-worker {scope.name}; delete it",
                    manual="deleting a fixture is a person's decision",
                )
            )
