"""Files in, findings and rewrites out.

1. discover the Python files under the paths, read them;
2. build one :class:`Project` per group of related files (files that import
   each other, or that a conftest being migrated covers), which loads the
   modules they depend on as context;
3. analyse each module once, decide every site project-wide (``_decide``);
4. ``--check``: report the findings; otherwise rewrite every module from
   the decisions in one pass each (``_rewrite``), then *verify*: analyse the
   rewritten project again, and refuse (leave as they were) the files whose
   rewrite did not settle: a value isolated twice, a hazard the rewrite
   should have fixed still there, topics namespaced while a service the
   same module configures gets no prefix.  Only what passed is claimed as
   rewritten.

Independent groups run in a process pool once there are enough files.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import libcst as cst

from parallel_isolation.migrate._analysis import FileAnalysis, Workspace
from parallel_isolation.migrate._commands import plan
from parallel_isolation.migrate._decide import decide, flow_of
from parallel_isolation.migrate._facts import is_namespace_call, last_name
from parallel_isolation.migrate._findings import findings as site_findings
from parallel_isolation.migrate._model import FileResult, Finding, MigrationReport
from parallel_isolation.migrate._project import DEFAULT_PREFIX_ENV, SKIP_DIRS, Project, Settings
from parallel_isolation.migrate._rewrite import apply
from parallel_isolation.migrate._rules.names import ISOLATING_CALLS
from parallel_isolation.migrate._walk import iter_children

__all__ = [
    "POOL_THRESHOLD",
    "check_paths",
    "check_source",
    "discover",
    "migrate_paths",
    "migrate_source",
]

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
                    part in SKIP_DIRS or part.startswith(".")
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


def _read(path: Path) -> tuple[str | None, Finding | None]:
    shown = str(path)
    try:
        return path.read_text(encoding="utf-8"), None
    except UnicodeDecodeError as error:
        return None, Finding(
            shown, 1, 1, "PI001", "error", f"cannot be read as UTF-8, skipped: {error.reason}"
        )


def parse_error(path: str, error: cst.ParserSyntaxError, source: str | None = None) -> Finding:
    """PI001 for a file LibCST cannot parse, with CPython's (clearer) message when it has one."""
    line, column = error.raw_line, error.raw_column + 1
    detail = str(error).splitlines()[0] if str(error) else "syntax error"
    if source is not None:
        try:
            compile(source, path, "exec", dont_inherit=True)
        except SyntaxError as python_error:
            line = python_error.lineno or line
            column = python_error.offset or column
            detail = python_error.msg
        except ValueError as python_error:  # e.g. NUL bytes
            detail = str(python_error)
        else:
            detail = f"LibCST cannot parse it: {detail}"
    return Finding(path, line, column, "PI001", "error", f"does not parse, skipped: {detail}")


# -- one group of related files --------------------------------------------------


def _load(
    files: Sequence[tuple[Path, str, str | None]], settings: Settings | None = None
) -> tuple[Project, dict[str, Finding]]:
    project = Project(files, settings=settings)
    problems: dict[str, Finding] = {}
    for module in project.targets:
        if module.error is not None:
            problems[module.key] = parse_error(module.key, module.error, module.source)
    return project, problems


def _analyses(project: Project) -> tuple[list[FileAnalysis], list[FileAnalysis]]:
    """The targets' analyses, and every loaded module's (targets first), sites computed."""
    workspace = Workspace(project)
    targets: list[FileAnalysis] = []
    for module in project.targets:
        analysis = workspace.analysis(module)
        if analysis is not None:
            targets.append(analysis)
    for analysis in targets:
        _ = analysis.sites
    everything = list(targets)
    seen = {id(a) for a in targets}
    while True:
        added = False
        for module in project.loaded():
            analysis = workspace.analysis(module)
            if analysis is not None and id(analysis) not in seen:
                seen.add(id(analysis))
                _ = analysis.sites
                everything.append(analysis)
                added = True
        if not added:
            return targets, everything


def _check_group(files: Sequence[tuple[Path, str, str | None]]) -> list[Finding]:
    project, problems = _load(files)
    targets, everything = _analyses(project)
    decide(everything)
    keys = {a.path for a in targets}
    return sorted([*site_findings(everything, keys), *problems.values()])


