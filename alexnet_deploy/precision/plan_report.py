"""plan's results out: the plans table (every plan evaluated, its speed where measured), the
per-layer sensitivity table, JSON, CSV, Markdown, and the front as a plot (top-1 against
images/s)."""

from __future__ import annotations

import math
from pathlib import Path

from alexnet_deploy.precision.planner import REPORT_FILES, PlanOutcome
from alexnet_deploy.precision.search import Evaluated, greedy_order


def _speed_keys(outcome: PlanOutcome) -> list[str]:
    keys: list[str] = []
    for e in [*outcome.evaluated, *outcome.references.values()]:
        keys += [k for k in e.speed if k not in keys]
    return keys


def _row(outcome: PlanOutcome, name: str, e: Evaluated, keys: list[str]) -> dict:
    layers = outcome.layers
    total = sum(x.macs for x in layers) or 1
    f = e.fidelity
    return {
        "plan": name,
        "float layers": len(e.plan.float_layers),
        "float MACs %": round(100 * e.plan.float_macs(layers) / total, 1),
        "top-1": None if f.top1_accuracy is None else round(f.top1_accuracy, 4),
        "agreement": round(f.top1_agreement, 4),
        "drop (points)": round(e.drop, 2),
        # --keep bf16: bf16's numerics are the runtime's, so also as the engine ran it
        **(
            {
                "drop as executed": None
                if e.executed is None
                else round(e.executed.top1_drop_points(), 2)
            }
            if outcome.request.keep == "bf16"
            else {}
        ),
        "within budget": e.within(outcome.request.max_top1_drop),
        **{f"{k} img/s": round(e.speed[k], 1) if k in e.speed else None for k in keys},
        "chosen": e is outcome.chosen,
        "note": e.measured_note or outcome.skipped.get(e.plan.label(layers), ""),
    }


def plans_frame(outcome: PlanOutcome, *, measured_only: bool = False):
    """One row per plan (all-INT8 first, then by float MACs), then the references."""
    import polars as pl

    keys = _speed_keys(outcome)
    layers = outcome.layers
    ordered = sorted(outcome.evaluated, key=lambda e: (e.plan.float_macs(layers), e.drop))
    rows = [
        _row(outcome, e.plan.label(layers), e, keys)
        for e in ordered
        if not measured_only or e.speed or e is outcome.chosen
    ]
    rows += [_row(outcome, name, e, keys) for name, e in outcome.references.items()]
    return pl.DataFrame(rows, infer_schema_length=None)


def _sensitivity_row(s, layer) -> dict:
    row = {"layer": s.layer, "block": layer.block, "op": layer.op,
           "MMACs": round(layer.macs / 1e6, 3)}  # fmt: skip
    if s.recovery is not None:  # per layer
        row |= {
            "drop, alone float (rest INT8)": round(s.alone_float_drop, 2),
            "drop, alone INT8 (rest float)": round(s.alone_int8_drop, 2),
            "points regained": round(s.recovery, 2),
        }
    else:  # one-shot
        row |= {
            "noise added % (all-INT8)": round(100 * s.noise_added, 4),
            "SNR dB (all-INT8)": None
            if s.snr_db is None or not math.isfinite(s.snr_db)
            else round(s.snr_db, 1),
        }
    return row | {"node": layer.node}


def sensitivity_frame(outcome: PlanOutcome, most: int | None = None):
    """One row per layer whose sensitivity was measured, in network order; ``most``: only the
    that many most sensitive (the greedy search's first), for a terminal."""
    import polars as pl

    by_name = {x.name: x for x in outcome.layers}
    rows = outcome.sensitivity
    if most is not None and len(rows) > most:
        first = set(greedy_order(outcome.layers, rows)[:most])
        rows = [s for s in rows if s.layer in first]
    return pl.DataFrame(
        [_sensitivity_row(s, by_name[s.layer]) for s in rows], infer_schema_length=None
    )


