"""A hazard site: one node of one module, what it is, and how it is fixed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import libcst as cst

from parallel_isolation.migrate._builders import Builder
from parallel_isolation.migrate._facts import Scope

__all__ = ["Need", "Site"]

#: What a rewrite needs from pytest: the worker's broker, a names provider
#: (container, network and client names), or the test's topic namespace.
Need = Literal["broker", "names", "topics"]


@dataclass(eq=False)
class Site:
    """One hazard node; ``build`` rewrites it given the providing expression.

    ``hazard`` identifies the distinct hazard the site belongs to (the uses
    of one constant are one hazard; an inline literal is its own), and
    ``origin`` is where that hazard is defined (the constant's value).
    ``groups`` are the value groups the site belongs to: every site of a
    group is rewritten, or none is.  ``blocking`` is False for sites that
    do not have to change for the rest to work (a broker the suite starts
    itself, which the plugin's broker replaces): they are reported, but
    they never hold the other sites of their group back.
    """

    code: str
    node: cst.CSTNode
    scope: Scope
    message: str
    need: Need | None = None
    build: Builder | None = None
    report: bool = True
    manual: str | None = None
    autofix: bool | None = None
    hazard: tuple[object, ...] | None = None
    origin: cst.CSTNode | None = None
    groups: tuple[tuple[object, ...], ...] = ()
    blocking: bool = True
    #: Set by the project once every module is analysed: the final verdict.
    decided: tuple[bool, str] | None = None
    #: Rewrites other than replacing ``node`` (statements added next to it).
    extra: dict[int | str, object] = field(default_factory=dict)