def _rewrite_group(
    files: Sequence[tuple[Path, str, str | None]], settings: Settings | None = None
) -> list[FileResult]:
    project, problems = _load(files, settings)
    targets, everything = _analyses(project)
    decide(everything)
    keys = {a.path for a in targets}
    before = site_findings(everything, keys)
    fixed = [
        (a, s)
        for a in targets
        for s in a.sites
        if s.decided is not None and s.decided[0] and (s.build is not None or _has_extra(s))
    ]
    fixed_set = {(a, s) for a, s in fixed}
    plans = plan(everything, fixed)
    rewritten: dict[str, str] = {}
    failures: dict[str, Finding] = {}
    for a in targets:
        module_plan = plans.get(a.path)
        if module_plan is None or not module_plan.edits:
            continue
        constants = {
            s.hazard[2]
            for s in a.sites
            if s.hazard is not None
            and s.hazard[0] == "const"
            and s.node is s.origin
            and s.code in ("PI101", "PI102")
            and s.decided is not None
            and s.decided[0]
        }
        code = apply(a, module_plan, {str(c) for c in constants}).code
        if code == a.module.source:
            continue
        try:
            compile(code, a.path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as error:
            failures[a.path] = Finding(
                a.path,
                getattr(error, "lineno", None) or 1,
                1,
                "PI002",
                "error",
                f"the rewrite does not compile ({error}); the file was left as it was",
            )
            continue
        rewritten[a.path] = code
    fixed_keys = Counter(_site_key(a, s) for a, s in fixed)
    left_keys = Counter(
        _site_key(a, s) for a in targets for s in a.sites if s.report and (a, s) not in fixed_set
    )
    refused, checked = _verify(project, rewritten, failures, fixed_keys - left_keys)
    for path in refused:
        rewritten.pop(path, None)
    after: list[Finding] = []
    if rewritten:
        if refused:
            sources = [(m.path, m.key, rewritten.get(m.key, m.source)) for m in project.targets]
            _targets_after, checked = _analyses(Project(sources, settings=project.settings))
            decide(checked)
        after = site_findings(checked, set(rewritten))
    sources_by_key = {m.key: m.source or "" for m in project.targets}
    for finding in before:
        # Calls in __main__ blocks the rewrite leaves without the fixture it adds:
        # nothing in the rewritten code says so any more; keep them, moved.
        if finding.path in rewritten and "__main__" in finding.message:
            moved = _moved(finding, sources_by_key[finding.path], rewritten[finding.path])
            if moved is not None:
                after.append(moved)
    by_file: dict[str, list[Finding]] = {}
    target_keys = [m.key for m in project.targets]

    def owner(finding: Finding) -> str:
        """The target file a finding is listed under (its own, else the first of its sites)."""
        if finding.path in sources_by_key:
            return finding.path
        for site in finding.related:
            path = site.rsplit(":", 2)[0]
            if path in sources_by_key:
                return path
        return target_keys[0] if target_keys else finding.path

    for finding in after:
        by_file.setdefault(owner(finding), []).append(finding)
    for finding in before:
        if owner(finding) in rewritten:
            continue
        if finding.path in refused and finding.autofix:
            finding = Finding(
                finding.path,
                finding.line,
                finding.col,
                finding.code,
                finding.severity,
                _refused(finding.message, refused[finding.path]),
                False,
                finding.related,
            )
        by_file.setdefault(owner(finding), []).append(finding)
    results: list[FileResult] = []
    for module in project.targets:
        key = module.key
        source = module.source if module.source is not None else ""
        if key in problems:
            results.append(FileResult(key, source, None, (problems[key],)))
            continue
        if key in failures:
            results.append(FileResult(key, source, None, (failures[key],)))
            continue
        notes = (f"refused after the check: {refused[key]}",) if key in refused else ()
        results.append(
            FileResult(
                key,
                source,
                rewritten.get(key, source),
                tuple(sorted(by_file.get(key, []))),
                notes,
            )
        )
    return results


def _moved(finding: Finding, original: str, rewritten: str) -> Finding | None:
    """The finding at its line in the rewritten code (if that line was not changed)."""
    old, new = original.splitlines(), rewritten.splitlines()
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, _j2 in matcher.get_opcodes():
        if tag == "equal" and i1 < finding.line <= i2:
            line = finding.line - i1 + j1
            return Finding(
                finding.path,
                line,
                finding.col,
                finding.code,
                finding.severity,
                finding.message,
                finding.autofix,
                finding.related,
            )
    return None


def _refused(message: str, why: str) -> str:
    from parallel_isolation.migrate._findings import fit

    return fit("PI000", message, f" (by hand: the rewrite was refused: {why})")


def _has_extra(site: object) -> bool:
    extra = getattr(site, "extra", {})
    return any(isinstance(k, int) for k in extra)


def _site_key(a: FileAnalysis, site: object) -> tuple[str, str, str]:
    node = getattr(site, "node", None)
    text = a.facts.module.code_for_node(node) if isinstance(node, cst.CSTNode) else ""
    return a.path, str(getattr(site, "code", "")), text


def _verify(
    project: Project,
    rewritten: dict[str, str],
    failures: dict[str, Finding],
    rewrote: Counter[tuple[str, str, str]],
) -> tuple[dict[str, str], list[FileAnalysis]]:
    """The rewritten files whose rewrite must be refused, and why (with their
    partners), and the analyses of the rewritten project (decided)."""
    if not rewritten and not failures:
        return {}, []
    sources = [(m.path, m.key, rewritten.get(m.key, m.source)) for m in project.targets]
    checked = Project(sources, settings=project.settings)
    targets, everything = _analyses(checked)
    decide(everything)
    problems: dict[str, str] = {}
    for a in targets:
        if a.path not in rewritten:
            continue
        twice = _isolated_twice(a)
        if twice is not None:
            problems[a.path] = twice
            continue
        # A site the rewrite changed that is still there as it was: the rewrite
        # did not happen.  (A site held back before may be free now: not a failure.)
        left = [
            s
            for s in a.sites
            if s.report
            and s.decided is not None
            and s.decided[0]
            and s.build is not None
            and rewrote[_site_key(a, s)] > 0
        ]
        if left:
            problems[a.path] = (
                f"{left[0].code} at {a.line_of(left[0].node)} is still there after the rewrite"
            )
            continue
        mismatch = _prefix_mismatch(a)
        if mismatch is not None:
            problems[a.path] = mismatch
    for path in failures:
        problems.setdefault(path, "a file it changes together with this one did not compile")
    if not problems:
        return {}, everything
    # Files rewritten together stand or fall together.
    refused = dict(problems)
    for path in list(rewritten):
        if path not in refused and rewritten:
            refused[path] = next(iter(problems.values()))
    return refused, everything


def _isolated_twice(a: FileAnalysis) -> str | None:
    """``container_name(container_name(...))``, or a loop variable over isolated names wrapped again."""
    for record in a.facts.calls:
        call = record.node
        assert isinstance(call, cst.Call)
        if last_name(call.func) not in ISOLATING_CALLS or not call.args:
            continue
        if not isinstance(call.func, cst.Attribute):
            continue
        argument = call.args[0].value
        if _holds_isolated(a, argument, record.scope):
            return f"a value isolated twice at {a.line_of(call)}"
    return None


def _holds_isolated(a: FileAnalysis, expr: cst.BaseExpression, scope: object) -> bool:
    if isinstance(expr, cst.Call) and last_name(expr.func) in ISOLATING_CALLS:
        return isinstance(expr.func, cst.Attribute)
    if isinstance(expr, cst.Name):
        binder = a.resolver.binder(expr.value, scope)  # type: ignore[arg-type]
        if binder is None:
            return False
        for binding in binder.bindings.get(expr.value, []):
            source = binding.value if binding.value is not None else binding.iterable
            if source is not None and _contains_isolating(source, a, binder):
                return True
    return False


def _contains_isolating(node: cst.CSTNode, a: FileAnalysis, scope: object) -> bool:
    if (
        isinstance(node, cst.Call)
        and last_name(node.func) in ISOLATING_CALLS
        and isinstance(node.func, cst.Attribute)
    ):
        return True
    if isinstance(node, cst.Name):
        return _holds_isolated(a, node, scope)
    return any(_contains_isolating(child, a, scope) for child in iter_children(node))


def _prefix_mismatch(a: FileAnalysis) -> str | None:
    """Namespaced topics in a flow whose service environments get no prefix."""
    namespaced = {
        flow_of(a, r.scope)
        for r in a.facts.calls
        if isinstance(r.node, cst.Call) and is_namespace_call(r.node)
    }
    if not namespaced:
        return None
    for site in a.sites:
        if site.code == "PI115" and site.report and flow_of(a, site.scope) in namespaced:
            return (
                f"its topics are namespaced, but the service environment at "
                f"{a.line_of(site.node)} still gets no {a.prefix_env}"
            )
    return None


# -- grouping and the pool ------------------------------------------------------------


def _groups(files: list[Path]) -> list[list[Path]]:
    """Files that must be migrated together: imports between them, conftests over them."""
    parent = {f.resolve(): f.resolve() for f in files}

    def find(x: Path) -> Path:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: Path, b: Path) -> None:
        parent[find(a)] = find(b)

    resolved = {f.resolve(): f for f in files}
    conftests = [p for p in resolved if p.name == "conftest.py"]
    for path in resolved:
        for conftest in conftests:
            if conftest != path and path.is_relative_to(conftest.parent):
                union(path, conftest)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "import" not in text:
            continue
        for other in resolved:
            if other != path and (other.stem in text):
                union(path, other)
    grouped: dict[Path, list[Path]] = {}
    for path, original in resolved.items():
        grouped.setdefault(find(path), []).append(original)
    return list(grouped.values())


