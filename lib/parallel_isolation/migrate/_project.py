"""The project the migrated files belong to: its modules, its settings, and
what its services read for their topic prefix.

A :class:`Project` holds the files being migrated (*targets*) and loads, on
demand, the project modules they depend on (*context*: conftest files in
scope, helper modules they import).  Context modules are analysed like the
targets but never rewritten: a value shared with one of them can only be
rewritten if that module is migrated too.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from parallel_isolation.migrate._facts import ImportRef, ModuleFacts, collect_facts

__all__ = [
    "DEFAULT_PREFIX_ENV",
    "Module",
    "Project",
    "Settings",
    "find_root",
    "is_test_file",
    "learn_prefix_env",
]

ROOT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")
SKIP_DIRS = frozenset(
    {
        "__pycache__",
        ".git",
        ".venv",
        "venv",
        ".nox",
        ".tox",
        "node_modules",
        "build",
        "dist",
        "site-packages",
    }
)
#: What the plugin's own service environments use (``service_env``).
DEFAULT_PREFIX_ENV = "TOPIC_PREFIX"
_TEST_DIRS = frozenset({"tests", "test", "testing"})
_ENV_READ = re.compile(
    r"""(?:environ\s*(?:\.get\s*\(|\.setdefault\s*\(|\[)|getenv\s*\()\s*["']([A-Z][A-Z0-9_]*PREFIX[A-Z0-9_]*)["']"""
)
_PREFIX_LITERAL = re.compile(r"""["']([A-Z][A-Z0-9_]*TOPIC[A-Z0-9_]*PREFIX)["']""")
_MAX_SCANNED = 3000
_PROJECT_FILES = ("pyproject.toml", "setup.cfg", "setup.py")


def find_root(path: Path) -> Path | None:
    """The nearest directory at or above ``path`` with a project marker."""
    directory = path.resolve()
    if directory.is_file():
        directory = directory.parent
    while True:
        if any((directory / marker).exists() for marker in ROOT_MARKERS):
            return directory
        if directory.parent == directory:
            return None
        directory = directory.parent


def is_test_file(path: Path) -> bool:
    name = path.name
    if name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py"):
        return True
    return any(part in _TEST_DIRS for part in path.parts[:-1])


def _source_files(root: Path) -> Iterator[Path]:
    count = 0
    for directory, dirs, files in os.walk(root):
        # A subdirectory with its own project file is another project (an
        # example, a vendored package): its services are not this project's.
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in SKIP_DIRS
            and not d.startswith(".")
            and not any((Path(directory) / d / marker).exists() for marker in _PROJECT_FILES)
        )
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = Path(directory) / name
            if is_test_file(path.relative_to(root)):
                continue
            count += 1
            if count > _MAX_SCANNED:
                return
            yield path


def learn_prefix_env(
    root: Path | None, settings: Mapping[str, object], test_sources: Iterable[str] = ()
) -> tuple[str, str]:
    """The variable the project's services read for their topic prefix, and where it was learned.

    In order: the ``prefix-env`` setting of ``[tool.parallel-isolation]``;
    the services registered there (``[tool.parallel-isolation.services.*]``:
    their ``env-names.prefix``, ``TOPIC_PREFIX`` when not given); the
    services' source (not descending into nested projects) (variables read with ``os.environ``/``getenv``,
    else ``*TOPIC*PREFIX`` names), the most used one; the existing tests'
    environments; the plugin's own ``TOPIC_PREFIX``.
    """
    configured = settings.get("prefix-env")
    if isinstance(configured, str) and configured:
        return configured, "[tool.parallel-isolation] prefix-env"
    registered = _registered_prefixes(settings.get("services"))
    best = _unique_best(registered)
    if best is not None:
        return best, "the services in [tool.parallel-isolation.services]"
    if root is not None:
        reads: dict[str, int] = {}
        named: dict[str, int] = {}
        where: dict[str, Path] = {}
        for path in _source_files(root):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if "PREFIX" not in text:
                continue
            for found, counts in (
                (_ENV_READ.findall(text), reads),
                (_PREFIX_LITERAL.findall(text), named),
            ):
                for name in found:
                    counts[name] = counts.get(name, 0) + 1
                    where.setdefault(name, path)
        for counts in (reads, named):
            best = _unique_best(counts)
            if best is not None:
                shown = where[best].relative_to(root).as_posix()
                return best, f"the services' source ({shown})"
    used: dict[str, int] = {}
    for text in test_sources:
        for name in _PREFIX_LITERAL.findall(text):
            used[name] = used.get(name, 0) + 1
    best = _unique_best(used)
    if best is not None:
        return best, "the existing tests"
    return DEFAULT_PREFIX_ENV, "the default (no service source names one)"


def _registered_prefixes(services: object) -> dict[str, int]:
    """How many registered services read each prefix variable."""
    counts: dict[str, int] = {}
    if not isinstance(services, Mapping):
        return counts
    for spec in services.values():
        if not isinstance(spec, Mapping):
            continue
        names = spec.get("env-names", spec.get("env_names", {}))
        prefix = names.get("prefix", DEFAULT_PREFIX_ENV) if isinstance(names, Mapping) else None
        if isinstance(prefix, str) and prefix:
            counts[prefix] = counts.get(prefix, 0) + 1
    return counts


def _unique_best(counts: Mapping[str, int]) -> str | None:
    if not counts:
        return None
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def _tool_settings(root: Path | None) -> tuple[dict[str, object], list[Path]]:
    """``[tool.parallel-isolation]`` and pytest's ``pythonpath`` of the root's pyproject."""
    if root is None or not (root / "pyproject.toml").is_file():
        return {}, []
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}, []
    tool = data.get("tool", {})
    settings = tool.get("parallel-isolation", {})
    pytest_ini = tool.get("pytest", {}).get("ini_options", {})
    extra = pytest_ini.get("pythonpath", [])
    if isinstance(extra, str):
        extra = extra.split()
    paths = [root / str(entry) for entry in extra if isinstance(entry, str)]
    return (settings if isinstance(settings, dict) else {}), paths


@dataclass(frozen=True)
class Settings:
    root: Path | None
    prefix_env: str
    prefix_from: str
    import_roots: tuple[Path, ...] = ()


@dataclass(eq=False)
class Module:
    """One loaded file of the project."""

    path: Path
    key: str
    source: str | None
    target: bool
    tree: cst.Module | None = None
    error: cst.ParserSyntaxError | None = None
    _facts: ModuleFacts | None = None
    dependents: set[str] = field(default_factory=set)

    @property
    def facts(self) -> ModuleFacts | None:
        if self._facts is None and self.tree is not None:
            self._facts = collect_facts(self.tree)
        return self._facts


class Project:
    """The targets and the project modules they depend on, loaded once."""

    def __init__(
        self,
        targets: Sequence[tuple[Path, str, str | None]],
        *,
        settings: Settings | None = None,
    ) -> None:
        """``targets``: (path, shown key, source or None if unreadable)."""
        self.modules: dict[Path, Module] = {}
        self.targets: list[Module] = []
        self._conftests: dict[Path, list[Module]] = {}
        self._resolved: dict[tuple[Path, ImportRef], tuple[Module, str | None] | None] = {}
        for path, key, source in targets:
            module = self._add(path, key, source, target=True)
            self.targets.append(module)
        if settings is None:
            first = targets[0][0] if targets else Path.cwd()
            root = find_root(first)
            tool, extra = _tool_settings(root)
            name, where = learn_prefix_env(
                root, tool, (m.source for m in self.targets if m.source is not None)
            )
            roots = tuple(p.resolve() for p in extra)
            if root is not None:
                roots += (root, root / "src")
            settings = Settings(root, name, where, roots)
        self.settings = settings

    @classmethod
    def single(cls, tree: cst.Module, path: Path, key: str, settings: Settings) -> Project:
        """A project of one module already parsed (its nodes are kept as they are)."""
        project = cls([], settings=settings)
        module = Module(path.resolve(), key, tree.code, True, tree)
        project.modules[module.path] = module
        project.targets.append(module)
        return project

    # -- loading -------------------------------------------------------------

    def _add(self, path: Path, key: str, source: str | None, *, target: bool) -> Module:
        module = Module(path.resolve(), key, source, target)
        if source is not None:
            try:
                module.tree = cst.parse_module(source)
            except cst.ParserSyntaxError as error:
                module.error = error
        self.modules[module.path] = module
        return module

    def module(self, path: Path) -> Module | None:
        """The module at ``path`` (loaded as context the first time)."""
        resolved = path.resolve()
        found = self.modules.get(resolved)
        if found is not None:
            return found
        if not resolved.is_file():
            return None
        try:
            source = resolved.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return self._add(resolved, _shown(resolved), source, target=False)

    def conftests(self, module: Module) -> list[Module]:
        """conftest.py files that apply to ``module``: its directory up to the project root."""
        cached = self._conftests.get(module.path)
        if cached is None:
            cached = self._conftests[module.path] = self._find_conftests(module)
        return cached

    def _find_conftests(self, module: Module) -> list[Module]:
        found: list[Module] = []
        directory = module.path.parent
        while True:
            candidate = directory / "conftest.py"
            if candidate.is_file() and candidate != module.path:
                loaded = self.module(candidate)
                if loaded is not None:
                    found.append(loaded)
            if any((directory / marker).exists() for marker in ROOT_MARKERS):
                break
            if directory.parent == directory:
                break
            directory = directory.parent
        return found

    def resolve(self, importer: Module, ref: ImportRef) -> tuple[Module, str | None] | None:
        """The project module an import names, and the name inside it (None: the module)."""
        key = (importer.path.parent, ref)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(importer, ref)
        return self._resolved[key]

    def _resolve(self, importer: Module, ref: ImportRef) -> tuple[Module, str | None] | None:
        parts = [p for p in ref.module.split(".") if p]
        bases: list[Path] = []
        if ref.level:
            base = importer.path.parent
            for _ in range(ref.level - 1):
                base = base.parent
            bases.append(base)
        else:
            directory = importer.path.parent
            root = self.settings.root
            while True:
                bases.append(directory)
                if root is None or directory == root or directory.parent == directory:
                    break
                if not directory.is_relative_to(root):
                    break
                directory = directory.parent
            bases += [p for p in self.settings.import_roots if p not in bases]
        for base in bases:
            if ref.name is not None:
                submodule = _module_file(base, [*parts, ref.name])
                if submodule is not None:
                    loaded = self.module(submodule)
                    if loaded is not None:
                        return loaded, None
            target = _module_file(base, parts)
            if target is not None:
                loaded = self.module(target)
                if loaded is not None:
                    return loaded, ref.name
        return None

    def loaded(self) -> list[Module]:
        return list(self.modules.values())


def _module_file(base: Path, parts: list[str]) -> Path | None:
    if not parts:
        return None
    candidate = base.joinpath(*parts)
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.is_file():
            return path
    return None


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
