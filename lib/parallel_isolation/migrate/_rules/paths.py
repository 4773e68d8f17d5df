"""Shared temp paths: PI113 (a fixed path under /tmp, /var/tmp, /dev/shm)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._facts import Record, string_value
from parallel_isolation.migrate._site import Site

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["on_string"]

_TMP_PREFIXES = ("/tmp/", "/var/tmp/", "/dev/shm/")
_UNIQUE = re.compile(r"(?i)pid|uuid|worker|run_id|token|mkdtemp|tmp_path|random")


def on_string(a: AnalysisView, record: Record) -> bool:
    node = record.node
    scope = record.scope
    if isinstance(node, cst.FormattedString):
        head = node.parts[0] if node.parts else None
        if (
            isinstance(head, cst.FormattedStringText)
            and head.value.startswith(_TMP_PREFIXES)
            and not _UNIQUE.search(a.facts.module.code_for_node(node))
        ):
            a.add(
                Site(
                    "PI113",
                    node,
                    scope,
                    f"fixed temp path {head.value!r}... shared by every worker; use tmp_path",
                    manual="choose tmp_path (per test), tmp_path_factory (per worker) or a lock",
                )
            )
            return True
        return False
    if not isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        return False
    value = string_value(node)
    if value is None:
        return False
    if value.startswith(_TMP_PREFIXES) and len(value) > len(value.split("/")[1]) + 2:
        a.add(
            Site(
                "PI113",
                node,
                scope,
                f"fixed temp path {value!r} shared by every worker; use tmp_path",
                manual="choose tmp_path (per test), tmp_path_factory (per worker) or a lock",
            )
        )
        return True
    return False
