"""Which precision plans to evaluate and which to measure: per-layer sensitivity, the greedy
order it gives, the candidate plans (exhaustive over the weight layers, or the greedy ones),
and the accuracy/cost Pareto front. Pure functions over figures computed elsewhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from alexnet_deploy import constants as C
from alexnet_deploy.calib.fidelity import Fidelity
from alexnet_deploy.errors import UsageError
from alexnet_deploy.precision.plans import Plan, WeightLayer


@dataclass
class Evaluated:
    """A plan with its emulated fidelity against FP32 (and, once measured, its speed)."""

    plan: Plan
    fidelity: Fidelity
    speed: dict[str, float] = field(default_factory=dict)  # speed_case(...).label -> images/s
    measured_note: str = ""  # why it was or was not measured

    @property
    def drop(self) -> float:
        return self.fidelity.top1_drop_points()


@dataclass(frozen=True)
class Sensitivity:
    layer: str
    alone_float_drop: float  # every other layer INT8, this one float
    alone_int8_drop: float  # this layer INT8, every other float
    recovery: float  # points regained against all-INT8 by keeping this layer float


def sensitivities(
    layers: list[WeightLayer], evaluate: Callable[[Plan], Evaluated], all_int8: Evaluated
) -> list[Sensitivity]:
    names = frozenset(x.name for x in layers)
    rows = []
    for x in layers:
        alone_float = evaluate(Plan(frozenset({x.name})))
        alone_int8 = evaluate(Plan(names - {x.name}))
        rows.append(
            Sensitivity(x.name, alone_float.drop, alone_int8.drop, all_int8.drop - alone_float.drop)
        )
    return rows


def greedy_order(layers: list[WeightLayer], found: list[Sensitivity]) -> list[str]:
    """Layers in the order a plan keeps them float: most accuracy regained first, then the
    most harmful alone, then the cheapest (fewest MACs) to give up INT8 for."""
    macs = {x.name: x.macs for x in layers}
    ranked = sorted(found, key=lambda s: (-s.recovery, -s.alone_int8_drop, macs[s.layer]))
    return [s.layer for s in ranked]


def candidate_plans(
    layers: list[WeightLayer], order: list[str], forced: frozenset[str], exhaustive: bool
) -> list[Plan]:
    """Every plan with the ``forced`` layers float (``exhaustive``: 2^n of them), or the greedy
    ones: all-INT8, then the first 1, 2, ... layers of ``order`` kept float."""
    free = [x.name for x in layers if x.name not in forced]
    if exhaustive:
        if len(free) > C.PLAN_EXHAUSTIVE_MAX_LAYERS:
            raise UsageError(
                f"--exhaustive over {len(free)} layers is {2 ** len(free)} plans; at most "
                f"{C.PLAN_EXHAUSTIVE_MAX_LAYERS} layers ({2**C.PLAN_EXHAUSTIVE_MAX_LAYERS} plans)",
                hint="drop --exhaustive (the greedy search), or fix layers with --keep-layer",
            )
        return [
            Plan(forced | frozenset(combo))
            for k in range(len(free) + 1)
            for combo in itertools.combinations(free, k)
        ]
    ranked = [name for name in order if name not in forced]
    return [Plan(forced | frozenset(ranked[:k])) for k in range(len(ranked) + 1)]


def pareto_front(found: list[Evaluated], layers: list[WeightLayer]) -> list[Evaluated]:
    """Plans no other plan beats on both accuracy (drop) and float MACs (the cost of keeping
    layers out of INT8), cheapest first."""
    ordered = sorted(found, key=lambda e: (e.plan.float_macs(layers), e.drop))
    front, best = [], float("inf")
    for e in ordered:
        if e.drop < best - 1e-9:
            front.append(e)
            best = e.drop
    return front


def to_measure(
    found: list[Evaluated], layers: list[WeightLayer], budget: float, most: int
) -> tuple[list[Evaluated], dict[str, str]]:
    """The plans within ``budget`` worth measuring: the front's, fewest float MACs first (the
    likeliest fastest), at most ``most``; and why each other plan was not measured."""
    labels = {e.plan: e.plan.label(layers) for e in found}
    within = [e for e in found if e.drop <= budget + 1e-9]
    front = [e for e in pareto_front(found, layers) if e in within]
    chosen = front[:most]
    skipped = {}
    for e in found:
        if e in chosen:
            continue
        if e not in within:
            skipped[labels[e.plan]] = f"misses the budget ({e.drop:.2f} points)"
        elif e not in front:
            skipped[labels[e.plan]] = "dominated: another plan is as accurate with fewer float MACs"
        else:
            skipped[labels[e.plan]] = f"beyond --max-measured {most} (more float MACs)"
    return chosen, skipped
