"""The linter: parse, analyse, report every hazard site as a :class:`Finding`."""

from __future__ import annotations

from collections.abc import Mapping

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from parallel_isolation.migrate._analysis import Analysis, ExternalClasses, Site
from parallel_isolation.migrate._codes import CODES
from parallel_isolation.migrate._facts import ModuleFacts, collect_facts
from parallel_isolation.migrate._model import Finding

__all__ = ["analyse", "findings_for", "is_suppressed", "lint_source", "parse_error"]


def is_suppressed(facts: ModuleFacts, line: int, code: str) -> bool:
    """``# isolation: ignore`` or ``# isolation: ignore[CODE]`` on the line."""
    codes = facts.suppressions.get(line)
    return codes is not None and (not codes or code in codes)


def analyse(
    module: cst.Module, source: str | None = None, external: ExternalClasses | None = None
) -> Analysis:
    return Analysis(collect_facts(module, source), external)


def findings_for(
    analysis: Analysis, positions: Mapping[cst.CSTNode, CodeRange], path: str
) -> list[Finding]:
    findings = []
    for site in analysis.sites:
        if not site.report:
            continue
        start = positions[site.node].start
        if is_suppressed(analysis.facts, start.line, site.code):
            continue
        findings.append(_finding(analysis, site, path, start.line, start.column + 1))
    return sorted(findings)


def _finding(analysis: Analysis, site: Site, path: str, line: int, col: int) -> Finding:
    fixable, reason = analysis.fixable(site)
    message = site.message
    if not fixable and reason:
        message = f"{message} (not auto-fixable: {reason})"
    return Finding(path, line, col, site.code, CODES[site.code].severity, message, fixable)


def parse_error(path: str, error: cst.ParserSyntaxError) -> Finding:
    first_line = str(error).splitlines()[0] if str(error) else "syntax error"
    return Finding(
        path,
        error.raw_line,
        error.raw_column + 1,
        "PI001",
        "error",
        f"does not parse, skipped: {first_line}",
    )


def lint_source(
    source: str, path: str = "<string>", external: ExternalClasses | None = None
) -> list[Finding]:
    """The findings of one module's source (a syntax error is one PI001 finding)."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as error:
        return [parse_error(path, error)]
    analysis = analyse(module, source, external)
    if not any(site.report for site in analysis.sites):
        return []
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    return findings_for(analysis, positions, path)
