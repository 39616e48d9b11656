"""The dashboard's HTML: the index (every configuration's latest run against the previous one,
grouped by model and machine class, each row linking to its trend page) and one trend page per
configuration (its figures, change points, gate verdicts and runs). Plain HTML and CSS around
Plotly's own output: no script of this tool's."""

from __future__ import annotations

import math
from html import escape
from itertools import groupby

from alexnet_deploy import constants as C
from alexnet_deploy.dashboard.figures import FIGURES
from alexnet_deploy.dashboard.trends import IN_POINTS, METRICS, Trend, shown_commit, when
from alexnet_deploy.store.records import StoredRun

PLOTLY_JS = "plotly.min.js"  # copied once into the site; every page loads it from beside itself
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #1c2833; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 1.8rem; }
.meta { color: #566573; margin-top: 0; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid #d5d8dc; padding: .25rem .45rem; text-align: right;
         white-space: nowrap; }
th { background: #f4f6f7; } td.name, th.name { text-align: left; }
code { font-size: .85rem; } .worse { color: #c0392b; font-weight: 600; }
.better { color: #1e8449; font-weight: 600; } .small { color: #566573; }
.regression { color: #c0392b; font-weight: 600; } .improvement { color: #2471a3; }
.figure { max-width: 1200px; }
.candidate { color: #a6acaf; } .unstable { color: #b9770e; font-weight: 600; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


DIGITS = {"images/s": 1, "p50 ms": 2, "p99 ms": 2, "top-1 agreement": 3}
SHORT = {"top-1 agreement": "top-1"}  # the index's narrower headings


def _change_cell(trend: Trend, metric: str) -> str:
    change = trend.change(metric)
    if change is None:
        return "<td>-</td>"
    _, rise_is_better = METRICS[metric]
    better = (change > 0) == rise_is_better
    if metric in IN_POINTS:  # top-1 agreement: points, judged by the gate's budget
        large, text = abs(change) >= C.GATE_TOP1_BUDGET_POINTS, f"{change:+.1f} pt"
    else:
        large, text = abs(change) >= C.GATE_THRESHOLD, f"{change:+.1%}"
    kind = ("better" if better else "worse") if large else ""
    return f'<td class="{kind}">{text}</td>'


def _verdict_text(trend: Trend) -> str:
    verdict = trend.latest_verdict
    if verdict is None:
        return "-"
    text = f'<span class="{escape(verdict.verdict)}">{escape(verdict.verdict)}</span>'
    if verdict.change_commit:
        text += f" (step at <code>{escape(shown_commit(verdict.change_commit))}</code>)"
    return text


def _candidate_text(change) -> str:
    return (
        f'<span class="candidate">candidate step {change.relative_change:+.1%} at '
        f"<code>{escape(shown_commit(change.commit))}</code> (p={change.p_value:.2f})</span>"
    )


def _step_text(trend: Trend) -> str:
    """The latest step, and a candidate step after it (faint: not named yet)."""
    text = "-"
    if trend.changes:
        last = trend.changes[-1]
        more = f" (+{len(trend.changes) - 1} earlier)" if len(trend.changes) > 1 else ""
        text = (
            f"{last.relative_change:+.1%} at <code>{escape(shown_commit(last.commit))}</code>"
            f"{more}"
        )
    after = trend.changes[-1].index if trend.changes else -1
    newer = [c for c in trend.candidates if c.index > after]
    if newer:
        candidate = _candidate_text(newer[-1])
        text = candidate if text == "-" else f"{text}; {candidate}"
    return text


def _status_cell(status: str) -> str:
    """A run's status (trends.status_text): ok; unstable and why (also its hover); failed."""
    if status == "ok":
        return "<td>ok</td>"
    kind = "unstable" if status.startswith("unstable: ") else "worse"
    return f'<td><span class="{kind}" title="{escape(status)}">{escape(status)}</span></td>'


def _run_line(run: StoredRun) -> str:
    return (
        f"<code>{escape(shown_commit(run.commit))}</code> {escape(when(run.created))}, branch "
        f"{escape(run.branch or '-')}, kind {escape(run.kind)}, {escape(run.cpu_model)} "
        f"(machine <code>{escape(run.machine)}</code>)"
    )


def _group_runs(trends: list[Trend]) -> list[StoredRun]:
    runs = {run.uuid: run for trend in trends for run in trend.runs}
    return sorted(runs.values(), key=lambda run: (run.created, run.run_id or 0))


def _index_row(trend: Trend) -> str:
    latest = trend.latest
    cells = [
        f'<td class="name"><a href="{escape(trend.page)}">{escape(trend.label)}</a></td>',
        f"<td>{len(trend.results)}</td>",
        f"<td><code>{escape(shown_commit(latest.run.commit))}</code></td>",
    ]
    for metric, (attribute, _) in METRICS.items():
        value = getattr(latest, attribute) if latest.ok else None
        cells.append(f"<td>{_number(value, DIGITS[metric])}</td>")
        cells.append(_change_cell(trend, metric))
    cells += [_status_cell(trend.statuses[-1]), f"<td>{_verdict_text(trend)}</td>"]
    cells.append(f"<td>{_step_text(trend)}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def index_page(trends: list[Trend], *, store: str, runs: int, written: str) -> str:
    """The index: per model and machine class (CPU class and CPU model), each configuration's
    latest result beside its change from the previous measured one of that machine class (bold
    where it moved by the gate's threshold or more)."""
    head = "".join(  # each value and its change under one heading
        f'<th colspan="2">{escape(SHORT.get(m, m))}</th>' for m in METRICS
    )
    header = (
        '<tr><th class="name">configuration</th><th>runs</th><th>latest</th>'
        f"{head}<th>status</th><th>latest gate verdict</th><th>change point</th></tr>"
    )
    sections = []
    for (name, sha256, machine_class), group in groupby(
        trends, key=lambda t: (t.model_name, t.model_sha256, t.machine_class)
    ):
        group = list(group)
        runs_here = _group_runs(group)
        lines = [f"latest run: {_run_line(runs_here[-1])}"]
        if len(runs_here) > 1:
            lines.append(f"previous run: {_run_line(runs_here[-2])}")
        sections.append(
            f"<h2>{escape(name)} on {escape(machine_class)}</h2>\n"
            f'<p class="meta">model sha256 <code>{escape(sha256[:12])}</code>; '
            f"{len(runs_here)} runs<br>{'<br>'.join(lines)}</p>\n"
            f"<table>\n{header}\n" + "\n".join(_index_row(t) for t in group) + "\n</table>"
        )
    body = (
        "<h1>alexnet-deploy results</h1>\n"
        f'<p class="meta">store {escape(store)}: {runs} runs, {len(trends)} trends; '
        f"written {escape(when(written))}. Each value of the latest run is followed by its change "
        "from the previous measured one "
        f"(bold: {C.GATE_THRESHOLD:.0%} or more, the gate's threshold; top-1 agreement in points, "
        f"bold from {C.GATE_TOP1_BUDGET_POINTS:g}). Change point: the "
        "latest step in images/s the gate's detector finds in the configuration's history "
        "(faint: a candidate step, whose p-value misses "
        f"{C.CHANGEPOINT_ALPHA:g}: named once more runs follow it). A machine class is a CPU "
        "class and a CPU model: runs of two are never compared.</p>\n"
        + "\n".join(sections)
    )
    return _page("alexnet-deploy results", body)


def _figures_html(trend: Trend) -> str:
    parts = []
    for number, (div_id, make) in enumerate(FIGURES.items()):
        html = make(trend).to_html(
            full_html=False,
            include_plotlyjs="directory" if number == 0 else False,  # PLOTLY_JS, once per page
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        parts.append(f'<div class="figure">{html}</div>')
    return "\n".join(parts)


def _changes_table(trend: Trend) -> str:
    if not trend.changes and not trend.candidates:
        return "<p>No change point detected.</p>"
    changes = sorted((*trend.changes, *trend.candidates), key=lambda c: c.index)
    rows = "\n".join(
        ('<tr class="candidate">' if c.candidate else "<tr>")
        + f"<td><code>{escape(shown_commit(c.commit))}</code></td><td>{c.index + 1}</td>"
        f"<td>{c.before:.4g}</td><td>{c.after:.4g}</td><td>{c.relative_change:+.1%}</td>"
        f"<td>{c.p_value:.3g}</td>"
        f'<td class="name">{"candidate: not named yet" if c.candidate else "step"}</td></tr>'
        for c in changes
    )
    none = "" if trend.changes else "<p>No change point detected.</p>\n"
    return (
        f"{none}<table><tr><th>came in at</th><th>run</th><th>before</th><th>after</th>"
        f'<th>change</th><th>p-value</th><th class="name"></th></tr>\n{rows}\n</table>'
    )


def _verdicts_table(trend: Trend) -> str:
    placed = trend.placed_verdicts
    if not placed:
        return "<p>No gate verdict stored for this configuration.</p>"
    rows = "\n".join(
        f"<tr><td><code>{escape(shown_commit(trend.results[i].run.commit))}</code></td>"
        f'<td class="name"><span class="{escape(v.verdict)}">{escape(v.verdict)}</span></td>'
        f"<td>{escape(v.method)}</td>"
        f"<td><code>{escape(shown_commit(v.change_commit)) if v.change_commit else '-'}</code></td></tr>"
        for i, v in placed
    )
    return (
        '<table><tr><th>run</th><th class="name">verdict</th><th>method</th><th>step at</th></tr>'
        f"\n{rows}\n</table>"
    )


def _runs_table(trend: Trend) -> str:
    rows = []
    for number, (result, status) in enumerate(zip(trend.results, trend.statuses, strict=True), 1):
        run = result.run
        values = "".join(
            f"<td>{_number(getattr(result, a) if result.ok else None, DIGITS[m])}</td>"
            for m, (a, _) in METRICS.items()
        )
        rows.append(
            f"<tr><td>{number}</td><td><code>{escape(shown_commit(run.commit))}</code></td>"
            f'<td class="name">{escape(when(run.created))}</td><td class="name">{escape(run.branch or "-")}</td>'
            f'<td class="name">{escape(run.cpu_model)} <code>{escape(run.machine)}</code></td>'
            f"<td>{escape(run.kind)}</td>{values}{_status_cell(status)}</tr>"
        )
    head = "".join(f"<th>{escape(m)}</th>" for m in METRICS)
    return (
        '<table><tr><th>#</th><th>commit</th><th class="name">time</th><th class="name">branch</th>'
        f'<th class="name">machine</th><th>kind</th>{head}<th>status</th></tr>\n'
        + "\n".join(rows)
        + "\n</table>"
    )


def trend_page(trend: Trend) -> str:
    """One configuration's page: its figures, then its change points, verdicts and runs."""
    first, last = trend.results[0].run, trend.latest.run
    body = (
        '<p><a href="index.html">&larr; all configurations</a></p>\n'
        f"<h1>{escape(trend.label)}</h1>\n"
        f'<p class="meta">{escape(trend.model_name)} (sha256 <code>{escape(trend.model_sha256[:12])}'
        f"</code>) on machine class {escape(trend.machine_class)} (CPU class and CPU model): "
        f"{len(trend.results)} bench, gate and import runs, "
        f"<code>{escape(shown_commit(first.commit))}</code> to "
        f"<code>{escape(shown_commit(last.commit))}</code>. Dashed lines: change points in "
        "images/s (gate.changepoint); faint dotted lines: candidate steps (p above "
        f"{C.CHANGEPOINT_ALPHA:g}: named once more runs follow them); hollow points: unstable "
        "rows; large markers: the gate's verdicts; '*' after a commit: uncommitted "
        "changes.</p>\n"
        f"{_figures_html(trend)}\n"
        f"<h2>Change points</h2>\n{_changes_table(trend)}\n"
        f"<h2>Gate verdicts</h2>\n{_verdicts_table(trend)}\n"
        f"<h2>Runs</h2>\n{_runs_table(trend)}"
    )
    return _page(trend.title, body)
