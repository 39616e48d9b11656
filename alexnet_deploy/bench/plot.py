"""The bench report's plots (bench-report.png): latency distributions, throughput against
batch, and the throughput-vs-p99 Pareto front, from the typed rows and their raw samples."""

from __future__ import annotations

from pathlib import Path

from alexnet_deploy.bench.records import BenchRow, RoundSamples
from alexnet_deploy.fileio import atomic_path


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (higher throughput, lower p99)."""
    front = []
    for i, (tput, p99) in enumerate(points):
        dominated = any(t >= tput and p <= p99 and (t, p) != (tput, p99) for t, p in points)
        if not dominated:
            front.append(i)
    return front


def plot_report(
    rows: list[BenchRow],
    samples: list[RoundSamples],
    path: Path,
    title: str = "alexnet-deploy bench",
) -> Path | None:
    """Latency distributions, throughput against batch, and the throughput-vs-p99 front, under
    a title that names the machine and the date."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None  # plots need the 'plot' extra; the tables are written regardless
    import numpy as np

    ok = [r for r in rows if r.ok]
    if not ok:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    label = lambda r: r.label + (" (unstable)" if r.unstable else "")  # noqa: E731
    # per-request latency: one request at a time where measured so, else every row's requests
    latency_rows = [r for r in ok if r.case.mode == "latency"] or ok
    by_case: dict = {}
    for part in samples:
        by_case.setdefault(part.case, []).append(part.latency_ns)
    data = [np.concatenate(by_case.get(r.case, [np.empty(0)])) / 1e6 for r in latency_rows]
    if data:
        axes[0].boxplot(data, orientation="horizontal", showfliers=False)
        axes[0].set_yticks(range(1, len(data) + 1), [label(r) for r in latency_rows], fontsize=7)
        axes[0].set_xscale("log")
    axes[0].set_title("latency distribution (ms, log)")
    series: dict[tuple, list] = {}
    for r in ok:
        precision = r.case.precision + (" nncf" if r.case.quantizer == "nncf" else "")
        series.setdefault((r.case.backend, precision, r.case.mode), []).append(
            (r.case.batch, r.images_per_s)
        )
    # every series told apart three ways: colour by backend, marker by precision, line by mode
    backends = sorted({b for b, _, _ in series})
    markers = {"fp32": "o", "fp16": "s", "bf16": "v", "int8": "^", "int8 nncf": "D", "served": "P"}
    lines = {"latency": "-", "throughput": "--", "server": ":"}
    for (backend, precision, mode), pts in sorted(series.items()):
        pts.sort()
        axes[1].plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            color=plt.get_cmap("tab10")(backends.index(backend) % 10),
            marker=markers.get(precision, "x"),
            linestyle=lines.get(mode, "-."),
            label=f"{backend} {precision} {mode}",
        )
    axes[1].set_xscale("log", base=2)
    batches = sorted({r.case.batch for r in ok})
    axes[1].set_xticks(batches, [str(b) for b in batches])
    axes[1].set_xlabel("batch (images per call)")
    axes[1].set_ylabel("images/s")
    axes[1].set_title("throughput against batch size")
    axes[1].legend(fontsize=6, loc="upper left", ncol=2)
    with_p99 = [r for r in ok if r.p99_ms is not None]  # --percentiles may leave p99 out
    points = [(r.images_per_s, r.p99_ms) for r in with_p99]
    axes[2].scatter([p[1] for p in points], [p[0] for p in points], s=18, color="0.6")
    front = sorted(pareto_front(points), key=lambda i: points[i][1])
    axes[2].plot(
        [points[i][1] for i in front], [points[i][0] for i in front], color="C3", marker="o"
    )
    for i in front:
        axes[2].annotate(label(with_p99[i]), (points[i][1], points[i][0]), fontsize=6)
    axes[2].set_xscale("log")
    axes[2].set_xlabel("p99 latency (ms)")
    axes[2].set_ylabel("images/s")
    axes[2].set_title("throughput vs p99: Pareto front")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
