"""Result values of the linter and the codemod (plain, frozen, picklable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from parallel_isolation.migrate._codes import CODES, Severity

__all__ = ["FileResult", "Finding", "MigrationReport"]


@dataclass(frozen=True, order=True)
class Finding:
    """One hazard at ``path:line:col`` (both 1-based).

    ``related`` are the hazard's other sites (``path:line:col``): the uses of
    a constant, the same name written again in another file.  A finding is
    one *distinct* hazard; its sites are listed, not counted again.
    """

    path: str
    line: int
    col: int
    code: str
    severity: Severity
    message: str
    autofix: bool = False
    related: tuple[str, ...] = ()

    def __str__(self) -> str:
        fix = " [auto-fix]" if self.autofix else ""
        return f"{self.path}:{self.line}:{self.col} {self.code} {self.message}{fix}"

    @property
    def name(self) -> str:
        return CODES[self.code].name

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"

    def as_dict(self) -> dict[str, Any]:
        data = {**asdict(self), "name": self.name}
        data["related"] = list(self.related)
        return data


@dataclass(frozen=True)
class FileResult:
    """What the codemod did to one file.

    ``findings`` are the hazards left in the rewritten code (or in the file
    as it is, when nothing changed): what the tool could not fix, with why.
    ``notes`` are the codemod commands' warnings about what they skipped.
    """

    path: str
    original: str
    rewritten: str | None
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    written: bool = False

    @property
    def changed(self) -> bool:
        return self.rewritten is not None and self.rewritten != self.original

    @property
    def failed(self) -> bool:
        """The file could not be parsed, or its rewrite did not compile."""
        return any(f.code in ("PI001", "PI002") for f in self.findings)

    def diff(self) -> str:
        import difflib

        if not self.changed or self.rewritten is None:
            return ""
        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.rewritten.splitlines(keepends=True),
                fromfile=f"a/{self.path}",
                tofile=f"b/{self.path}",
            )
        )


@dataclass(frozen=True)
class MigrationReport:
    """The codemod's outcome over all files, in path order."""

    files: tuple[FileResult, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.changed)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(finding for f in self.files for finding in f.findings)

    @property
    def failed(self) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.failed)

    def diff(self) -> str:
        return "".join(f.diff() for f in self.files)

    def result_for(self, path: str | Path) -> FileResult:
        wanted = str(path)
        for result in self.files:
            if result.path == wanted:
                return result
        msg = f"no result for {wanted!r}; files: {[f.path for f in self.files]}"
        raise KeyError(msg)
