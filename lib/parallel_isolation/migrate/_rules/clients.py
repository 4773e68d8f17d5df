"""Client ids: PI110.

The broker keeps one session per client id: two workers connecting with the
same id kick each other off.  An id that already carries a unique part
(``uuid``, the pid, the worker id, ``client_id()``) is left alone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from parallel_isolation.migrate._builders import wrap_in
from parallel_isolation.migrate._facts import Scope
from parallel_isolation.migrate._sinks import Sink
from parallel_isolation.migrate._site import Site
from parallel_isolation.migrate._values import Lit

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["sink_site", "unique"]

_UNIQUE = re.compile(
    r"(?i)uuid|getpid|\bpid\b|worker|client_id\(|token_hex|token_urlsafe|random|"
    r"time\.time|monotonic|perf_counter|run_id|node\.name|nodeid|request\.node"
)


def unique(a: AnalysisView, sink: Sink) -> bool:
    """The id is built with a part that differs between workers (uuid, pid, worker id...)."""
    return bool(_UNIQUE.search(a.facts.module.code_for_node(sink.node)))


def sink_site(
    a: AnalysisView, sink: Sink, lit: Lit, scope: Scope, via: str | None, pure: bool
) -> None:
    if lit.kind == "literal" and (not lit.strings() or lit.strings() == ("",)):
        return
    if lit.kind == "built" and unique(a, sink):
        return
    where = f"{sink.label}" + (f" via {via}" if via else "")
    provider = a.provider(scope, "names")[0] or a.fixture_for(scope, "names")
    what = "built without a unique part" if lit.kind == "built" else lit.describe()
    hazard = None
    if lit.constant is not None and lit.kind == "literal":
        hazard = ("const", lit.module or a.path, lit.constant)
    a.add(
        Site(
            "PI110",
            sink.node,
            scope,
            f"fixed client id {what} in {where}; use {provider}.client_id(...)",
            need="names",
            build=wrap_in("client_id") if pure else None,
            manual=None if pure else f"{via} also uses the id for something else",
            hazard=hazard,
            origin=lit.definition,
        )
    )
