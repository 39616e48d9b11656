"""The per-layer table of a network: output shape, parameters and multiply-accumulates.

Computed from the model itself by running one image through forward hooks, never typed in, so
the table, the FLOP counts used by bench's roofline columns and the network cannot disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alexnet_deploy.models.variants import Variant

if TYPE_CHECKING:
    import polars as pl

# Modules that neither change the shape nor carry parameters get no row of their own.
_SKIPPED = ("ReLU", "Dropout", "Flatten")


def _layer_name(kind: str, counters: dict[str, int]) -> str:
    """conv1..conv5 count themselves; a pool or LRN takes the number of the conv it follows
    (pool1, lrn1, ..., pool5), and fully connected layers continue the count (fc6..fc8)."""
    if kind == "Conv2d":
        counters["conv"] = counters.get("conv", 0) + 1
        return f"conv{counters['conv']}"
    if kind == "Linear":
        counters["fc"] = counters.get("fc", 0) + 1
        return f"fc{counters['conv'] + counters['fc']}"
    prefix = {"MaxPool2d": "pool", "PaperLRN": "lrn", "AdaptiveAvgPool2d": "avgpool"}.get(kind)
    if prefix == "avgpool":
        return prefix
    return f"{prefix or kind.lower()}{counters.get('conv', 0)}"


def _macs(module, out_shape: tuple[int, ...]) -> int:
    kind = type(module).__name__
    if kind == "Conv2d":
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        c, h, w = out_shape
        return c * h * w * per_output
    if kind == "Linear":
        return module.in_features * module.out_features
    return 0


def layer_table(variant: Variant, model=None) -> pl.DataFrame:
    """One row per layer (conv, pool, LRN, fc): output shape C x H x W, parameters, MACs at
    batch 1. ``model`` defaults to a freshly built one (weights do not change the table)."""
    import torch

    model = model if model is not None else variant.build()
    rows: list[dict] = []
    counters: dict[str, int] = {}
    hooks = []

    def record(module, _inputs, output):
        kind = type(module).__name__
        shape = tuple(output.shape[1:])
        rows.append(
            {
                "layer": _layer_name(kind, counters),
                "type": kind,
                "output": "x".join(str(d) for d in shape),
                "params": sum(p.numel() for p in module.parameters(recurse=False)),
                "macs": _macs(module, shape),
            }
        )

    for module in model.modules():
        is_leaf = not list(module.children())
        if is_leaf and type(module).__name__ not in _SKIPPED:
            hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model(torch.zeros(1, *variant.input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return summary_frame(rows)


def summary_frame(rows: list[dict]) -> pl.DataFrame:
    """Rows (layer, type, output, params, macs) as the summary table, with its totals row:
    the one layout of this table, for a variant (above) and for any ONNX graph
    (alexnet_deploy.graph_summary)."""
    import polars as pl

    table = pl.DataFrame(
        rows,
        schema={
            "layer": pl.String,
            "type": pl.String,
            "output": pl.String,
            "params": pl.Int64,
            "macs": pl.Int64,
        },
    )
    total = pl.DataFrame(
        {
            "layer": ["total"],
            "type": [""],
            "output": [""],
            "params": [int(table["params"].sum())],
            "macs": [int(table["macs"].sum())],
        },
        schema=table.schema,
    )
    return pl.concat([table, total])


def total_macs(variant: Variant, model=None) -> int:
    """Multiply-accumulates of one image through the network (FLOPs = 2 x MACs)."""
    table = layer_table(variant, model)
    return int(table.filter(table["layer"] == "total")["macs"][0])
