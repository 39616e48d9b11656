"""compare's results out: a table (terminal, Markdown, CSV), JSON, and a plot of SNR per layer
and the error's growth through the network."""

from __future__ import annotations

import math
from pathlib import Path

from alexnet_deploy.precision.compare import Comparison

REPORT_FILES = ("compare.json", "compare.csv", "compare.md")  # what --out DIR holds


def layers_frame(comparison: Comparison):
    """One row per layer, then the logits row, rounded for people (JSON keeps full precision)."""
    import polars as pl

    def finite(value: float, digits: int) -> float | None:
        return round(value, digits) if math.isfinite(value) else None

    rows = [
        {
            "layer": f.name,
            "op": f.op,
            "shape": "x".join(str(d) for d in f.shape),
            "cosine": round(f.cosine, 6),
            "snr dB": finite(f.snr_db, 1),
            "max abs err": float(f"{f.max_abs_error:.3g}"),
            "clip %": None if f.clip_rate is None else round(100 * f.clip_rate, 3),
            "block": f.block,
            "node": f.node,
        }
        for f in comparison.layers
    ]
    logits = comparison.logits
    profile = comparison.profile
    if profile is not None:
        total = profile["total_ms"] or 1.0
        shown = {row["layer"] for row in rows}
        rows += [  # timed layers with no tensor of their own as executed: their time, no figures
            {"layer": name, "op": "(fused)", "shape": "", "cosine": None, "snr dB": None,
             "max abs err": None, "clip %": None}
            for name in profile["layers_ms"] if name not in shown
        ]  # fmt: skip
        for row in rows:
            ms = profile["layers_ms"].get(row["layer"])
            row["time ms"] = None if ms is None else round(ms, 3)
            row["time %"] = None if ms is None else round(100 * ms / total, 1)
            row["kernel"] = ", ".join(profile["kernels"].get(row["layer"], []))
        for name, ms in profile["overheads_ms"].items():
            rows.append(
                {"layer": name, "op": "", "shape": "", "cosine": None, "snr dB": None,
                 "max abs err": None, "clip %": None, "time ms": round(ms, 3),
                 "time %": round(100 * ms / total, 1), "kernel": ""}
            )  # fmt: skip
    rows.append(
        {
            "layer": "logits (top-1 / top-5 agreement)",
            "op": "",
            "shape": f"{100 * logits['top1_agreement']:.1f}% / {100 * logits['top5_overlap']:.1f}%",
            "cosine": round(logits["centered_cosine"], 6),
            "snr dB": None,
            "max abs err": float(f"{logits['max_abs_error']:.3g}"),
            "clip %": None,
            **(
                {"time ms": round(profile["total_ms"], 3), "time %": 100.0, "kernel": "(total)"}
                if profile is not None
                else {}
            ),
        }
    )
    return pl.DataFrame(rows, infer_schema_length=None)


def worst_layers(comparison: Comparison, frame, most: int):
    """For a terminal: ``frame``'s rows of the ``most`` layers with the lowest SNR (where
    precision is lost; network order kept) and its rows of no layer (overheads, logits), and
    the note saying what was left out; ``frame`` and "" when there are no more layers."""
    import polars as pl

    if len(comparison.layers) <= most:
        return frame, ""
    ranked = sorted(comparison.layers, key=lambda f: (f.snr_db, -f.max_abs_error))
    keep = [f.name for f in ranked[:most]]
    layers = [f.name for f in comparison.layers]
    shown = frame.filter(
        pl.col("layer").is_in(keep)
        | (~pl.col("layer").is_in(layers) & (pl.col("op") != "(fused)"))
    )
    return shown, (
        f"{most} of {len(layers)} layers shown: those with the lowest SNR (where precision is "
        "lost), in network order; every layer is in --out DIR's compare.csv, .md and .json, and "
        "in --format md|csv|json"
    )


def as_json(comparison: Comparison) -> dict:
    data = comparison.as_dict()
    for layer in data["layers"]:  # JSON has no infinity: an exact layer's SNR is null
        if not math.isfinite(layer["snr_db"]):
            layer["snr_db"] = None
    return {"schema": "alexnet-deploy/compare/1", **data}


def write_comparison(comparison: Comparison, out_dir: Path) -> dict[str, Path]:
    """compare.json, compare.csv and compare.md in ``out_dir``, each written atomically."""
    from alexnet_deploy.fileio import atomic_path, write_json_atomic, write_text_atomic
    from alexnet_deploy.outputs import mark_directory
    from alexnet_deploy.render import TableFormat, frame_as_text

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        out_dir.mkdir(parents=True, exist_ok=True)  # (or a concurrent run of ours)
        mark_directory(out_dir, "compare")  # made by this tool: its own
    json_name, csv_name, md_name = REPORT_FILES
    frame = layers_frame(comparison)
    paths = {"json": write_json_atomic(out_dir / json_name, as_json(comparison))}
    with atomic_path(out_dir / csv_name) as tmp:
        frame.write_csv(tmp)
    paths["csv"] = out_dir / csv_name
    head = [
        f"# alexnet-deploy compare of {comparison.model_name or 'the model'}",
        "",
        f"- reference: {comparison.reference}",
        f"- candidate: {comparison.candidate} (computed by: {comparison.runtime})",
        f"- images: {comparison.images}, in batches of {comparison.batch_size}; peak "
        f"intermediate tensors held: {comparison.peak_tensor_bytes / 1e6:.1f} MB",
    ]
    if comparison.folded:
        head.append(f"- folded into their activation: {', '.join(comparison.folded)}")
    if comparison.clip_note:
        head.append(f"- {comparison.clip_note}")
    if comparison.profile_note:
        head.append(f"- {comparison.profile_note}")
    text = "\n".join(head) + "\n\n" + frame_as_text(frame, TableFormat.md)
    paths["md"] = write_text_atomic(out_dir / md_name, text)
    return paths


def plot_comparison(comparison: Comparison, path: Path) -> Path:
    """Two panels: SNR per layer (where precision is lost), and 1 - cosine on a log scale (how
    the error grows through the network)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alexnet_deploy.fileio import atomic_path
    from alexnet_deploy.outputs import PLOT_SOFTWARE

    names = [f.name for f in comparison.layers]
    snr = [f.snr_db if math.isfinite(f.snr_db) else float("nan") for f in comparison.layers]
    gap = [max(1 - f.cosine, 1e-12) for f in comparison.layers]
    # a tick per layer: wider for more layers, up to 24 inches (ResNet-50's 150-odd layers)
    width = min(max(6, 0.5 * len(names)), 24)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 6), sharex=True)
    top.plot(range(len(names)), snr, marker="o")
    top.set_ylabel("SNR (dB)")
    top.set_title(f"{comparison.model_name}: {Path(comparison.candidate).name} vs "
                  f"{Path(comparison.reference).name} "
                  f"({comparison.runtime}, {comparison.images} images)")  # fmt: skip
    bottom.semilogy(range(len(names)), gap, marker="s", color="tab:red")
    bottom.set_ylabel("1 - cosine")
    fontsize = 8 if 0.5 * len(names) <= width else max(3, 8 * width / (0.5 * len(names)))
    bottom.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=fontsize)
    fig.tight_layout()
    with atomic_path(path, replace=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": PLOT_SOFTWARE})
    plt.close(fig)
    return Path(path)
