"""The HTML report: one self-contained file (inline CSS and SVG, no scripts from anywhere).

Sections: the verdict, a per-worker timeline (which test ran when on which
worker, coloured by outcome, with the findings marked where they happened),
resource charts over time (RSS, threads, file descriptors, child processes
per worker), the findings, per-worker resource deltas and the pattern table.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import Any

from parallel_isolation.validate.model import Report, Severity

__all__ = ["render_html"]

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
VERDICT_COLOURS = {"clean": "#2e8540", "findings": "#c62828", "could not validate": "#6b2fa3"}
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a",
    "#637939", "#8c6d31", "#843c39", "#7b4173",
)  # fmt: skip

CSS = """
:root { --fg:#1d2329; --muted:#5f6b76; --line:#e3e7eb; --bg:#f7f9fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; color: var(--fg);
       margin: 0; background: var(--bg); }
header { padding: 20px 28px; background: #fff; border-bottom: 1px solid var(--line); }
main { padding: 8px 28px 40px; }
h1 { font-size: 20px; margin: 0 0 6px; } h2 { font-size: 16px; margin: 28px 0 10px; }
.verdict { display: inline-block; padding: 3px 10px; border-radius: 12px; color: #fff;
           font-weight: 600; margin-left: 8px; font-size: 13px; }
.muted { color: var(--muted); } code { font-size: 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 14px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px;
        min-width: 130px; }
.card b { display: block; font-size: 20px; } .card span { color: var(--muted); font-size: 12px; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px;
         overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #fafbfc; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.sev { font-weight: 700; text-transform: uppercase; font-size: 11px; }
.hint { color: #0b6e99; font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 12px; font-size: 12px; margin: 6px 0; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
            margin-right: 4px; vertical-align: -2px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 12px; }
details summary { cursor: pointer; font-weight: 600; margin: 6px 0; }
.problem { color: #6b2fa3; font-weight: 600; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _timeline(report: Report) -> str:
    spans: list[dict[str, Any]] = report.sections.get("events", {}).get("timeline", [])
    workers = sorted(
        {str(s["worker"]) for s in spans} | set(report.sections.get("run", {}).get("workers", [])),
        key=_worker_key,
    )
    if not spans or not workers:
        return "<p class='muted'>No test start/end events were recorded.</p>"
    starts = [float(s["start"]) for s in spans]
    ends = [float(s["end"] if s["end"] is not None else s["start"]) for s in spans]
    t0, t1 = min(starts), max(ends)
    findings = [f for f in report.findings if f.ts is not None and f.worker in workers]
    t0 = min([t0, *(f.ts for f in findings if f.ts is not None and f.ts >= t0 - 5)])
    t1 = max([t1, *(f.ts for f in findings if f.ts is not None and f.ts <= t1 + 5)])
    span_s = max(t1 - t0, 0.001)
    left, width, lane = 70, 1040, 24
    height = 30 + lane * len(workers)

    def x(ts: float) -> float:
        return left + (ts - t0) / span_s * width

    parts = [
        f"<svg viewBox='0 0 {left + width + 20} {height + 10}' width='100%' "
        f"role='img' aria-label='timeline of tests per worker'>"
    ]
    for tick in range(6):
        tx = left + width * tick / 5
        seconds = span_s * tick / 5
        parts.append(
            f"<line x1='{tx:.1f}' x2='{tx:.1f}' y1='18' y2='{height}' stroke='#eef1f4'/>"
            f"<text x='{tx:.1f}' y='12' text-anchor='middle'>+{seconds:.1f}s</text>"
        )
    row = {worker: index for index, worker in enumerate(workers)}
    for worker, index in row.items():
        y = 22 + index * lane
        parts.append(
            f"<text x='4' y='{y + 14}'>{_e(worker)}</text>"
            f"<line x1='{left}' x2='{left + width}' y1='{y + lane - 2}' y2='{y + lane - 2}' stroke='#f1f3f5'/>"
        )
    for span in spans:
        y = 22 + row[str(span["worker"])] * lane
        start = float(span["start"])
        end = float(span["end"] if span["end"] is not None else start)
        colour = OUTCOME_COLOURS.get(str(span["outcome"]), OUTCOME_COLOURS["unknown"])
        w = max(1.5, x(end) - x(start))
        title = f"{span['test']}\n{span['outcome']}, {end - start:.3f} s on {span['worker']}"
        if span.get("leaks"):
            title += f"\n{span['leaks']} leak(s)"
        parts.append(
            f"<rect x='{x(start):.1f}' y='{y + 2}' width='{w:.1f}' height='{lane - 8}' rx='2' "
            f"fill='{colour}' opacity='0.85'><title>{_e(title)}</title></rect>"
        )
        fits = int((w - 6) / 6.2)  # about 6 px per character at 10 px
        if fits >= 6:
            name = str(span["test"]).rsplit("::", 1)[-1]
            label = name if len(name) <= fits else name[: fits - 1] + "…"
            parts.append(
                f"<text x='{x(start) + 3:.1f}' y='{y + lane / 2 + 1:.1f}' "
                f"style='fill:#fff;font-size:10px' pointer-events='none'>{_e(label)}</text>"
            )
    for finding in sorted(findings, key=lambda f: int(f.severity)):
        if finding.ts is None or finding.worker is None:
            continue
        y = 22 + row[finding.worker] * lane
        cx = x(finding.ts)
        colour = SEVERITY_COLOURS[finding.severity.label]
        parts.append(
            f"<path d='M{cx:.1f},{y + lane - 4} l-5,-9 h10 z' fill='{colour}' stroke='#fff' "
            f"stroke-width='0.8'><title>{_e(finding.severity.label)}: {_e(finding.message)}"
            f"{_e(chr(10) + finding.test) if finding.test else ''}</title></path>"
        )
    parts.append("</svg>")
    legend = "".join(
        f"<span><i style='background:{colour}'></i>{_e(name)}</span>"
        for name, colour in OUTCOME_COLOURS.items()
        if name != "unknown"
    ) + "".join(
        f"<span><i style='background:{colour};clip-path:polygon(0 0,100% 0,50% 100%)'></i>"
        f"{_e(name)} finding</span>"
        for name, colour in SEVERITY_COLOURS.items()
    )
    return (
        f"<div class='legend'>{legend}</div>{''.join(parts)}"
        f"<p class='muted'>Started {_clock(t0)}; hover a bar or a marker for details.</p>"
    )


def _worker_key(worker: str) -> tuple[int, str]:
    return (
        (int(worker[2:]), worker)
        if worker.startswith("gw") and worker[2:].isdigit()
        else (-1, worker)
    )


def _chart(title: str, series: dict[str, list[tuple[float, float]]], unit: str) -> str:
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    t0 = min(p[0] for p in points)
    t1 = max(p[0] for p in points)
    low = min(0.0, min(p[1] for p in points))
    high = max(p[1] for p in points) or 1.0
    high *= 1.08
    left, top, width, height = 48, 10, 400, 150

    def sx(t: float) -> float:
        return left + (t - t0) / max(t1 - t0, 0.001) * width

    def sy(v: float) -> float:
        return top + height - (v - low) / max(high - low, 1e-9) * height

    parts = [f"<svg viewBox='0 0 {left + width + 10} {top + height + 24}' width='100%'>"]
    for step in range(5):
        value = low + (high - low) * step / 4
        y = sy(value)
        parts.append(
            f"<line x1='{left}' x2='{left + width}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eef1f4'/>"
            f"<text x='{left - 4}' y='{y + 4:.1f}' text-anchor='end'>{value:.0f}</text>"
        )
    parts.append(
        f"<text x='{left}' y='{top + height + 18}'>{_clock(t0)}</text>"
        f"<text x='{left + width}' y='{top + height + 18}' text-anchor='end'>{_clock(t1)}</text>"
    )
    for index, (worker, values) in enumerate(
        sorted(series.items(), key=lambda kv: _worker_key(kv[0]))
    ):
        colour = PALETTE[index % len(PALETTE)]
        path = " ".join(f"{sx(t):.1f},{sy(v):.1f}" for t, v in values)
        parts.append(
            f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='1.5'>"
            f"<title>{_e(worker)}: {values[0][1]:.0f} → {values[-1][1]:.0f} {_e(unit)}</title></polyline>"
        )
    parts.append("</svg>")
    legend = "".join(
        f"<span><i style='background:{PALETTE[i % len(PALETTE)]}'></i>{_e(w)}</span>"
        for i, w in enumerate(sorted(series, key=_worker_key))
    )
    return f"<div class='panel'><b>{_e(title)}</b><div class='legend'>{legend}</div>{''.join(parts)}</div>"


def _charts(report: Report) -> str:
    workers: dict[str, Any] = report.sections.get("resources", {}).get("workers", {})
    metrics: Sequence[tuple[str, str, str, float]] = (
        ("rss", "Resident memory", "MB", 1048576.0),
        ("threads", "OS threads", "threads", 1.0),
        ("fds", "Open file descriptors", "fds", 1.0),
        ("children", "Child processes", "processes", 1.0),
    )
    charts = []
    for key, title, unit, scale in metrics:
        series = {
            worker: [
                (float(point["ts"]), float(point[key]) / scale)
                for point in summary.get("series", [])
                if isinstance(point.get(key), int | float) and point[key] >= 0
            ]
            for worker, summary in workers.items()
        }
        chart = _chart(f"{title} ({unit})", {w: v for w, v in series.items() if v}, unit)
        if chart:
            charts.append(chart)
    if not charts:
        return "<p class='muted'>No resource snapshots were recorded.</p>"
    return f"<div class='charts'>{''.join(charts)}</div>"


def _findings(report: Report) -> str:
    if not report.findings:
        return "<p>No findings.</p>"
    blocks = []
    for severity in sorted(Severity, reverse=True):
        rows = [f for f in report.sorted_findings() if f.severity == severity]
        if not rows:
            continue
        body = "".join(
            "<tr>"
            f"<td class='sev' style='color:{SEVERITY_COLOURS[f.severity.label]}'>{_e(f.severity.label)}</td>"
            f"<td><code>{_e(f.code)}</code></td><td>{_e(f.worker or '')}</td>"
            f"<td><code>{_e(f.test or '')}</code></td><td><code>{_e(f.where)}</code></td>"
            f"<td>{_e(f.message)}"
            + (f"<div class='hint'>→ {_e(f.hint)}</div>" if f.hint else "")
            + "</td></tr>"
            for f in rows
        )
        is_open = " open" if severity >= Severity.WARNING else ""
        blocks.append(
            f"<details{is_open}><summary>{len(rows)} {severity.label}</summary>"
            "<div class='panel'><table><tr><th>sev</th><th>code</th><th>worker</th><th>test</th>"
            f"<th>where</th><th>what</th></tr>{body}</table></div></details>"
        )
    return "".join(blocks)


def _resource_table(report: Report) -> str:
    workers: dict[str, Any] = report.sections.get("resources", {}).get("workers", {})
    if not workers:
        return ""
    rows = []
    for worker in sorted(workers, key=_worker_key):
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
                f"<td class='num'>{'-' if start is None else start} → {'-' if end is None else end}</td>"
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


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    verdict = report.verdict
    counts = report.counts()
    events = report.sections.get("events", {})
    overhead = events.get("overhead_ms", {})
    crosstalk = report.sections.get("crosstalk", {})
    docker = report.sections.get("docker", {})
    record = report.sections.get("run", {}).get("record") or {}
    cards = [
        (len(report.sections.get("run", {}).get("workers", [])), "workers"),
        (events.get("tests", 0), "tests"),
        (counts["error"], "errors"),
        (counts["warning"], "warnings"),
        (counts["info"], "info"),
        (crosstalk.get("messages", 0), "cross-talk messages"),
        (
            "n/a" if not docker.get("reachable") else docker.get("of_this_run", 0),
            "Docker objects left",
        ),
        (
            "-" if overhead.get("median") is None else f"{overhead['median']:.2f} ms",
            "snapshot overhead / test (median)",
        ),
    ]
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(events.get("outcomes", {}).items()))
    problems = "".join(
        f"<p class='problem'>could not validate: {_e(p)}</p>" for p in report.problems
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    started = record.get("started")
    when = (
        dt.datetime.fromtimestamp(float(started)).isoformat(sep=" ", timespec="seconds")
        if isinstance(started, int | float)
        else "unknown"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>validate {_e(report.run_id)}: {_e(verdict)}</title>
<style>{CSS}</style></head>
<body>
<header>
<h1>Run <code>{_e(report.run_id)}</code>
<span class="verdict" style="background:{VERDICT_COLOURS[verdict]}">{_e(verdict)} · exit {report.exit_code()}</span></h1>
<div class="muted">started {_e(when)} · exit status {_e(record.get("exitstatus", "?"))} ·
outcomes: {_e(outcomes or "none")} · validated in {report.elapsed_s:.2f} s · fails on {_e(report.fail_on.label)}<br>
<code>{_e(report.run_dir)}</code></div>
<div class="cards">{"".join(f"<div class='card'><b>{_e(v)}</b><span>{_e(k)}</span></div>" for v, k in cards)}</div>
{problems}
</header>
<main>
<h2>Timeline: tests per worker</h2>
<div class="panel">{_timeline(report)}</div>
<h2>Findings</h2>
{_findings(report)}
<h2>Resources over time</h2>
{_charts(report)}
<h2>Per worker, session start → end</h2>
{_resource_table(report)}
<h2>Notes</h2>
<ul>{notes or "<li>none</li>"}</ul>
{_patterns(report)}
</main></body></html>
"""