def _entries(files: Iterable[Path]) -> tuple[list[tuple[Path, str, str | None]], list[Finding]]:
    entries: list[tuple[Path, str, str | None]] = []
    unreadable: list[Finding] = []
    for path in files:
        source, problem = _read(path)
        if source is None:
            if problem is not None:
                unreadable.append(problem)
            continue
        entries.append((path, str(path), source))
    return entries, unreadable


def _check_files(files: list[Path]) -> list[Finding]:
    entries, unreadable = _entries(files)
    return (_check_group(entries) if entries else []) + unreadable


def _rewrite_files(job: tuple[list[Path], bool]) -> list[FileResult]:
    files, write = job
    entries, unreadable = _entries(files)
    results = _rewrite_group(entries) if entries else []
    results += [FileResult(f.path, "", None, (f,)) for f in unreadable]
    if write:
        written = []
        for result in results:
            if result.changed and result.rewritten is not None:
                _write(Path(result.path), result.rewritten)
                result = FileResult(
                    result.path,
                    result.original,
                    result.rewritten,
                    result.findings,
                    result.notes,
                    True,
                )
            written.append(result)
        results = written
    return results


def _map(function: Callable[[T], R], items: Sequence[T], jobs: int | None, files: int) -> list[R]:
    workers = jobs if jobs is not None and jobs > 0 else (os.cpu_count() or 1)
    workers = min(workers, len(items))
    if workers <= 1 or files < POOL_THRESHOLD:
        return [function(item) for item in items]
    chunk = max(1, len(items) // (workers * 4))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items, chunksize=chunk))


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


# -- the public functions -------------------------------------------------------------


def check_paths(paths: Iterable[str | Path], *, jobs: int | None = None) -> list[Finding]:
    """Every hazard in the Python files under ``paths``, sorted by location.

    ``jobs``: worker processes (default: one per CPU; 1 runs in-process).
    """
    files = discover(paths)
    groups = _groups(files)
    results = _map(_check_files, groups, jobs, len(files))
    return sorted(finding for found in results for finding in found)


def migrate_paths(
    paths: Iterable[str | Path],
    *,
    write: bool = False,
    diff: bool = False,
    jobs: int | None = None,
) -> MigrationReport:
    """Rewrite the files under ``paths``; ``diff=True`` only shows (never writes).

    Files that do not parse are reported (PI001) and left alone; a rewrite
    that would not compile is discarded (PI002); a rewrite the check after
    it does not accept is refused.  Each result carries the hazards left in
    the (rewritten) code, with why.
    """
    files = discover(paths)
    groups = _groups(files)
    jobs_list = [(group, write and not diff) for group in groups]
    results = _map(_rewrite_files, jobs_list, jobs, len(files))
    ordered = sorted((r for found in results for r in found), key=lambda r: _order(files, r.path))
    return MigrationReport(tuple(ordered))


def _order(files: list[Path], path: str) -> int:
    for index, candidate in enumerate(files):
        if str(candidate) == path:
            return index
    return len(files)


def _in_memory(source: str, path: str, prefix_env: str) -> list[tuple[Path, str, str | None]]:
    return [(Path(path), path, source)]


def check_source(
    source: str, path: str = "<string>", *, prefix_env: str = DEFAULT_PREFIX_ENV
) -> list[Finding]:
    """The hazards in one module's source (alone: no project around it)."""
    settings = Settings(None, prefix_env, "given")
    entries = _in_memory(source, path, prefix_env)
    project = Project(entries, settings=settings)
    module = project.targets[0]
    if module.error is not None:
        return [parse_error(path, module.error, source)]
    _targets, everything = _analyses(project)
    decide(everything)
    return sorted(site_findings(everything, {path}))


def migrate_source(
    source: str, path: str = "<string>", *, prefix_env: str = DEFAULT_PREFIX_ENV
) -> FileResult:
    """Run the codemod over one module's source; never returns code that does not compile."""
    settings = Settings(None, prefix_env, "given")
    (result,) = _rewrite_group(_in_memory(source, path, prefix_env), settings)
    return result
