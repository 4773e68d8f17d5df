"""Files in, findings and rewrites out: discovery, conftest summaries, the pool."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import libcst as cst
from libcst.codemod import CodemodContext

from parallel_isolation.migrate._analysis import External
from parallel_isolation.migrate._commands import COMMANDS, EXTERNAL_KEY, SUPPRESSIONS_KEY
from parallel_isolation.migrate._lint import analyse, findings_and_code, lint_source, parse_error
from parallel_isolation.migrate._model import FileResult, Finding, MigrationReport

__all__ = [
    "check_paths",
    "check_source",
    "discover",
    "migrate_paths",
    "migrate_source",
]

_SKIP_DIRS = frozenset(
    {"__pycache__", ".git", ".venv", "venv", ".nox", ".tox", "node_modules", "build", "dist"}
)
_ROOT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")
#: Below this many files the pool costs more than it saves.
POOL_THRESHOLD = 8

T = TypeVar("T")
R = TypeVar("R")


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """The Python files named by ``paths`` (directories are searched recursively)."""
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(
                p
                for p in path.rglob("*.py")
                if not any(
                    part in _SKIP_DIRS or part.startswith(".")
                    for part in p.relative_to(path).parts[:-1]
                )
            )
        elif path.is_file():
            candidates = [path]
        else:
            msg = f"no such file or directory: {str(raw)!r}"
            raise FileNotFoundError(msg)
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found


def _conftests(path: Path) -> list[Path]:
    """conftest.py files that apply to ``path``: its directory up to the project root."""
    found = []
    directory = path.resolve().parent
    while True:
        candidate = directory / "conftest.py"
        if candidate.is_file() and candidate != path.resolve():
            found.append(candidate)
        if any((directory / marker).exists() for marker in _ROOT_MARKERS):
            break
        if directory.parent == directory:
            break
        directory = directory.parent
    return found


@functools.lru_cache(maxsize=256)
def conftest_summaries(conftest: Path, stamp: int) -> External:
    """Class summaries of one conftest version (``stamp``: its mtime; clear with
    ``conftest_summaries.cache_clear()``)."""
    del stamp  # part of the cache key only
    try:
        module = cst.parse_module(conftest.read_text(encoding="utf-8"))
    except (cst.ParserSyntaxError, UnicodeDecodeError, OSError):
        return External()
    return analyse(module).exported()


def _external_for(path: Path) -> External:
    """Class summaries from the conftest files that apply to ``path``."""
    merged = External()
    for conftest in _conftests(path):
        try:
            stamp = conftest.stat().st_mtime_ns
        except OSError:
            continue
        merged = merged.merged(conftest_summaries(conftest, stamp))
    return merged


def _read(path: Path, shown: str) -> tuple[str | None, Finding | None]:
    try:
        return path.read_text(encoding="utf-8"), None
    except UnicodeDecodeError as error:
        return None, Finding(
            shown, 1, 1, "PI001", "error", f"cannot be read as UTF-8, skipped: {error.reason}"
        )


def check_source(
    source: str, path: str = "<string>", external: External | None = None
) -> list[Finding]:
    """The hazards in one module's source."""
    return lint_source(source, path, external)


def _check_file(path: Path) -> list[Finding]:
    shown = str(path)
    source, problem = _read(path, shown)
    if source is None:
        return [problem] if problem is not None else []
    return lint_source(source, shown, _external_for(path))


def migrate_source(
    source: str, path: str = "<string>", external: External | None = None
) -> FileResult:
    """Run every command over one module's source; never returns code that does not compile."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as error:
        return FileResult(path, source, None, (parse_error(path, error, source),))
    context = CodemodContext(
        filename=path,
        scratch={EXTERNAL_KEY: external or External(), SUPPRESSIONS_KEY: "isolation:" in source},
    )
    for command in COMMANDS:
        module = command(context).transform_module(module)
    findings, rewritten = findings_and_code(analyse(module, external), path)
    if rewritten != source:
        try:
            compile(rewritten, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as error:
            failure = Finding(
                path,
                getattr(error, "lineno", None) or 1,
                1,
                "PI002",
                "error",
                f"the rewrite does not compile ({error}); the file was left as it was",
            )
            return FileResult(path, source, None, (failure,), tuple(context.warnings))
    return FileResult(path, source, rewritten, tuple(findings), tuple(context.warnings))


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically, keeping its permissions."""
    mode = path.stat().st_mode
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.chmod(temporary, mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _migrate_file(job: tuple[Path, bool]) -> FileResult:
    path, write = job
    shown = str(path)
    source, problem = _read(path, shown)
    if source is None:
        return FileResult(shown, "", None, (problem,) if problem is not None else ())
    result = migrate_source(source, shown, _external_for(path))
    if write and result.changed and result.rewritten is not None:
        _write(path, result.rewritten)
        return FileResult(
            result.path, result.original, result.rewritten, result.findings, result.notes, True
        )
    return result


def _map(function: Callable[[T], R], items: Sequence[T], jobs: int | None) -> list[R]:
    workers = jobs if jobs is not None and jobs > 0 else (os.cpu_count() or 1)
    workers = min(workers, len(items))
    if workers <= 1 or len(items) < POOL_THRESHOLD:
        return [function(item) for item in items]
    chunk = max(1, len(items) // (workers * 4))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items, chunksize=chunk))


def check_paths(paths: Iterable[str | Path], *, jobs: int | None = None) -> list[Finding]:
    """Every hazard in the Python files under ``paths``, sorted by location.

    ``jobs``: worker processes (default: one per CPU; 1 runs in-process).
    """
    files = discover(paths)
    results = _map(_check_file, files, jobs)
    return sorted(finding for findings in results for finding in findings)


def migrate_paths(
    paths: Iterable[str | Path],
    *,
    write: bool = False,
    diff: bool = False,
    jobs: int | None = None,
) -> MigrationReport:
    """Rewrite the files under ``paths``; ``diff=True`` only shows (never writes).

    Files that do not parse are reported (PI001) and left alone; a rewrite
    that would not compile is discarded (PI002).  Each result carries the
    hazards left in the rewritten code and the commands' notes on why.
    """
    files = discover(paths)
    jobs_list = [(path, write and not diff) for path in files]
    return MigrationReport(tuple(_map(_migrate_file, jobs_list, jobs)))
