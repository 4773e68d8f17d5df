"""The five legacy integration files: every planted hazard is found, and
``tests/integration`` is the codemod's output modulo reviewed differences.

codemod(tests/legacy/X) is compared with tests/integration/X hunk by hunk
(``difflib`` opcodes, no context).  Every hunk must be explained by an entry
of ``expected_differences.toml`` (same removed and added lines, anywhere in
the file), and every entry must still match a hunk, so the list stays exact.

As a script this module helps to maintain those files::

    python tests/unit/migrate/test_legacy_migration.py generate   # write missing integration files
    python tests/unit/migrate/test_legacy_migration.py skeleton   # TOML for unexplained hunks
"""

from __future__ import annotations

import difflib
import functools
import shutil
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from parallel_isolation.migrate import MigrationReport, check_paths, migrate_paths

ROOT = Path(__file__).resolve().parents[3]
LEGACY = ROOT / "tests" / "legacy"
INTEGRATION = ROOT / "tests" / "integration"
DIFFERENCES = Path(__file__).with_name("expected_differences.toml")
FILES = (
    "test_integration_e2e_improved.py",
    "test_e2e_hardware_docker.py",
    "test_hardware_integration.py",
    "test_e2e_hardware_integration.py",
    "test_mqtt_optimized_example.py",
)

#: Every hazard planted in tests/legacy: (line, code) per file.
PLANTED = {
    # 32: LegacyBroker probes its own broker at LEGACY_HOST (the suite's own broker).
    "conftest.py": [
        (25, "PI101"), (26, "PI102"), (27, "PI113"), (32, "PI101"), (69, "PI114"), (84, "PI115"),
        (94, "PI112"),
    ],
    # One finding per name and constant, at its definition (the uses are listed under
    # it).  The stack's broker is a container of the module's own, published on the
    # fixed port 1883 (28, PI103): the Monitor connecting to it stays with it, and
    # the topics and client ids of that broker are its own business once its port is
    # the worker's, so they are not reported.
    "test_e2e_hardware_docker.py": [
        (25, "PI105"), (26, "PI104"), (27, "PI101"), (28, "PI102"), (28, "PI103"), (30, "PI104"),
        (71, "PI112"), (89, "PI112"), (107, "PI112"),
    ],
    "test_e2e_hardware_integration.py": [
        (22, "PI101"), (23, "PI102"), (50, "PI107"), (51, "PI112"), (79, "PI115"), (82, "PI110"),
        (87, "PI112"), (94, "PI110"), (100, "PI110"), (101, "PI107"), (111, "PI110"),
        (112, "PI107"), (114, "PI107"), (117, "PI112"), (123, "PI115"), (126, "PI110"),
        (133, "PI112"), (134, "PI110"), (135, "PI110"), (137, "PI107"), (149, "PI110"),
        (150, "PI107"), (152, "PI107"), (153, "PI112"), (160, "PI115"), (163, "PI110"),
        (170, "PI112"), (171, "PI110"), (174, "PI107"), (177, "PI107"),
    ],
    "test_hardware_integration.py": [
        (21, "PI101"), (22, "PI102"), (23, "PI113"), (24, "PI113"), (25, "PI113"), (91, "PI110"),
        (95, "PI107"), (96, "PI112"), (99, "PI107"),
    ],
    "test_integration_e2e_improved.py": [
        (22, "PI101"), (23, "PI102"), (42, "PI110"), (60, "PI112"), (105, "PI110"),
        *[(106, "PI107")] * 6,
        (114, "PI108"), (116, "PI108"), (123, "PI107"), (130, "PI108"), (133, "PI107"),
        (138, "PI107"), (140, "PI107"), (147, "PI107"), (149, "PI107"), (150, "PI107"),
        (156, "PI112"), (157, "PI107"), (163, "PI107"), (165, "PI112"), (166, "PI107"),
        (171, "PI108"), (173, "PI112"), (174, "PI107"), (174, "PI110"), (177, "PI108"),
        (184, "PI107"), (187, "PI107"), (188, "PI110"), (189, "PI112"), (190, "PI107"),
    ],
    "test_mqtt_optimized_example.py": [
        (19, "PI101"), (20, "PI102"), (22, "PI113"), (58, "PI112"), (69, "PI110"), (70, "PI110"),
        (72, "PI107"), (73, "PI107"), (75, "PI109"), (84, "PI110"), (85, "PI110"), (87, "PI107"),
        (89, "PI107"), (100, "PI110"), (101, "PI110"), (104, "PI107"), (105, "PI107"),
        (113, "PI110"), (114, "PI107"), (116, "PI110"), (118, "PI107"), (120, "PI109"),
        (129, "PI110"), (130, "PI107"), (131, "PI110"), (132, "PI107"), (135, "PI112"),
        (140, "PI109"), (148, "PI110"), (149, "PI110"), (151, "PI107"), (152, "PI107"),
        (153, "PI107"), (154, "PI107"),
    ],
}


