"""A trend's figures (Plotly): throughput, latency and fidelity over the runs, one point per
run in run order, the commits on the x axis (a hover names the run's time, branch, machine,
kind and status), each value with its interval where the row has one, a hollow marker for a
row that was unstable, the gate's verdicts as markers and the detected change points as
vertical lines naming the commit where the step came in (candidate steps faint and dotted)."""

from __future__ import annotations

import math

from alexnet_deploy.dashboard.trends import Trend, shown_commit, when

HEIGHT = 340  # px per figure: three fit a laptop screen with the page's header
MAX_TICKS = 30  # more runs than this: every k-th commit is named on the axis
CHANGE_COLOR = "#c0392b"
CANDIDATE_COLOR = "rgba(192, 57, 43, 0.35)"  # a candidate step: the change colour, faint
# The gate's verdicts: marker symbol and colour (verdict names from store/records.py)
VERDICT_STYLE = {
    "regression": ("triangle-down", "#c0392b"),
    "improvement": ("triangle-up", "#2471a3"),
    "pass": ("circle-open", "#1e8449"),
    "noise": ("diamond-open", "#7f8c8d"),
    "insufficient": ("square-open", "#7f8c8d"),
}
HOVER = (
    "commit %{customdata[0]}<br>%{customdata[1]}<br>branch %{customdata[2]}"
    "<br>machine %{customdata[3]} (%{customdata[4]})<br>run %{customdata[5]}"
    "<br>%{customdata[6]}"
)


def _value(result, attribute: str) -> float | None:
    value = getattr(result, attribute) if result.ok else None
    return value if value is not None and math.isfinite(value) else None


def _hover_data(trend: Trend) -> list[list[str]]:
    rows = []
    for result, status in zip(trend.results, trend.statuses, strict=True):
        run = result.run
        rows.append(
            [
                run.commit or "none",
                when(run.created),
                run.branch or "-",
                run.machine,
                run.cpu_model,
                f"{run.kind} {run.uuid[:8]}",
                status,
            ]
        )
    return rows


def _figure(trend: Trend, title: str, y_title: str):
    import plotly.graph_objects as go

    count = len(trend.results)
    step = max(1, math.ceil(count / MAX_TICKS))
    ticks = list(range(0, count, step))
    figure = go.Figure()
    figure.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        height=HEIGHT,
        margin={"l": 70, "r": 20, "t": 60, "b": 80},
        template="plotly_white",
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        xaxis={
            "title": {"text": "commit (run order)"},
            "tickmode": "array",
            "tickvals": ticks,
            "ticktext": [shown_commit(trend.results[i].run.commit) for i in ticks],
            "tickangle": -45 if count > 8 else 0,
            "range": [-0.5, count - 0.5],
            "tickfont": {"family": "monospace", "size": 11},
        },
        yaxis={"title": {"text": y_title}, "rangemode": "tozero"},
    )
    return figure


def _line(trend: Trend, name: str, attribute: str, interval=None, *, color: str, dash=None):
    """One metric over the runs; ``interval(result) -> (low, high) | None`` gives error bars."""
    import plotly.graph_objects as go

    values = [_value(r, attribute) for r in trend.results]
    bars = {}
    if interval is not None:
        pairs = [interval(r) if v is not None else None for r, v in zip(trend.results, values, strict=True)]
        if any(pairs):
            bars = {
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [p[1] - v if p else None for p, v in zip(pairs, values, strict=True)],
                    "arrayminus": [v - p[0] if p else None for p, v in zip(pairs, values, strict=True)],
                    "color": color,
                    "thickness": 1.2,
                    "width": 4,
                }
            }
    return go.Scatter(
        x=list(range(len(values))),
        y=values,
        name=name,
        mode="lines+markers",
        line={"color": color, "dash": dash},
        # hollow where the row was unstable (its hover says why)
        marker={
            "size": 7,
            "symbol": ["circle-open" if why else "circle" for why in trend.unstable],
        },
        customdata=_hover_data(trend),
        hovertemplate=f"{name} %{{y:.4g}}<br>{HOVER}<extra></extra>",
        **bars,
    )


def _rounds(result) -> tuple[float, float] | None:
    """The row's slowest and fastest round (``round_images_per_s``), where it ran several."""
    from alexnet_deploy.bench.records import BenchRow

    rounds = BenchRow.from_columns(result.record).round_images_per_s
    rates = [r for r in rounds or () if r and math.isfinite(r)]
    return (min(rates), max(rates)) if len(rates) > 1 else None


