"""Longest-first scheduling: the durations file, the ordering, and a real -n 2 run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from parallel_isolation.session.context import WorkerContext
from parallel_isolation.session.schedule import (
    DurationsError,
    base_nodeid,
    load_durations,
    longest_first,
)


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_load_durations_reads_seconds(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.json", {"a.py::t1": 1.5, "a.py::t2": 0})
    assert load_durations(path) == {"a.py::t1": 1.5, "a.py::t2": 0.0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist.*nox -s durations"),
        ("{not json", "not readable JSON"),
        ([1, 2], "must hold a JSON object"),
        ({"a.py::t": "slow"}, "'a.py::t' has 'slow'"),
        ({"a.py::t": -1}, "not seconds >= 0"),
        ({"a.py::t": True}, "has True"),
    ],
    ids=["missing", "bad-json", "not-object", "text", "negative", "bool"],
)
def test_load_durations_rejects_bad_files(tmp_path: Path, content: Any, message: str) -> None:
    path = tmp_path / "d.json"
    if content is not None:
        _write(path, content)
    with pytest.raises(DurationsError, match=message):
        load_durations(path)


def _order(names: list[str], durations: dict[str, float], groups: dict[str, str]) -> list[str]:
    return longest_first(names, durations, nodeid=lambda n: n, group=groups.get)


def test_longest_units_come_first_and_ties_keep_order() -> None:
    durations = {"a": 0.1, "b": 3.0, "c": 1.0, "d": 1.0}
    assert _order(["a", "b", "c", "d"], durations, {}) == ["b", "c", "d", "a"]


def test_a_group_counts_as_the_sum_of_its_tests_and_stays_together() -> None:
    durations = {"g1": 0.8, "x": 1.0, "g2": 0.8, "y": 1.5}
    order = _order(["g1", "x", "g2", "y"], durations, {"g1": "stack", "g2": "stack"})
    assert order == ["g1", "g2", "y", "x"]


def test_unknown_tests_count_as_the_median_known_test() -> None:
    durations = {"a": 0.1, "b": 2.0, "c": 1.0}
    assert _order(["a", "new", "b", "c"], durations, {}) == ["b", "new", "c", "a"]


def test_without_any_known_duration_the_order_is_kept() -> None:
    assert _order(["c", "a", "b"], {}, {}) == ["c", "a", "b"]


@dataclass
class _Marker:
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Item:
    nodeid: str
    marker: _Marker | None = None

    def get_closest_marker(self, name: str) -> _Marker | None:
        return self.marker if name == "xdist_group" else None


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (_Item("t.py::a"), "t.py::a"),
        (_Item("t.py::a@stack", _Marker(("stack",))), "t.py::a"),
        (_Item("t.py::a@stack", _Marker(kwargs={"name": "stack"})), "t.py::a"),
        (_Item("t.py::a", _Marker(("stack",))), "t.py::a"),  # suffix not added (yet)
        (_Item("t.py::a@other", _Marker(("stack",))), "t.py::a@other"),
    ],
    ids=["plain", "group-arg", "group-kwarg", "no-suffix", "foreign-suffix"],
)
def test_base_nodeid_drops_only_the_group_suffix(item: _Item, expected: str) -> None:
    assert base_nodeid(item) == expected


INNER = """
import json, os, time, pytest

def _record(request):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
    with open(os.environ["ORDER_FILE"], "a") as handle:
        handle.write(json.dumps({"test": request.node.name, "worker": worker,
                                 "t": time.monotonic()}) + "\\n")

@pytest.mark.parametrize("n", range(6))
def test_short(n, request):
    _record(request)

def test_long(request):
    _record(request)

@pytest.mark.xdist_group("pair")
@pytest.mark.parametrize("n", range(2))
def test_grouped(n, request):
    _record(request)
"""


def _run_distributed(pytester: pytest.Pytester, base: int, *extra: str) -> pytest.RunResult:
    """The inner project under -n 2 --dist loadgroup, sorted by durations.json."""
    return pytester.runpytest_subprocess(
        "-n",
        "2",
        "--dist",
        "loadgroup",
        "-p",
        "no:randomly",
        f"--isolation-port-base={base}",
        "--isolation-durations",
        "durations.json",
        *extra,
    )


def test_a_run_starts_the_longest_units_first(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, isolation_worker: WorkerContext
) -> None:
    pytester.makepyfile(test_inner=INNER)
    durations = {f"test_inner.py::test_short[{n}]": 0.01 for n in range(6)}
    durations |= {"test_inner.py::test_long": 5.0}
    durations |= {f"test_inner.py::test_grouped[{n}]": 1.0 for n in range(2)}
    _write(pytester.path / "durations.json", durations)
    order_file = pytester.path / "order.jsonl"
    monkeypatch.setenv("ORDER_FILE", str(order_file))
    base = 50400 + isolation_worker.identity.worker_number * 1000  # clear of test_plugin.py
    result = _run_distributed(pytester, base)
    result.assert_outcomes(passed=9)
    records = [json.loads(line) for line in order_file.read_text().splitlines()]
    firsts = {}
    for record in sorted(records, key=lambda r: r["t"]):
        firsts.setdefault(record["worker"], record["test"])
    # Each worker began with one of the two longest units, not with test_short[0].
    assert sorted(firsts.values()) == ["test_grouped[0]", "test_long"]
    pair = {r["worker"] for r in records if r["test"].startswith("test_grouped")}
    assert len(pair) == 1


def test_a_bad_durations_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess("--isolation-durations", "nowhere.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*durations file*nowhere.json does not exist*"])


def test_serial_runs_keep_the_collection_order(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=INNER)
    _write(pytester.path / "durations.json", {"test_inner.py::test_long": 5.0})
    order_file = pytester.path / "order.jsonl"
    monkeypatch.setenv("ORDER_FILE", str(order_file))
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:xdist", "--isolation-durations", "durations.json"
    )
    result.assert_outcomes(passed=9)
    names = [json.loads(line)["test"] for line in order_file.read_text().splitlines()]
    assert names[0] == "test_short[0]"
    assert names.index("test_long") == 6


def test_shards_still_split_the_suite_exactly(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, isolation_worker: WorkerContext
) -> None:
    pytester.makepyfile(test_inner=INNER)
    durations = {f"test_inner.py::test_short[{n}]": 0.01 * (n + 1) for n in range(6)}
    durations |= {"test_inner.py::test_long": 5.0}
    _write(pytester.path / "durations.json", durations)
    base = 50600 + isolation_worker.identity.worker_number * 1000
    ran: list[str] = []
    for group in ("1", "2"):
        order_file = pytester.path / f"order-{group}.jsonl"
        monkeypatch.setenv("ORDER_FILE", str(order_file))
        result = _run_distributed(
            pytester, base, "--splits", "2", "--group", group, "--durations-path", "durations.json"
        )
        assert result.ret == 0, result.stdout.str()
        ran += [json.loads(line)["test"] for line in order_file.read_text().splitlines()]
    assert sorted(ran) == sorted(
        [f"test_short[{n}]" for n in range(6)] + ["test_long", "test_grouped[0]", "test_grouped[1]"]
    )