def sensitivity_note(outcome: PlanOutcome, most: int) -> str:
    """What a terminal's table of ``most`` rows leaves out ("" when nothing)."""
    if len(outcome.sensitivity) <= most:
        return ""
    return (
        f"{most} of {len(outcome.sensitivity)} layers shown: the most sensitive (the greedy "
        f"search's first), in network order; every layer is in plan.md and plan.json"
    )


def sufficiency_frame(outcome: PlanOutcome):
    """One row per calibration size: the intervals of the top-1 drop and of the ranges."""
    import polars as pl

    return pl.DataFrame(
        [
            {
                "calibration images": s.size,
                "resamples": s.resamples,
                "drop interval (points)": f"{s.drop_low:.2f} .. {s.drop_high:.2f}",
                "agreement interval": f"{s.agreement_low:.3f} .. {s.agreement_high:.3f}",
                "widest range spread %": round(100 * s.scale_spread, 1),
                "in tensor": s.widest_tensor,
                "within budget": s.drop_high <= outcome.request.max_top1_drop + 1e-9,
            }
            for s in outcome.sufficiency.sizes
        ]
    )


def chosen_name(outcome: PlanOutcome) -> str:
    """The chosen plan's label (a reference's name when the reference won: all-FP32)."""
    for name, e in outcome.references.items():
        if e is outcome.chosen:
            return name
    return outcome.chosen.plan.label(outcome.layers)


def as_json(outcome: PlanOutcome) -> dict:
    layers = outcome.layers

    def entry(name: str, e: Evaluated) -> dict:
        return {
            "plan": name,
            "precisions": e.plan.precisions(layers, e.keep or outcome.request.keep),
            "fidelity": e.fidelity.as_dict(),
            "drop_points": e.drop,
            "executed": None if e.executed is None else e.executed.as_dict(),
            "executed_on": e.executed_on or None,
            "images_per_s": e.speed,
            "note": e.measured_note or outcome.skipped.get(e.plan.label(layers), ""),
        }

    return {
        "schema": "alexnet-deploy/plan/1",
        "model": str(outcome.model),
        "model_name": outcome.model_name,
        "form": outcome.form,
        "recipe": outcome.recipe,
        "isa": outcome.isa,
        "keep": outcome.request.keep,
        "calibration_method": outcome.method,
        "all_int8_drop_per_method": outcome.method_drops,
        "max_top1_drop": outcome.request.max_top1_drop,
        "judged_on": f"emulated {outcome.measure}"
        + (" and as executed" if outcome.request.keep == "bf16" else ""),
        "held_out_samples": outcome.samples,
        "layers": [
            {"name": x.name, "node": x.node, "block": x.block, "op": x.op, "macs": x.macs}
            for x in layers
        ],
        "search": None if outcome.search is None else outcome.search.as_dict(),
        "sensitivity": sensitivity_frame(outcome).to_dicts(),
        "plans": [entry(e.plan.label(layers), e) for e in outcome.evaluated],
        "references": [entry(name, e) for name, e in outcome.references.items()],
        "chosen": None if outcome.chosen is None else entry(chosen_name(outcome), outcome.chosen),
        "choice_rule": outcome.choice_rule,
        "written": None if outcome.written is None else str(outcome.written),
        "notes": outcome.notes,
        "sufficiency": None if outcome.sufficiency is None else outcome.sufficiency.as_dict(),
    }


def search_line(outcome: PlanOutcome) -> str:
    """How the search went, in one line: sensitivity method, steps, budgets, plans evaluated."""
    search = outcome.search
    return (
        f"- search over {len(outcome.layers)} weight layers: sensitivity {search.sensitivity}; "
        f"greedy steps {search.steps}; {search.evaluated} of {search.planned} candidate plans "
        f"evaluated in {search.seconds:.0f} s (--max-candidates {search.max_candidates}, "
        f"--time-budget {search.time_budget_s:g} s)"
    )


