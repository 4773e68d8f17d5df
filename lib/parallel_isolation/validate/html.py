"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, nothing fetched).

What it shows, top to bottom: both verdicts (tests, isolation) as pills and
cards (run duration, the recorder's overhead against its target, the host load); the failed tests
with their failure text and links to their logs; a per-worker timeline of the
tests (coloured by outcome, findings marked in a strip under each lane);
resource charts (RSS, threads, file descriptors, child processes per worker,
and live containers and networks on Docker runs); the findings grouped by
code, each place linked to the file and line beside the report; the slowest
tests; per-worker start → end figures; notes and the log pattern table.

The timeline and every chart share one time axis, seconds from the run's
start, and the same horizontal scale, so they line up.  Counts get integer
ticks and step lines (a sample holds until the next one).
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parallel_isolation.console import natural_key, natural_sorted
from parallel_isolation.validate.model import Finding, Report, Severity, group_findings
from parallel_isolation.validate.render import OVERHEAD_TARGET_MS

__all__ = ["nice_ticks", "render_html", "series_colour"]

OUTCOME_COLOURS = {
    "passed": "#3fa34d",
    "failed": "#d63c3c",
    "error": "#ef8a17",
    "skipped": "#9aa5b1",
    "xfailed": "#9aa5b1",
    "xpassed": "#e0b000",
    "crashed": "#6b2fa3",
    "unknown": "#c8ced6",
}
SEVERITY_COLOURS = {"error": "#d63c3c", "warning": "#e0a100", "info": "#7a8896"}
VERDICT_COLOURS = {
    "clean": "#2e8540",
    "passed": "#2e8540",
    "findings": "#c62828",
    "failed": "#c62828",
    "could not validate": "#6b2fa3",
    "could not fully validate": "#6b2fa3",
    "no tests": "#8a6d00",
    "unknown": "#8a6d00",
}
_BASE_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip

# One horizontal layout for the timeline and every chart, so they line up.
WIDTH = 1120
LEFT = 74
RIGHT = 34  # room for the last tick label
PLOT = WIDTH - LEFT - RIGHT
LANE = 26
BAR = 15
CHART_HEIGHT = 120
MARKER_GAP = 14.0  # markers closer than this (px) in one lane are drawn as one, with a count

CSS = """
:root { --fg:#1d2329; --muted:#5f6b76; --line:#e3e7eb; --bg:#f7f9fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; color: var(--fg);
       margin: 0; background: var(--bg); }
header { padding: 20px 28px; background: #fff; border-bottom: 1px solid var(--line); }
main { padding: 8px 28px 40px; max-width: 1240px; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 28px 0 10px; }
.pill { display: inline-block; padding: 3px 11px; border-radius: 12px; color: #fff;
        font-weight: 600; margin-right: 8px; font-size: 13px; }
.muted { color: var(--muted); } code, pre { font-size: 12px; }
pre { white-space: pre-wrap; background: #fbfbfc; border: 1px solid var(--line); padding: 8px;
      border-radius: 6px; max-height: 320px; overflow: auto; margin: 6px 0 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 14px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px;
        min-width: 130px; }
.card b { display: block; font-size: 20px; } .card span { color: var(--muted); font-size: 12px; }
.card.bad b { color: #c62828; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px;
         overflow-x: auto; margin-bottom: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #fafbfc; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.sev { font-weight: 700; text-transform: uppercase; font-size: 11px; }
.hint { color: #0b6e99; font-size: 12px; }
.places { font-size: 12px; margin: 4px 0 0; padding-left: 16px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 12px; margin: 6px 0; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
            margin-right: 4px; vertical-align: -2px; }
details summary { cursor: pointer; font-weight: 600; margin: 6px 0; }
.problem { color: #6b2fa3; font-weight: 600; }
a { color: #0b5cad; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
svg text.lane { fill: var(--fg); font-weight: 600; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def nice_ticks(low: float, high: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values covering ``[low, high]``, about ``count`` of them, none repeated.

    ``integer`` ticks (for counts) are whole numbers with a step of at least 1.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high < low:
        low, high = high, low
    span = high - low
    if span <= 0:
        span = 1.0 if integer or low == 0 else abs(low) * 0.1 or 1.0
    raw = span / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
        if step not in (1, 2, 5) and step < 10:
            step = 5.0 if step > 2 else 2.0
    first = math.floor(low / step + 1e-9) * step
    ticks = [round(first, 10)]
    while ticks[-1] < high - step * 1e-9 or len(ticks) < 2:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def series_colour(index: int, count: int) -> str:
    """A colour per series: a qualitative palette up to 10, then evenly spread hues.

    Hues step by the golden angle and lightness cycles through three levels,
    so neighbours differ and no two of any count share a colour.
    """
    if count <= len(_BASE_PALETTE):
        return _BASE_PALETTE[index]
    hue = (index * 137.508) % 360
    lightness = (38, 52, 64)[index % 3]
    return f"hsl({hue:.1f},68%,{lightness}%)"


@dataclass(frozen=True)
class _Axis:
    """The shared time axis: seconds from the run's start."""

    t0: float
    t1: float

    @property
    def seconds(self) -> float:
        return max(self.t1 - self.t0, 0.001)

    def x(self, ts: float) -> float:
        return LEFT + (ts - self.t0) / self.seconds * PLOT

    def ticks(self) -> list[float]:
        # The axis ends at the run's end, not at the next round tick.
        return [t for t in nice_ticks(0.0, self.seconds, 8) if t <= self.seconds + 1e-9]

    def grid(self, top: float, bottom: float, *, labels_at: float | None) -> list[str]:
        parts = []
        for tick in self.ticks():
            tx = LEFT + tick / self.seconds * PLOT
            parts.append(
                f"<line x1='{tx:.1f}' x2='{tx:.1f}' y1='{top:.1f}' y2='{bottom:.1f}' "
                "stroke='#eef1f4'/>"
            )
            if labels_at is not None:
                parts.append(
                    f"<text x='{tx:.1f}' y='{labels_at:.1f}' text-anchor='middle'>"
                    f"{_fmt_seconds(tick)}</text>"
                )
        return parts


def _fmt_seconds(value: float) -> str:
    return f"{value:.0f} s" if value == int(value) else f"{value:g} s"


def _axis(report: Report) -> _Axis | None:
    stamps: list[float] = []
    record = report.sections.get("run", {}).get("record") or {}
    for key in ("started", "finished"):
        if isinstance(record.get(key), int | float):
            stamps.append(float(record[key]))
    for span in report.sections.get("events", {}).get("timeline", []):
        stamps.append(float(span["start"]))
        if span.get("end") is not None:
            stamps.append(float(span["end"]))
    for summary in (report.sections.get("resources", {}).get("workers") or {}).values():
        stamps.extend(float(point["ts"]) for point in summary.get("series", []))
    if not stamps:
        return None
    start = record.get("started")
    t0 = float(start) if isinstance(start, int | float) else min(stamps)
    return _Axis(t0, max(max(stamps), t0 + 0.001))


class _Links:
    """Relative links from where the report is written to the files of the run."""

    def __init__(self, run_dir: str, base: Path | None) -> None:
        self.run_dir = Path(run_dir)
        self.base = base if base is not None else self.run_dir

    def href(self, relative: str) -> str:
        target = self.run_dir / relative
        try:
            return Path(os.path.relpath(target, self.base)).as_posix()
        except ValueError:  # another drive (Windows): an absolute link
            return target.as_uri()

    def anchor(self, relative: str, line: int | None = None) -> str:
        label = f"{relative}:{line}" if line is not None else relative
        return f"<a href='{_e(self.href(relative))}'><code>{_e(label)}</code></a>"


def _finding_where(finding: Finding, links: _Links) -> str:
    if finding.file is None:
        return ""
    if Path(finding.file).is_absolute():
        return f"<code>{_e(finding.where)}</code>"
    return links.anchor(finding.file, finding.line)


# -- timeline -----------------------------------------------------------------------


def _markers(findings: list[Finding], axis: _Axis) -> list[tuple[float, list[Finding]]]:
    """Findings of one lane as (x, findings) clusters, left to right."""
    clusters: list[tuple[float, list[Finding]]] = []
    for finding in sorted(findings, key=lambda f: f.ts or 0.0):
        x = axis.x(float(finding.ts or axis.t0))
        if clusters and x - clusters[-1][0] < MARKER_GAP:
            clusters[-1][1].append(finding)
        else:
            clusters.append((x, [finding]))
    return clusters


def _timeline(report: Report, axis: _Axis | None) -> str:
    spans: list[dict[str, Any]] = report.sections.get("events", {}).get("timeline", [])
    workers = natural_sorted(
        {str(s["worker"]) for s in spans} | set(report.sections.get("run", {}).get("workers", []))
    )
    if axis is None or not spans or not workers:
        return "<p class='muted'>No test start/end events were recorded.</p>"
    top = 24
    height = top + LANE * len(workers) + 6
    parts = [
        f"<svg viewBox='0 0 {WIDTH} {height}' width='100%' role='img' "
        "aria-label='timeline of tests per worker'>",
        *axis.grid(top - 6, height - 4, labels_at=12),
    ]
    row = {worker: index for index, worker in enumerate(workers)}
    for worker, index in row.items():
        y = top + index * LANE
        parts.append(
            f"<text class='lane' x='6' y='{y + 12}'>{_e(worker)}</text>"
            f"<line x1='{LEFT}' x2='{LEFT + PLOT}' y1='{y + LANE - 1}' y2='{y + LANE - 1}' "
            "stroke='#f1f3f5'/>"
        )
    for span in spans:
        y = top + row[str(span["worker"])] * LANE
        start = float(span["start"])
        end = float(span["end"] if span["end"] is not None else start)
        colour = OUTCOME_COLOURS.get(str(span["outcome"]), OUTCOME_COLOURS["unknown"])
        x0 = axis.x(start)
        w = max(1.5, axis.x(end) - x0)
        title = f"{span['test']}\n{span['outcome']}, {end - start:.3f} s on {span['worker']}"
        title += f"\nfrom {start - axis.t0:.2f} s to {end - axis.t0:.2f} s after the run started"
        if span.get("leaks"):
            title += f"\n{span['leaks']} leak(s)"
        parts.append(
            f"<rect x='{x0:.1f}' y='{y + 1}' width='{w:.1f}' height='{BAR}' rx='2' "
            f"fill='{colour}' opacity='0.85'><title>{_e(title)}</title></rect>"
        )
        fits = int((w - 6) / 6.2)  # about 6 px per character at 10 px
        name = str(span["test"]).rsplit("::", 1)[-1]
        if fits >= 4:
            label = name if len(name) <= fits else name[: fits - 1] + "…"
            parts.append(
                f"<text x='{x0 + 3:.1f}' y='{y + 12}' style='fill:#fff;font-size:10px' "
                f"pointer-events='none'>{_e(label)}</text>"
            )
    # Findings in a strip under the bars, never over the test names; close ones merge.
    by_lane: dict[str, list[Finding]] = {}
    for finding in report.findings:
        if finding.ts is not None and finding.worker in row:
            by_lane.setdefault(str(finding.worker), []).append(finding)
    for worker, findings in by_lane.items():
        y = top + row[worker] * LANE + BAR + 2
        for x, cluster in _markers(findings, axis):
            worst = max(f.severity for f in cluster)
            colour = SEVERITY_COLOURS[worst.label]
            lines = [f"{f.severity.label} {f.code}: {f.message}" for f in cluster[:8]]
            if len(cluster) > 8:
                lines.append(f"... and {len(cluster) - 8} more")
            parts.append(
                f"<path d='M{x:.1f},{y} l-4,7 h8 z' fill='{colour}'>"
                f"<title>{_e(chr(10).join(lines))}</title></path>"
            )
            if len(cluster) > 1:
                parts.append(
                    f"<text x='{x + 5:.1f}' y='{y + 7}' style='font-size:9px'>{len(cluster)}</text>"
                )
    parts.append("</svg>")
    legend = "".join(
        f"<span><i style='background:{colour}'></i>{_e(name)}</span>"
        for name, colour in OUTCOME_COLOURS.items()
        if name != "unknown"
    ) + "".join(
        f"<span><i style='background:{colour};clip-path:polygon(50% 0,100% 100%,0 100%)'></i>"
        f"{_e(name)} finding</span>"
        for name, colour in SEVERITY_COLOURS.items()
    )
    return (
        f"<div class='legend'>{legend}</div>{''.join(parts)}"
        f"<p class='muted'>Seconds from the run's start ({_clock(axis.t0)}); "
        "hover a bar or a marker for details.</p>"
    )


# -- charts -------------------------------------------------------------------------


def _step_path(points: Sequence[tuple[float, float]], sx: Any, sy: Any) -> str:
    """An SVG path that holds each sample's value until the next sample (step after)."""
    commands = []
    for index, (t, v) in enumerate(points):
        x, y = sx(t), sy(v)
        if index == 0:
            commands.append(f"M{x:.1f},{y:.1f}")
        else:
            commands.append(f"H{x:.1f}V{y:.1f}")
    return "".join(commands)


def _chart(
    title: str,
    series: dict[str, list[tuple[float, float]]],
    unit: str,
    axis: _Axis,
    colours: dict[str, str],
    *,
    integer: bool,
) -> str:
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    top, height = 10, CHART_HEIGHT
    ticks = nice_ticks(
        min(0.0, min(p[1] for p in points)), max(p[1] for p in points), 4, integer=integer
    )
    low, high = ticks[0], ticks[-1]

    def sx(t: float) -> float:
        return axis.x(t)

    def sy(v: float) -> float:
        return top + height - (v - low) / max(high - low, 1e-9) * height

    bottom = top + height
    parts = [
        f"<svg viewBox='0 0 {WIDTH} {bottom + 22}' width='100%' role='img' "
        f"aria-label='{_e(title)}'>",
        *axis.grid(top, bottom, labels_at=bottom + 15),
    ]
    for value in ticks:
        y = sy(value)
        label = f"{value:.0f}" if integer or value == int(value) else f"{value:g}"
        parts.append(
            f"<line x1='{LEFT}' x2='{LEFT + PLOT}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eef1f4'/>"
            f"<text x='{LEFT - 6}' y='{y + 4:.1f}' text-anchor='end'>{_e(label)}</text>"
        )
    for name in natural_sorted(series):
        values = series[name]
        parts.append(
            f"<path d='{_step_path(values, sx, sy)}' fill='none' stroke='{colours[name]}' "
            f"stroke-width='1.5'><title>{_e(name)}: {values[0][1]:g} → {values[-1][1]:g} "
            f"{_e(unit)}</title></path>"
        )
    parts.append("</svg>")
    return f"<div class='panel'><b>{_e(title)}</b>{''.join(parts)}</div>"


def _charts(report: Report, axis: _Axis | None) -> str:
    workers: dict[str, Any] = report.sections.get("resources", {}).get("workers") or {}
    if axis is None:
        return "<p class='muted'>No resource snapshots were recorded.</p>"
    names = natural_sorted(workers)
    colours = {name: series_colour(i, len(names)) for i, name in enumerate(names)}
    metrics: Sequence[tuple[str, str, str, float, bool]] = (
        ("rss", "Resident memory per worker", "MB", 1048576.0, False),
        ("threads", "OS threads per worker", "threads", 1.0, True),
        ("fds", "Open file descriptors per worker", "fds", 1.0, True),
        ("children", "Child processes per worker", "processes", 1.0, True),
    )
    charts = []
    for key, title, unit, scale, integer in metrics:
        series = {
            worker: [
                (float(point["ts"]), float(point[key]) / scale)
                for point in summary.get("series", [])
                if isinstance(point.get(key), int | float) and point[key] >= 0
            ]
            for worker, summary in workers.items()
        }
        chart = _chart(
            f"{title} ({unit})",
            {w: v for w, v in series.items() if v},
            unit,
            axis,
            colours,
            integer=integer,
        )
        if chart:
            charts.append(chart)
    docker = report.sections.get("docker", {}).get("series") or []
    if docker:
        end = axis.t1
        objects = {
            kind: [(float(p["ts"]), float(p[kind])) for p in docker]
            + [(end, float(docker[-1][kind]))]
            for kind in ("containers", "networks")
        }
        charts.append(
            _chart(
                "Live containers and networks of the run (all workers)",
                objects,
                "objects",
                axis,
                {"containers": "#1f77b4", "networks": "#ff7f0e"},
                integer=True,
            ).replace(
                "</b>",
                "</b><div class='legend'><span><i style='background:#1f77b4'></i>containers</span>"
                "<span><i style='background:#ff7f0e'></i>networks</span></div>",
                1,
            )
        )
    if not charts:
        return "<p class='muted'>No resource snapshots were recorded.</p>"
    legend = "".join(f"<span><i style='background:{colours[w]}'></i>{_e(w)}</span>" for w in names)
    return (
        f"<div class='legend'>{legend}</div>{''.join(charts)}"
        "<p class='muted'>Same time axis as the timeline; each sample holds until the next.</p>"
    )


# -- tables -------------------------------------------------------------------------


def _failed_tests(report: Report, links: _Links) -> str:
    failed = report.tests.failed
    if not failed:
        verdict = report.tests.verdict
        if verdict == "failed":
            return (
                f"<p class='problem'>pytest exited with status {report.tests.exitstatus}; "
                "no test recorded a failure (a collection or configuration error?).</p>"
            )
        return "<p>No test failed.</p>"
    rows = []
    for test in failed:
        where = [links.anchor(test.file, test.line)] if test.file else []
        where += [links.anchor(log) for log in test.logs]
        excerpt = (
            f"<details><summary>failure text</summary><pre>{_e(test.failure)}</pre></details>"
            if test.failure
            else ""
        )
        rows.append(
            f"<tr><td class='sev' style='color:{OUTCOME_COLOURS.get(test.outcome, '#c62828')}'>"
            f"{_e(test.outcome)}</td><td>{_e(test.worker)}</td>"
            f"<td><code>{_e(test.test)}</code><div>{_e(test.summary)}</div>{excerpt}</td>"
            f"<td>{'<br>'.join(where)}</td></tr>"
        )
    return (
        "<div class='panel'><table><tr><th>outcome</th><th>worker</th><th>test</th>"
        f"<th>event and logs</th></tr>{''.join(rows)}</table></div>"
    )


def _findings(report: Report, links: _Links) -> str:
    if not report.findings:
        return "<p>No findings.</p>"
    blocks = []
    for severity in sorted(Severity, reverse=True):
        groups = group_findings(f for f in report.sorted_findings() if f.severity == severity)
        if not groups:
            continue
        body = []
        for group in groups:
            example = group.example
            places = "".join(
                "<li>"
                + " ".join(
                    part
                    for part in (
                        f"<b>{_e(f.worker)}</b>" if f.worker else "",
                        f"<code>{_e(f.test)}</code>" if f.test else "",
                        _finding_where(f, links),
                        f"<span class='muted'>{_e(f.message)}</span>"
                        if f is not example and f.message != example.message
                        else "",
                    )
                    if part
                )
                + "</li>"
                for f in group.findings
            )
            hints = "".join(
                f"<div class='hint'>→ {_e(hint)}</div>"
                for hint in dict.fromkeys(f.hint for f in group.findings if f.hint)
            )
            body.append(
                f"<tr><td class='sev' style='color:{SEVERITY_COLOURS[severity.label]}'>"
                f"{_e(severity.label)}</td><td><code>{_e(group.code)}</code></td>"
                f"<td class='num'>{group.count}</td><td>{_e(example.message)}{hints}"
                f"<ul class='places'>{places}</ul></td></tr>"
            )
        count = sum(group.count for group in groups)
        is_open = " open" if severity >= Severity.WARNING else ""
        blocks.append(
            f"<details{is_open}><summary>{count} {severity.label} in {len(groups)} "
            f"group{'s' if len(groups) != 1 else ''}"
            "</summary><div class='panel'><table><tr><th>sev</th><th>code</th><th>count</th>"
            f"<th>what, and where</th></tr>{''.join(body)}</table></div></details>"
        )
    return "".join(blocks)


def _slowest(report: Report) -> str:
    slowest = report.tests.slowest
    if not slowest:
        return "<p class='muted'>No test durations were recorded.</p>"
    rows = "".join(
        f"<tr><td class='num'>{float(s['duration_s']):.2f} s</td><td>{_e(s['worker'])}</td>"
        f"<td style='color:{OUTCOME_COLOURS.get(str(s['outcome']), '#5f6b76')}'>"
        f"{_e(s['outcome'])}</td><td><code>{_e(s['test'])}</code></td></tr>"
        for s in slowest
    )
    return (
        "<div class='panel'><table><tr><th>duration</th><th>worker</th><th>outcome</th>"
        f"<th>test</th></tr>{rows}</table></div>"
    )


def _resource_table(report: Report) -> str:
    workers: dict[str, Any] = report.sections.get("resources", {}).get("workers", {})
    if not workers:
        return ""
    rows = []
    for worker in sorted(workers, key=natural_key):
        summary = workers[worker]
        cells = [f"<td>{_e(worker)}</td><td class='num'>{summary['tests']}</td>"]
        cells.append(
            f"<td>{'yes' if summary['finished'] else '<b style=color:#c62828>no</b>'}</td>"
        )
        for key in ("rss", "threads", "fds", "sockets", "children"):
            start, end = summary["start"][key], summary["end"][key]
            if key == "rss":
                start = None if start is None else round(start / 1048576)
                end = None if end is None else round(end / 1048576)
            cells.append(
                f"<td class='num'>{'-' if start is None else start} → "
                f"{'-' if end is None else end}</td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<div class='panel'><table><tr><th>worker</th><th>tests</th><th>finished</th>"
        "<th>RSS MB</th><th>threads</th><th>fds</th><th>sockets</th><th>children</th></tr>"
        + "".join(rows)
        + "</table></div>"
    )


def _patterns(report: Report) -> str:
    patterns = report.sections.get("logs", {}).get("patterns", [])
    rows = "".join(
        f"<tr><td><code>{_e(p['code'])}</code></td><td>{_e(p['title'])}</td>"
        f"<td><code>{_e(p['regex'])}</code></td><td>{_e(p['severity'])}</td>"
        f"<td>{_e(', '.join(p['sources']))}</td><td>{_e(p['excuse'] or '')}</td></tr>"
        for p in patterns
    )
    return (
        "<details><summary>Log pattern table</summary><div class='panel'><table><tr><th>code</th>"
        "<th>title</th><th>regex</th><th>severity</th><th>sources</th><th>excused when</th></tr>"
        f"{rows}</table></div></details>"
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def _cards(report: Report) -> str:
    counts = report.counts()
    tests = report.tests
    events = report.sections.get("events", {})
    overhead = events.get("overhead_ms", {})
    crosstalk = report.sections.get("crosstalk", {})
    docker = report.sections.get("docker", {})
    median = overhead.get("median")
    cpu = (events.get("overhead_cpu_ms") or {}).get("median")
    cpu_text = "" if cpu is None else f"; CPU {cpu:.1f} ms"
    host = events.get("host") or {}
    cards: list[tuple[object, str, bool]] = [
        (_duration(tests.duration_s), "run duration", False),
        (len(report.sections.get("run", {}).get("workers", [])), "workers", False),
        (tests.total, "tests", False),
        (
            sum(tests.counts.get(k, 0) for k in ("failed", "error", "crashed")),
            "failed",
            bool(tests.failed),
        ),
        (counts["error"], "isolation errors", counts["error"] > 0),
        (counts["warning"], "warnings", counts["warning"] > 0),
        (counts["info"], "info", False),
        (crosstalk.get("messages", 0), "cross-talk messages", bool(crosstalk.get("messages"))),
        (
            "n/a" if not docker.get("reachable") else docker.get("of_this_run", 0),
            "Docker objects left",
            bool(docker.get("of_this_run")),
        ),
        (
            "-" if median is None else f"{median:.1f} ms",
            f"recorder overhead / test, median{cpu_text} (target ≤ {OVERHEAD_TARGET_MS:g} ms)",
            median is not None and median > OVERHEAD_TARGET_MS,
        ),
    ]
    if host.get("load_end") is not None:
        cards.append(
            (
                f"{host['load_end']:.1f}",
                f"host load at the end, on {host.get('cpus') or '?'} CPUs",
                False,
            )
        )
    return "".join(
        f"<div class='card{' bad' if bad else ''}'><b>{_e(value)}</b><span>{_e(label)}</span></div>"
        for value, label, bad in cards
    )


def render_html(report: Report, *, base: Path | None = None) -> str:
    """The whole report as one HTML document.

    ``base`` is the directory the file will be written to; links to the
    run's files are relative to it (default: the run directory).
    """
    links = _Links(report.run_dir, base)
    verdict = report.verdict
    tests = report.tests
    record = report.sections.get("run", {}).get("record") or {}
    axis = _axis(report)
    problems = (
        "<div class='problem'>Not validated (exit 2):<ul>"
        + "".join(f"<li>{_e(p)}</li>" for p in report.problems)
        + "</ul></div>"
        if report.problems
        else ""
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    started = record.get("started") if isinstance(record.get("started"), int | float) else None
    when = (
        dt.datetime.fromtimestamp(float(started)).isoformat(sep=" ", timespec="seconds")
        if started is not None
        else "unknown"
    )
    failed_count = len(tests.failed)
    tests_pill = f"tests: {tests.verdict}" + (f" ({failed_count})" if failed_count else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>run {_e(report.run_id)}: tests {_e(tests.verdict)}, isolation {_e(verdict)}</title>
<style>{CSS}</style></head>
<body>
<header>
<h1>Run <code>{_e(report.run_id)}</code></h1>
<div><span class="pill" style="background:{VERDICT_COLOURS[tests.verdict]}">{_e(tests_pill)}</span>
<span class="pill" style="background:{VERDICT_COLOURS[verdict]}">isolation: {_e(verdict)} · exit {report.exit_code()}</span></div>
<div class="muted">started {_e(when)} · {_e(tests.describe())} ·
validated in {report.elapsed_s:.2f} s · isolation fails on {_e(report.fail_on.label)}<br>
<code>{_e(report.run_dir)}</code></div>
<div class="cards">{_cards(report)}</div>
{problems}
</header>
<main>
<h2>Failed tests</h2>
{_failed_tests(report, links)}
<h2>Timeline: tests per worker</h2>
<div class="panel">{_timeline(report, axis)}</div>
<h2>Resources over time</h2>
{_charts(report, axis)}
<h2>Findings</h2>
{_findings(report, links)}
<h2>Slowest tests</h2>
{_slowest(report)}
<h2>Per worker, session start → end</h2>
{_resource_table(report)}
<h2>Notes</h2>
<ul>{notes or "<li>none</li>"}</ul>
{_patterns(report)}
</main></body></html>
"""
