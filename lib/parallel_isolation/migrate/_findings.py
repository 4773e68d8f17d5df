"""Sites to findings: one finding per distinct hazard, its other sites under it.

The uses of one constant are one hazard, reported where the constant is
defined; an inline literal is its own hazard.  A finding's message is one
line: what, and either the fix the codemod applies (``[auto-fix]``) or what
a person has to do, naming the site that blocks the rewrite.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from parallel_isolation.migrate._codes import CODES
from parallel_isolation.migrate._facts import is_suppressed, suppressions
from parallel_isolation.migrate._model import Finding
from parallel_isolation.migrate._site import Site

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["MAX_LINE", "findings", "fit"]

#: The longest ``CODE message [auto-fix]`` part of a finding's line.
MAX_LINE = 160


def fit(code: str, base: str, tail: str, reserve: int = 0) -> str:
    """``base`` + ``tail`` in at most MAX_LINE characters with the code (and
    ``reserve`` more): ``base`` is shortened first (in its middle), the tail
    (the reason, naming a site) is kept."""
    room = MAX_LINE - reserve - len(code) - 1 - len(tail)
    if len(base) <= room:
        return base + tail
    if room < 20:
        return (base + tail)[: MAX_LINE - reserve - len(code) - 1]
    keep = room - 3
    head = keep * 2 // 3
    return base[:head] + "..." + base[len(base) - (keep - head) :] + tail


def _key(a: AnalysisView, site: Site) -> tuple[object, ...]:
    blocker = site.extra.get("blocked_by")
    if isinstance(blocker, Site) and blocker is not site:
        owner = site.extra.get("blocker_analysis")
        return _key(owner if owner is not None else a, blocker)  # type: ignore[arg-type]
    if site.hazard is not None:
        if site.hazard[0] in ("own-broker", "name"):
            return site.hazard  # one hazard whatever the code of each site
        return (site.code, *site.hazard)
    return (site.code, a.path, id(site.node))


def findings(analyses: Iterable[AnalysisView], targets: set[str]) -> list[Finding]:
    """The findings of the sites of ``analyses`` that touch a target module."""
    groups: dict[tuple[object, ...], list[tuple[AnalysisView, Site]]] = {}
    by_path: dict[str, AnalysisView] = {}
    for a in analyses:
        by_path[a.path] = a
        suppressed = suppressions(a.code) if "isolation:" in a.code else {}
        for site in a.sites:
            if not site.report:
                continue
            line, _ = a.position(site.node)
            if suppressed and is_suppressed(suppressed, line, site.code):
                continue
            groups.setdefault(_key(a, site), []).append((a, site))
    result: list[Finding] = []
    for members in groups.values():
        if not any(a.path in targets for a, _ in members):
            continue
        result.append(_finding(members, by_path, targets))
        result.extend(_main_calls(members, targets))
    unique: dict[tuple[str, int, int, str], Finding] = {}
    for finding in sorted(result):
        unique.setdefault((finding.path, finding.line, finding.col, finding.message), finding)
    return sorted(unique.values())


def _finding(
    members: list[tuple[AnalysisView, Site]], by_path: dict[str, AnalysisView], targets: set[str]
) -> Finding:
    members = sorted(
        members, key=lambda m: (m[0].path not in targets, m[0].path, m[0].position(m[1].node))
    )
    waiting = [(a, s) for a, s in members if "blocked_by" in s.extra]
    own = [(a, s) for a, s in members if "blocked_by" not in s.extra] or members
    definition = next(((a, s) for a, s in own if s.origin is not None and s.node is s.origin), None)
    uses = [(a, s) for a, s in own if definition is None or s is not definition[1]]
    primary_a, primary = definition or own[0]
    location = primary_a.position(primary.node)
    path = primary_a.path
    origin = primary.origin
    moved = False
    if definition is None and origin is not None:
        owner = _owner(origin, members, by_path)
        if owner is not None:
            path, location = owner.path, owner.position(origin)
            moved = True
    related = [a.where(s.node) for a, s in members if moved or (a, s) != (primary_a, primary)]
    related = [r for r in dict.fromkeys(related) if r != f"{path}:{location[0]}:{location[1]}"]
    verdicts = [s.decided or a.fixable(s) for a, s in (uses or members)]
    if definition is not None and definition[1].decided is not None:
        verdicts = [definition[1].decided] + (verdicts if uses else [])
    fixable = all(v[0] for v in verdicts)
    reason = next((v[1] for v in verdicts if not v[0] and v[1]), "")
    base = (uses[0][1] if uses and definition is None else primary).message
    if definition is not None and primary.hazard is not None and primary.hazard[0] == "own-broker":
        base = primary.message + (f" ({len(own)} sites)" if len(own) > 1 else "")
    elif definition is not None:
        base = primary.message + (
            f"; {len(uses)} use{'s' if len(uses) > 1 else ''}" if uses else ""
        )
    elif len(own) > 1:
        base = f"{base} ({len(own)} sites)"
    own_reasons = [s.decided[1] for _, s in own if s.decided and not s.decided[0] and s.decided[1]]
    if own_reasons:
        reason = own_reasons[0]
    reason = reason.replace(f"{path}:", "line ")
    directory = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
    if directory:
        reason = reason.replace(directory, "")  # a sibling file by its name
    if waiting:
        listed = "the site listed" if len(waiting) == 1 else f"the {len(waiting)} sites listed"
        reason += f"; {listed} change{'s' if len(waiting) == 1 else ''} with it"
    tail = "" if fixable else f" (by hand: {reason})" if reason else " (by hand)"
    code = primary.code
    return Finding(
        path,
        location[0],
        location[1],
        code,
        CODES[code].severity,
        fit(code, base, tail) if not fixable else fit(code, base, "", reserve=len(" [auto-fix]")),
        fixable,
        tuple(related),
    )


def _owner(
    origin: object, members: list[tuple[AnalysisView, Site]], by_path: dict[str, AnalysisView]
) -> AnalysisView | None:
    """The analysis of the module the node ``origin`` belongs to."""
    for analysis in [*(a for a, _ in members), *by_path.values()]:
        if id(origin) in analysis.facts.parents:
            return analysis
    return None


def _main_calls(members: list[tuple[AnalysisView, Site]], targets: set[str]) -> list[Finding]:
    """Calls in ``__main__`` blocks that the rewrite leaves without the fixture they now need."""
    found: list[Finding] = []
    for a, site in members:
        if not (site.decided and site.decided[0]) or site.need is None:
            continue
        top = site.scope.outermost_function()
        if top is None:
            continue
        got, _ = a.provider(site.scope, site.need)
        if got is None:
            continue
        if got.startswith("self.") and top.cls is not None and top.role != "unittest":
            uses = a.class_uses(top.cls.name)
            what = f"{top.cls.name}()"
        elif top.role in ("helper", "method"):
            uses = a.uses(top)
            what = f"{top.qualname}()"
        else:
            continue
        fixture = got.removeprefix("self.")
        for call_site in uses.main:
            other = call_site.analysis
            if other.path not in targets:
                continue
            line, column = other.position(call_site.call)
            message = (
                f"the __main__ block calls {what} without {fixture}, which the rewrite adds; "
                "pass one here by hand"
            )
            found.append(Finding(other.path, line, column, site.code, "error", message, False))
    return found
