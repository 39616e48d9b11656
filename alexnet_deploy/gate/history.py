"""History mode's change-point view: each configuration's p50 through the past reports and the
current one, and where the largest step between consecutive runs lies (when it changed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class HistoryView:
    runs: list[str]  # oldest first, "current" last
    p50_ms: dict[str, list[float | None]]  # configuration label -> one value per run

    def largest_steps(self) -> dict[str, tuple[int, float]]:
        """Per configuration: the index of the run after the largest step, and the step as a
        relative change from the run before it."""
        steps = {}
        for label, values in self.p50_ms.items():
            best = None
            for i in range(1, len(values)):
                a, b = values[i - 1], values[i]
                if a and b:
                    change = b / a - 1
                    if best is None or abs(change) > abs(best[1]):
                        best = (i, change)
            if best is not None:
                steps[label] = best
        return steps

    def as_markdown(self) -> str:
        """The runs as a Markdown table (render.py's), each configuration's largest step marked."""
        import polars as pl

        from alexnet_deploy.render import TableFormat, frame_as_text

        steps = self.largest_steps()
        columns = {"run": self.runs}
        for label, values in self.p50_ms.items():
            cells = ["-" if value is None else f"{value:.3f}" for value in values]
            if label in steps:
                at, change = steps[label]
                cells[at] += f" ◀ {100 * change:+.1f}%"
            columns[label] = cells
        return (
            "### History: p50 (ms) per run, oldest first\n\n"
            + frame_as_text(pl.DataFrame(columns), TableFormat.md)
            + "\n◀ marks each configuration's largest step from the run before (when it changed).\n"
        )


def history_view(baseline, current) -> HistoryView:
    """From a loaded history (``baseline.runs``) and the current report."""
    keys = [k for k in sorted(current.samples, key=lambda k: k.sort_key()) if k in baseline.rows]

    def p50(samples) -> float | None:
        if not samples:
            return None
        return float(np.median(np.concatenate([np.asarray(s) for s in samples]))) / 1e6

    series = {
        key.label: [p50(run.get(key)) for run in baseline.runs] + [p50(current.samples.get(key))]
        for key in keys
    }
    return HistoryView([*baseline.run_names, "current"], series)
