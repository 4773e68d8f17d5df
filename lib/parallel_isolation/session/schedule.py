"""Longest-first scheduling for ``--dist loadgroup`` from a durations file.

xdist hands work units (a test, or all tests of one ``xdist_group``) to the
workers in collection order and keeps up to three tests queued per worker.
With a few dozen tests of very different lengths on 12 workers that decides
the wall time: a 2 s test that happens to be collected late starts when the
others are nearly done.  Given per-test durations (pytest-split's
``.test_durations``, written by ``nox -s durations``), this module

* orders each worker's collection so that work units come longest first
  (:func:`longest_first`; every worker sorts the same way, so xdist still sees
  identical collections), and
* provides :class:`LongestFirstScheduling`, loadgroup that keeps that order
  (no reordering by group size) and queues only one test ahead per worker, so
  the remaining units go to whichever worker frees up first.

Serial runs keep pytest's order: module-scoped fixtures would otherwise be set
up more than once.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from xdist.scheduler import LoadGroupScheduling

from parallel_isolation.settings import SettingError, Settings

__all__ = [
    "DurationsError",
    "LongestFirstScheduling",
    "base_nodeid",
    "group_of",
    "load_durations",
    "longest_first",
    "order_worker_items",
    "wants_longest_first",
]

T = TypeVar("T")


class DurationsError(SettingError):
    """The durations file is missing or not a JSON object of seconds."""


def load_durations(path: Path) -> dict[str, float]:
    """Read ``{nodeid: seconds}``; errors name the file and what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"durations file {path} does not exist (write one with: nox -s durations)"
        raise DurationsError(msg) from None
    except (OSError, ValueError) as error:
        msg = f"durations file {path} is not readable JSON: {error}"
        raise DurationsError(msg) from None
    if not isinstance(data, dict):
        msg = f"durations file {path} must hold a JSON object of nodeid -> seconds"
        raise DurationsError(msg)
    durations: dict[str, float] = {}
    for nodeid, seconds in data.items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            msg = f"durations file {path}: {nodeid!r} has {seconds!r}, not seconds >= 0"
            raise DurationsError(msg)
        durations[str(nodeid)] = float(seconds)
    return durations


def longest_first(
    items: Sequence[T],
    durations: Mapping[str, float],
    *,
    nodeid: Callable[[T], str],
    group: Callable[[T], str | None],
) -> list[T]:
    """``items`` with work units ordered by expected duration, longest first.

    A unit is one ungrouped test, or every test of one group (kept together,
    in their original order).  Tests missing from ``durations`` count as the
    median known test; ties keep collection order.
    """
    known = [durations[nodeid(item)] for item in items if nodeid(item) in durations]
    default = statistics.median(known) if known else 0.0
    units: dict[str, list[T]] = {}
    for index, item in enumerate(items):
        name = group(item)
        key = f"group:{name}" if name is not None else f"test:{index}"
        units.setdefault(key, []).append(item)
    ordered = sorted(
        units.values(),
        key=lambda unit: -sum(durations.get(nodeid(item), default) for item in unit),
    )
    return [item for unit in ordered for item in unit]


def group_of(item: Any) -> str | None:
    """The ``xdist_group`` name of a pytest item, as loadgroup reads it."""
    marker = item.get_closest_marker("xdist_group")
    if marker is None:
        return None
    name = marker.args[0] if marker.args else marker.kwargs.get("name")
    return None if name is None else str(name)


def base_nodeid(item: Any) -> str:
    """The item's node id without the ``@group`` suffix xdist adds to grouped tests."""
    nodeid = str(item.nodeid)
    name = group_of(item)
    suffix = f"@{name}" if name is not None else ""
    return nodeid[: -len(suffix)] if suffix and nodeid.endswith(suffix) else nodeid


def wants_longest_first(settings: Settings, config: Any) -> bool:
    """The controller's decision: a durations file is set and ``--dist loadgroup`` is on."""
    return bool(settings.durations_file) and config.getvalue("dist") == "loadgroup"


def order_worker_items(durations_file: str | None, items: list[Any]) -> None:
    """Sort an xdist worker's collection longest first, in place (see the module doc)."""
    if not durations_file:
        return
    durations = load_durations(Path(durations_file))
    items[:] = longest_first(items, durations, nodeid=base_nodeid, group=group_of)


class LongestFirstScheduling(LoadGroupScheduling):  # type: ignore[misc]
    """loadgroup in the workers' order, one test queued ahead per worker."""

    def schedule(self) -> None:
        # The workers already sorted their collections longest first; xdist's
        # default would re-sort the units by their number of tests.
        self.config.option.loadscopereorder = False
        super().schedule()

    def _reschedule(self, node: Any) -> None:
        # xdist's worker runs a test only once it knows the next one, so "one
        # ahead" means two pending; xdist itself tops up at three.
        if node.shutting_down or not self.workqueue:
            super()._reschedule(node)
            return
        if self._pending_of(self.assigned_work[node]) > 1:
            return
        self._assign_work_unit(node)