def write_plan_report(outcome: PlanOutcome, out_dir: Path) -> dict[str, Path]:
    """plan.json, plan.csv (every plan) and plan.md in ``out_dir``, each written atomically."""
    import polars as pl

    from alexnet_deploy.fileio import atomic_path, write_json_atomic, write_text_atomic
    from alexnet_deploy.render import TableFormat, frame_as_text

    out_dir = Path(out_dir)
    json_name, csv_name, md_name = REPORT_FILES
    paths = {"json": write_json_atomic(out_dir / json_name, as_json(outcome))}
    with atomic_path(out_dir / csv_name) as tmp:
        plans_frame(outcome).write_csv(tmp)
    paths["csv"] = out_dir / csv_name
    chosen = chosen_name(outcome) if outcome.chosen else "none"
    head = [
        f"# alexnet-deploy plan of {outcome.model_name or Path(outcome.model).name}",
        "",
        f"- model: {outcome.model}; INT8 form: {outcome.form} ({outcome.recipe})",
        f"- budget: {outcome.request.max_top1_drop:g} points of emulated {outcome.measure}"
        + (" (and as executed, for bf16)" if outcome.request.keep == "bf16" else "")
        + f", on {outcome.samples} held-out images; float layers run in {outcome.request.keep}; "
        f"calibration ranges: {outcome.method}"
        + (" (--method auto)" if outcome.request.method == "auto" else ""),
        f"- chosen: **{chosen}** ({outcome.choice_rule})",
        f"- written: {outcome.written}",
        *([search_line(outcome)] if outcome.search else []),
        *[f"- {note}" for note in outcome.notes],
    ]
    text = (
        "\n".join(head) + "\n\n## Plans\n\n" + frame_as_text(plans_frame(outcome), TableFormat.md)
    )
    text += "\n\n## Sensitivity per layer\n\n" + frame_as_text(
        sensitivity_frame(outcome), TableFormat.md
    )
    if outcome.sufficiency is not None:
        text += "\n\n## Calibration sufficiency\n\n" + frame_as_text(
            sufficiency_frame(outcome), TableFormat.md
        )
        shift = pl.DataFrame(outcome.sufficiency.shift).with_columns(pl.selectors.float().round(3))
        text += "\n\nCalibration against held-out images, per input channel:\n\n"
        text += frame_as_text(shift, TableFormat.md) + f"\n\n{outcome.sufficiency.note}"
    paths["md"] = write_text_atomic(out_dir / md_name, text + "\n")
    return paths


def plot_plans(outcome: PlanOutcome, path: Path) -> Path:
    """Top-1 drop against images/s (the first measured backend and batch) for every measured
    plan and reference, the budget as a line, the chosen plan marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alexnet_deploy.fileio import atomic_path
    from alexnet_deploy.outputs import PLOT_SOFTWARE

    keys = _speed_keys(outcome)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if keys:
        key = keys[-1]
        points = [(e.plan.label(outcome.layers), e) for e in outcome.evaluated if key in e.speed]
        points += [(n, e) for n, e in outcome.references.items() if key in e.speed]
        for label, e in points:
            marker = "*" if e is outcome.chosen else "o"
            ax.scatter(e.speed[key], e.drop, marker=marker, s=160 if marker == "*" else 40)
            ax.annotate(label, (e.speed[key], e.drop), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")  # fmt: skip
        ax.set_xlabel(f"images/s ({key})")
    else:
        total = sum(x.macs for x in outcome.layers) or 1
        for e in outcome.evaluated:
            ax.scatter(100 * e.plan.float_macs(outcome.layers) / total, e.drop, s=20)
        ax.set_xlabel("float MACs % (not timed on this machine)")
    ax.axhline(outcome.request.max_top1_drop, color="tab:red", linestyle="--", label="budget")
    ax.set_ylabel(f"drop in {outcome.measure} (points)")
    ax.set_title(
        f"{outcome.model_name or Path(outcome.model).name}: precision plans ({outcome.form} form)"
    )
    ax.legend(loc="best")
    fig.tight_layout()
    with atomic_path(path, replace=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": PLOT_SOFTWARE})
    plt.close(fig)
    return Path(path)
