"""The linter: parse, analyse, report every hazard site as a :class:`Finding`."""

from __future__ import annotations

import libcst as cst

from parallel_isolation.migrate._analysis import Analysis, External, Site
from parallel_isolation.migrate._codes import CODES
from parallel_isolation.migrate._facts import collect_facts, is_suppressed, suppressions
from parallel_isolation.migrate._model import Finding
from parallel_isolation.migrate._walk import start_positions

__all__ = ["analyse", "findings_and_code", "findings_for", "lint_source", "parse_error"]


def analyse(module: cst.Module, external: External | None = None) -> Analysis:
    return Analysis(collect_facts(module), external)


def findings_for(analysis: Analysis, path: str) -> list[Finding]:
    """The reported sites of ``analysis`` as findings (suppressed ones left out)."""
    if not any(site.report for site in analysis.sites):
        return []
    return findings_and_code(analysis, path)[0]


def findings_and_code(analysis: Analysis, path: str) -> tuple[list[Finding], str]:
    """:func:`findings_for` and the module's code, generated on the way."""
    reported = [site for site in analysis.sites if site.report]
    positions, code = start_positions(analysis.facts.module, [site.node for site in reported])
    suppressed = suppressions(code)
    findings = []
    for site in reported:
        line, column = positions[id(site.node)]
        if is_suppressed(suppressed, line, site.code):
            continue
        findings.append(_finding(analysis, site, path, line, column + 1))
    return sorted(findings), code


def _finding(analysis: Analysis, site: Site, path: str, line: int, col: int) -> Finding:
    fixable, reason = analysis.fixable(site)
    message = site.message
    if not fixable and reason:
        message = f"{message} (not auto-fixable: {reason})"
    return Finding(path, line, col, site.code, CODES[site.code].severity, message, fixable)


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


def lint_source(
    source: str, path: str = "<string>", external: External | None = None
) -> list[Finding]:
    """The findings of one module's source (a syntax error is one PI001 finding)."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as error:
        return [parse_error(path, error, source)]
    return findings_for(analyse(module, external), path)