def _note_if_empty(figure) -> None:
    """A figure with no value in any trace says so, rather than showing empty axes."""
    if not any(y is not None for trace in figure.data for y in (trace.y or ())):
        figure.add_annotation(
            text="not recorded for this configuration",
            xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
            font={"size": 14, "color": "#7f8c8d"},
        )  # fmt: skip


def _mark_changes(figure, trend: Trend, *, named: bool) -> None:
    """Each detected change point as a dashed line at the run where the new level starts, and
    each candidate step as a faint dotted one; ``named``: with the commit and the step's size
    (and a candidate's p-value) written beside it."""
    for change in (*trend.changes, *trend.candidates):
        color = CANDIDATE_COLOR if change.candidate else CHANGE_COLOR
        label = {}
        if named:
            text = f"step {change.relative_change:+.1%} at {shown_commit(change.commit)}"
            if change.candidate:
                text = f"candidate {text} (p={change.p_value:.2f})"
            label = {
                "annotation_text": text,
                "annotation_position": "top left",
                "annotation_font": {"color": color, "size": 12},
            }
        line = {"color": color, "dash": "dot" if change.candidate else "dash", "width": 2}
        figure.add_vline(x=change.index, line=line, **label)


def _mark_verdicts(figure, trend: Trend, attribute: str) -> None:
    """The gate's verdicts as markers on the runs it judged, one legend entry per verdict."""
    import plotly.graph_objects as go

    by_verdict: dict[str, list] = {}
    for index, verdict in trend.placed_verdicts:
        by_verdict.setdefault(verdict.verdict, []).append((index, verdict))
    for name, placed in by_verdict.items():
        symbol, color = VERDICT_STYLE.get(name, ("x", "#000000"))
        figure.add_trace(
            go.Scatter(
                x=[i for i, _ in placed],
                y=[_value(trend.results[i], attribute) for i, _ in placed],
                name=f"gate: {name}",
                mode="markers",
                marker={"symbol": symbol, "size": 16, "color": color, "line": {"width": 2}},
                customdata=[
                    [v.method, shown_commit(v.change_commit) if v.change_commit else "-"]
                    for _, v in placed
                ],
                hovertemplate=f"gate: {name} (%{{customdata[0]}})<br>step at %{{customdata[1]}}"
                "<extra></extra>",
            )
        )


def throughput_figure(trend: Trend):
    figure = _figure(trend, "Throughput (bars: slowest and fastest round)", "images/s")
    figure.add_trace(_line(trend, "images/s", "images_per_s", _rounds, color="#1f618d"))
    _mark_verdicts(figure, trend, "images_per_s")
    _note_if_empty(figure)
    _mark_changes(figure, trend, named=True)
    return figure


def _latency_figure(trend: Trend, name: str, attribute: str, interval, color: str):
    figure = _figure(trend, f"{name} latency (bars: its 95% interval)", "ms")
    figure.add_trace(_line(trend, name, attribute, interval, color=color))
    _note_if_empty(figure)
    _mark_changes(figure, trend, named=False)
    return figure


def p50_figure(trend: Trend):
    return _latency_figure(trend, "p50", "p50_ms", lambda r: r.p50_ci_ms, "#117a65")


def p99_figure(trend: Trend):
    """Apart from p50: a p99's interval rests on the few samples beyond it and is often many
    times wider, which would flatten p50 on a shared axis."""
    return _latency_figure(trend, "p99", "p99_ms", lambda r: r.p99_ci_ms, "#af601a")


def fidelity_figure(trend: Trend):
    figure = _figure(trend, "Fidelity against FP32", "agreement / cosine")
    figure.add_trace(_line(trend, "top-1 agreement", "top1_agreement", color="#6c3483"))
    figure.add_trace(
        _line(trend, "centered cosine", "centered_cosine", color="#b7950b", dash="dot")
    )
    values = [y for trace in figure.data for y in trace.y if y is not None]
    if values:  # both sit at or below 1: show from a little under the lowest to just over 1
        figure.update_yaxes(range=[max(0.0, min(values) - 0.02), max(1.0, max(values)) + 0.005])
    _note_if_empty(figure)
    _mark_changes(figure, trend, named=False)
    return figure


FIGURES = {  # div id -> figure maker, in page order
    "throughput": throughput_figure,
    "p50": p50_figure,
    "p99": p99_figure,
    "fidelity": fidelity_figure,
}
