"""Machine-independent gating: ratios measured within one run.

INT8 over FP32 on the same backend, batch and mode, and each engine over the same runtime used
directly, are properties of the software more than of the machine, so a baseline taken
elsewhere still means something. Each ratio carries a bootstrap interval from its run's raw
samples; a ratio regresses when it falls more than the threshold below the baseline's AND its
interval lies entirely below the baseline value. Engine and direct runtime compare like with
like: what each computed in, as its runtime reported it (bench's ``computed_in``), must match,
and a pair whose direct row computed its model in another precision says so in its name.
"""

from __future__ import annotations

import time

from alexnet_deploy import constants as C
from alexnet_deploy.gate.compare import (
    NOT_COMPARABLE,
    GateResult,
    Verdict,
    verdict_of,
)
from alexnet_deploy.gate.reports import RATIO_SCHEMA, LoadedReport
from alexnet_deploy.gate.significance import RatioEstimate, bootstrap_ratio
from alexnet_deploy.gate.stability import instability, note_unstable

DIRECT = {"ort": "ort-direct", "openvino": "openvino-direct"}


def _ratio_pairs(report: LoadedReport):
    """(name, faster-path case, the case it is measured against) of every in-run ratio."""
    for key in sorted(report.rows, key=lambda k: k.sort_key()):
        if key not in report.samples:
            continue
        if key.precision == "int8" and key.backend not in DIRECT.values():
            # the FP32 engine of the same shape (its float parts are the file's own)
            fp32 = key.but(precision="fp32", quantizer="qdq", float_precision=None)
            if fp32 in report.samples:
                yield f"int8_speedup {key.label}", key, fp32
        if key.backend in DIRECT:
            for name, direct in _direct_peers(report, key):
                yield name, key, direct


def _computed(report: LoadedReport, key) -> str:
    """What a row computed in, as its runtime reported (its precision in older reports)."""
    row = report.rows.get(key)
    return (row.computed_in if row is not None else None) or key.precision


def _direct_peers(report: LoadedReport, key):
    """(ratio name, direct case) of the runtime used directly beside engine row ``key``, like
    with like: the same precision computed in the same one; or, where the direct runtime
    computed the FP32 model in another precision (OpenVINO's defaults: bf16), the engine of
    that precision, which runs the FP32 model too, the name saying so."""
    mine = _computed(report, key)
    for other in sorted(report.samples, key=lambda k: k.sort_key()):
        if other.backend != DIRECT[key.backend]:
            continue
        # a direct row of the engine's static batch where one was measured (tune's), else
        # the runtime's own dynamic range; a runtime used directly runs the file's own floats
        shaped = key.but(backend=other.backend, precision=other.precision, float_precision=None)
        if other != shaped and (other != shaped.but(static=False) or shaped in report.samples):
            continue
        theirs = _computed(report, other)
        if other.precision == key.precision and theirs == mine:
            yield f"vs_direct {key.label}", other
        elif other.precision == "fp32" and theirs == mine == key.precision != "fp32":
            yield f"vs_direct {key.label} (direct: {report.rows[other].computed_label})", other


def in_run_ratios(report: LoadedReport, seed: int = C.DEFAULT_SEED) -> dict[str, RatioEstimate]:
    """Speed-ups (> 1 is faster) from one report's raw samples."""
    # bootstrap_ratio gives stat(current)/stat(baseline): the other's latency / this one's
    return {
        name: bootstrap_ratio(report.samples[key], report.samples[other], seed=seed)
        for name, key, other in _ratio_pairs(report)
    }


def _unstable_ratios(report: LoadedReport) -> dict[str, str]:
    """Ratio name -> why, for the ratios that rest on an unstable row of ``report``."""
    out = {}
    for name, *keys in _ratio_pairs(report):
        found = "; ".join(f"{k.label}: {why}" for k in keys if (why := instability(report, k)))
        if found:
            out[name] = found
    return out


def ratio_baseline(report: LoadedReport, thresholds: dict[str, float] | None = None) -> dict:
    """A committed in-run-ratio baseline built from a report."""
    ratios = in_run_ratios(report)
    return {
        "schema": RATIO_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sources": [str(p) for p in report.paths],
        **({"model": next(iter(report.models))} if len(report.models) == 1 else {}),
        "ratios": {
            name: {
                "value": est.ratio,
                "ci": [est.low, est.high],
                **({"threshold": thresholds[name]} if thresholds and name in thresholds else {}),
            }
            for name, est in ratios.items()
        },
    }


def expected_ratios(baseline: LoadedReport, current: LoadedReport) -> tuple[dict, str]:
    """The baseline ratios that apply to ``current``'s CPU class, and a line saying which."""
    if not baseline.ratios and not baseline.ratios_by_isa:
        computed = {n: {"value": e.ratio} for n, e in in_run_ratios(baseline).items()}
        return computed, "ratio baseline: computed from the baseline report"
    isa = next(iter(current.cpu_isas)) if len(current.cpu_isas) == 1 else None
    if isa in baseline.ratios_by_isa:
        return baseline.ratios_by_isa[isa]["ratios"], f"ratio baseline for CPU class {isa}"
    if baseline.ratios_by_isa:
        known = ", ".join(sorted(baseline.ratios_by_isa))
        return (
            baseline.ratios,
            f"ratio baseline: no figures for CPU class {isa or 'mixed/unknown'} (have: {known}); "
            "the floor that holds on every measured class applies",
        )
    return baseline.ratios, "ratio baseline: one set for every CPU class"


def compare_ratios(
    baseline: LoadedReport, current: LoadedReport, default_threshold: float
) -> GateResult:
    """``baseline`` is a ratio-baseline file or another bench report (its ratios are computed).
    A baseline file with ``by_isa`` holds one set per CPU instruction-set class (INT8 speed-ups
    differ between classes): the current report's class picks its set, else the top-level
    ``ratios`` apply (the floor that holds on every class measured)."""
    expected, note = expected_ratios(baseline, current)
    measured = in_run_ratios(current)
    result = GateResult([], mode="ratios")
    result.notes.append(note)
    for name, spec in sorted(expected.items()):
        threshold = spec.get("threshold", default_threshold)
        if name not in measured:
            result.verdicts.append(
                Verdict(name, "ratio", NOT_COMPARABLE, spec["value"], note="missing in current")
            )
            continue
        est = measured[name]
        change = 1 - est.ratio / spec["value"]  # positive: the speed-up shrank
        verdict = verdict_of(change, threshold, est.high < spec["value"], est.low > spec["value"])
        result.verdicts.append(
            Verdict(
                name,
                "ratio",
                verdict,
                spec["value"],
                est.ratio,
                change,
                est.low,
                est.high,
                note=f"threshold {threshold:.0%}",
                threshold=threshold,
            )
        )
    unstable = _unstable_ratios(current)
    for verdict in result.verdicts:
        verdict.unstable = unstable.get(verdict.config, "")
    note_unstable(result, "ratio(s) resting on unstable rows")
    if not result.comparable:
        result.notes.append("no ratio could be compared")
    return result