@dataclass(frozen=True)
class Hunk:
    """One change between two versions of a file (removed lines, added lines)."""

    line: int
    removed: tuple[str, ...]
    added: tuple[str, ...]

    def toml(self, file: str) -> str:
        return (
            f'[[difference]]\nfile = "{file}"\n'
            f"# at line {self.line} of the codemod output\n"
            'why = "TODO: say why the integration file differs here"\n'
            f"remove = {_toml_text(self.removed)}\nadd = {_toml_text(self.added)}\n"
        )


def _toml_text(lines: tuple[str, ...]) -> str:
    if not lines:
        return '""'
    body = "\n".join(lines) + "\n"
    if "'''" not in body:
        return f"'''\n{body}'''"
    escaped = body.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'"""\n{escaped}"""'


def hunks(old: str, new: str) -> list[Hunk]:
    a, b = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [
        Hunk(i1 + 1, tuple(a[i1:i2]), tuple(b[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


@dataclass(frozen=True)
class Change:
    """One place of a hand edit: the lines removed and the lines added there."""

    removed: tuple[str, ...]
    added: tuple[str, ...]
    count: int | None = None

    def matches(self, hunk: Hunk) -> bool:
        return hunk.removed == self.removed and hunk.added == self.added


@dataclass(frozen=True)
class Difference:
    """One hand edit, with its reason: the places it changes (each an exact hunk)."""

    file: str
    why: str
    changes: tuple[Change, ...]

    def matches(self, hunk: Hunk) -> bool:
        return any(change.matches(hunk) for change in self.changes)


def _change(entry: dict[str, object], where: str) -> Change:
    unknown = set(entry) - {"remove", "add", "count"}
    if unknown:
        msg = f"{where}: unknown keys {sorted(unknown)}"
        raise ValueError(msg)
    count = entry.get("count")
    return Change(
        tuple(str(entry.get("remove", "")).splitlines()),
        tuple(str(entry.get("add", "")).splitlines()),
        count if isinstance(count, int) else None,
    )


def load_differences(path: Path = DIFFERENCES) -> list[Difference]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = []
    for index, entry in enumerate(data.get("difference", [])):
        where = f"{path.name} entry {index + 1}"
        unknown = set(entry) - {"file", "why", "remove", "add", "count", "hunk"}
        if unknown:
            msg = f"{where}: unknown keys {sorted(unknown)}"
            raise ValueError(msg)
        if entry.get("file") not in FILES:
            msg = f"{where}: file must be one of {FILES}, got {entry.get('file')!r}"
            raise ValueError(msg)
        why = str(entry.get("why", "")).strip()
        if not why or why.startswith("TODO"):
            msg = f"{where} ({entry['file']}): 'why' must explain the difference"
            raise ValueError(msg)
        if "hunk" in entry and ("remove" in entry or "add" in entry):
            msg = f"{where}: either remove/add or [[difference.hunk]] tables, not both"
            raise ValueError(msg)
        places = entry.get("hunk") or [
            {k: entry[k] for k in ("remove", "add", "count") if k in entry}
        ]
        changes = tuple(_change(place, f"{where} hunk {n + 1}") for n, place in enumerate(places))
        entries.append(Difference(entry["file"], why, changes))
    return entries


@functools.lru_cache(maxsize=1)
def _legacy_report() -> MigrationReport:
    return migrate_paths([LEGACY], diff=True, jobs=1)


def codemod_output(name: str) -> str:
    """What ``invoke migrate tests/legacy`` makes of tests/legacy/<name> (the whole
    directory is migrated together: the conftest's services and the tests that
    start them are rewritten as one)."""
    result = _legacy_report().result_for(LEGACY / name)
    assert result.rewritten is not None, result.findings
    return result.rewritten


def unexplained(name: str, differences: list[Difference]) -> Iterator[Hunk]:
    integration = (INTEGRATION / name).read_text(encoding="utf-8")
    for hunk in hunks(codemod_output(name), integration):
        if not any(d.file == name and d.matches(hunk) for d in differences):
            yield hunk


# -- tests -----------------------------------------------------------------------


def test_every_planted_hazard_is_reported() -> None:
    found: dict[str, list[tuple[int, str]]] = {}
    for finding in check_paths([LEGACY], jobs=1):
        found.setdefault(Path(finding.path).name, []).append((finding.line, finding.code))
    assert {k: sorted(v) for k, v in found.items()} == {k: sorted(v) for k, v in PLANTED.items()}


def test_codemod_output_compiles_and_is_idempotent(tmp_path: Path) -> None:
    copy = tmp_path / "legacy"
    shutil.copytree(LEGACY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    first = migrate_paths([copy], write=True, jobs=1)
    assert not first.failed, [f.findings for f in first.failed]
    for name in FILES:
        compile((copy / name).read_text(), name, "exec")
        assert (copy / name).read_text() == codemod_output(name)
    again = migrate_paths([copy], write=True, jobs=1)
    assert not again.changed, [r.path for r in again.changed]


def test_differences_file_is_valid() -> None:
    load_differences()


@pytest.mark.parametrize("name", FILES)
def test_integration_is_codemod_output_modulo_listed_differences(name: str) -> None:
    if not (INTEGRATION / name).exists():
        pytest.skip(f"tests/integration/{name} not generated yet (see this module's docstring)")
    differences = load_differences()
    missing = list(unexplained(name, differences))
    assert not missing, (
        f"{len(missing)} unexplained differences between codemod(tests/legacy/{name}) and "
        f"tests/integration/{name}; explain them in {DIFFERENCES.name}:\n\n"
        + "\n".join(h.toml(name) for h in missing)
    )
    found = hunks(codemod_output(name), (INTEGRATION / name).read_text(encoding="utf-8"))
    for difference in (d for d in differences if d.file == name):
        for change in difference.changes:
            matched = sum(1 for hunk in found if change.matches(hunk))
            assert matched, (
                f"stale entry in {DIFFERENCES.name} ({difference.why[:60]!r}): "
                f"no hunk removes {change.removed[:1]} and adds {change.added[:1]}"
            )
            if change.count is not None:
                assert matched == change.count, (difference.why, matched)


def test_at_most_twenty_reviewed_differences() -> None:
    """Every hand edit is listed once, with its reason (issue 15: at most 20)."""
    differences = load_differences()
    assert len(differences) <= 20, len(differences)
    for difference in differences:
        assert len(difference.why) >= 40, difference.why


def test_integration_reports_no_hazards() -> None:
    present = [name for name in FILES if (INTEGRATION / name).exists()]
    if not present:
        pytest.skip("tests/integration not generated yet")
    findings = check_paths([INTEGRATION], jobs=1)
    assert not findings, "\n".join(str(f) for f in findings)


def test_hunks_and_matching(tmp_path: Path) -> None:
    old = "a\nb\nc\nd\n"
    new = "a\nB\nc\nd\ne\n"
    found = hunks(old, new)
    assert found == [Hunk(2, ("b",), ("B",)), Hunk(5, (), ("e",))]
    difference = Difference(FILES[0], "why", (Change(("b",), ("B",)),))
    assert difference.matches(found[0])
    assert not difference.matches(found[1])
    assert "remove = '''\nb\n'''" in found[0].toml(FILES[0])
    grouped = tmp_path / "d.toml"
    grouped.write_text(
        f'[[difference]]\nfile = "{FILES[0]}"\nwhy = "one edit at two places"\n'
        '[[difference.hunk]]\nremove = "b"\nadd = "B"\n[[difference.hunk]]\nadd = "e"\n'
    )
    (loaded,) = load_differences(grouped)
    assert all(loaded.matches(hunk) for hunk in found)


# -- script ----------------------------------------------------------------------


def _main(argv: list[str]) -> int:
    command = argv[0] if argv else "skeleton"
    if command == "generate":
        for name in FILES:
            target = INTEGRATION / name
            if target.exists():
                print(f"exists, left alone: {target}")
                continue
            target.write_text(codemod_output(name), encoding="utf-8")
            print(f"written: {target}")
        return 0
    if command == "skeleton":
        differences = load_differences()
        for name in FILES:
            if (INTEGRATION / name).exists():
                for hunk in unexplained(name, differences):
                    print(hunk.toml(name))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
