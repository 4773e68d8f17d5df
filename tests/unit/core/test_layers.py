"""The package's layers, as docs/architecture.md draws them, and no import cycle anywhere.

The import graph is built from the source with ``ast``: every import counts,
at module level, inside functions and under ``TYPE_CHECKING`` alike (an
import that only a type checker follows still ties the two modules together).
The layer table is read from docs/architecture.md, so the picture a newcomer
reads is the rule this test enforces.  The lint session runs this file.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "lib" / "parallel_isolation"
DOC = ROOT / "docs" / "architecture.md"
TOP = "parallel_isolation"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, modules: set[str] | None = None) -> set[str]:
    """Every package module ``path`` imports (absolute or relative, any depth).

    ``from pkg import mod`` counts as importing ``pkg.mod``, not ``pkg``'s own
    ``__init__`` (which Python runs first, but which the importer does not
    use), when ``pkg.mod`` is one of ``modules``.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == TOP)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != TOP:
                continue
            submodules = {f"{target}.{alias.name}" for alias in node.names}
            known = submodules & (modules or set())
            found.update(known)
            if modules is None or len(known) < len(submodules):
                found.add(target)
            if modules is None:
                found.update(submodules)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = {t for t in imports_of(path, name, set(files)) if t in files}
        graph[name] = targets - {name}
    return graph


def unit_of(module: str) -> str:
    """The layer unit: the subpackage (``parallel_isolation.mqtt``) or the top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def documented_layers() -> list[list[str]]:
    """The layer table of docs/architecture.md, top layer first."""
    text = DOC.read_text()
    match = re.search(r"<!-- layers:start -->(.*?)<!-- layers:end -->", text, re.S)
    assert match, f"{DOC} has no <!-- layers:start --> ... <!-- layers:end --> table"
    layers = []
    for row in match.group(1).strip().splitlines()[2:]:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        names = re.findall(r"`([\w.]+)`", cells[1])
        layers.append([f"{TOP}.{name}" for name in names])
    return layers


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (each list imports itself round):\n" + "\n".join(
        " -> ".join(component) for component in found
    )


def test_every_module_sits_in_a_documented_layer() -> None:
    placed = {unit for layer in documented_layers() for unit in layer}
    units = {unit_of(module) for module in import_graph()} - {TOP}
    missing = sorted(units - placed)
    assert not missing, f"not in the layer table of {DOC.name}: {missing}"
    stale = sorted(placed - units)
    assert not stale, f"the layer table of {DOC.name} names what does not exist: {stale}"


def test_imports_only_go_down_the_layers() -> None:
    rank = {unit: i for i, layer in enumerate(documented_layers()) for unit in layer}
    wrong: dict[str, set[str]] = defaultdict(set)
    for module, targets in import_graph().items():
        source = unit_of(module)
        if source == TOP:
            continue  # the package's __init__ re-exports the public API from any layer
        for target in targets:
            unit = unit_of(target)
            if unit in (source, TOP):
                continue
            if rank[unit] <= rank[source]:
                relation = "a sibling" if rank[unit] == rank[source] else "a higher layer"
                wrong[f"{module} -> {target}"].add(relation)
    assert not wrong, "imports against the layers:\n" + "\n".join(
        f"{edge} ({', '.join(sorted(why))})" for edge, why in sorted(wrong.items())
    )


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
    ids=["two", "three and a spectator", "none"],
)
def test_cycle_finder(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


def test_relative_and_from_package_imports_are_seen(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from parallel_isolation.mqtt import spy\n"
        "def f():\n    from .topics import X\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import parallel_isolation.session.context\n"
    )
    found = imports_of(source, "parallel_isolation.mqtt.client")
    assert {
        "parallel_isolation.mqtt.spy",
        "parallel_isolation.mqtt.topics",
        "parallel_isolation.session.context",
    } <= found
