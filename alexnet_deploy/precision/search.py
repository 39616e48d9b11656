"""Which precision plans to evaluate and which to measure: per-layer sensitivity, the greedy
order it gives, the candidate plans (exhaustive over the weight layers, or the greedy ones, a
layer or a block at a time), the search over them within a candidate and a time budget, and
the accuracy/cost Pareto front. Functions over figures computed elsewhere (``evaluate``: a
plan's emulated fidelity; ``one_shot``: every layer's noise from one all-INT8 pass).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from alexnet_deploy import constants as C
from alexnet_deploy.calib.fidelity import Fidelity
from alexnet_deploy.errors import UsageError
from alexnet_deploy.precision.plans import Plan, WeightLayer


@dataclass
class Evaluated:
    """A plan with its emulated fidelity against FP32 (and, once measured, its speed; where its
    float layers run bf16, its fidelity as the engine timed executed it too)."""

    plan: Plan
    fidelity: Fidelity
    speed: dict[str, float] = field(default_factory=dict)  # speed_case(...).label -> images/s
    measured_note: str = ""  # why it was or was not measured
    keep: str = ""  # what its float layers run in, where not the request's (a reference)
    executed: Fidelity | None = None  # as the engine timed ran it (plan --keep bf16)
    executed_on: str = ""

    @property
    def drop(self) -> float:
        return self.fidelity.top1_drop_points()

    def within(self, budget: float) -> bool:
        """Within ``budget`` points, emulated and, where measured, as executed."""
        drops = [self.drop, *([self.executed.top1_drop_points()] if self.executed else [])]
        return max(drops) <= budget + 1e-9


@dataclass(frozen=True)
class Sensitivity:
    """One layer's INT8 sensitivity: per layer (two passes: ``alone_float_drop``,
    ``alone_int8_drop``, ``recovery``), or one-shot (``noise_added``, ``snr_db``); the other
    method's fields are None."""

    layer: str
    alone_float_drop: float | None = None  # every other layer INT8, this one float
    alone_int8_drop: float | None = None  # this layer INT8, every other float
    recovery: float | None = None  # points regained against all-INT8 by keeping this layer float
    noise_added: float | None = None  # one-shot: error power over signal this layer adds
    snr_db: float | None = None  # one-shot: its output's SNR in the all-INT8 file


class Deadline:
    """``--time-budget``: the seconds the search may take from its start."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def expired(self) -> bool:
        return self.elapsed() >= self.seconds


def sensitivities(
    layers: list[WeightLayer],
    evaluate: Callable[[Plan], Evaluated],
    all_int8: Evaluated,
    deadline: Deadline | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> list[Sensitivity]:
    """Each layer's two passes (alone float, alone INT8), in network order, until
    ``deadline``: the layers it leaves have no row."""
    names = frozenset(x.name for x in layers)
    rows = []
    for k, x in enumerate(layers, start=1):
        if deadline is not None and deadline.expired():
            break
        progress(f"sensitivity {k}/{len(layers)}: {x.name}")
        alone_float = evaluate(Plan(frozenset({x.name})))
        alone_int8 = evaluate(Plan(names - {x.name}))
        rows.append(
            Sensitivity(x.name, alone_float.drop, alone_int8.drop, all_int8.drop - alone_float.drop)
        )
    return rows


def greedy_order(layers: list[WeightLayer], found: list[Sensitivity]) -> list[str]:
    """Layers in the order a plan keeps them float: most accuracy regained first, then the
    most harmful alone, then the cheapest (fewest MACs) to give up INT8 for; one-shot: the
    most noise added first. Layers with no sensitivity (the time budget ran out) come last, in
    network order."""
    macs = {x.name: x.macs for x in layers}

    def key(s: Sensitivity):
        if s.recovery is None:
            return (-(s.noise_added or 0.0), 0.0, macs[s.layer])
        return (-s.recovery, -s.alone_int8_drop, macs[s.layer])

    ranked = [s.layer for s in sorted(found, key=key)]
    return ranked + [x.name for x in layers if x.name not in set(ranked)]


def greedy_steps(layers: list[WeightLayer], order: list[str], by_block: bool) -> list[list[str]]:
    """What each greedy step adds to the float layers: one layer of ``order``, or
    (``by_block``) the whole block of the next layer in ``order`` not yet float (a layer the
    names put in no block is a step of its own)."""
    if not by_block:
        return [[name] for name in order]
    block = {x.name: x.block or x.name for x in layers}
    steps: dict[str, list[str]] = {}
    for name in order:
        steps.setdefault(block[name], []).append(name)
    return list(steps.values())


def exhaustive_count(layers: list[WeightLayer], forced: frozenset[str]) -> int:
    """The plans --exhaustive needs (2^free layers); refused past C.PLAN_EXHAUSTIVE_MAX_LAYERS,
    before any work, saying how many and what to use instead."""
    free = sum(1 for x in layers if x.name not in forced)
    if free > C.PLAN_EXHAUSTIVE_MAX_LAYERS:
        raise UsageError(
            f"--exhaustive over {len(layers)} weight layers ({free} free) would need 2^{free} = "
            f"{2**free:,} plans; it takes at most {C.PLAN_EXHAUSTIVE_MAX_LAYERS} layers "
            f"({2**C.PLAN_EXHAUSTIVE_MAX_LAYERS:,} plans)",
            hint="drop --exhaustive (the greedy search, bounded by --max-candidates and "
            "--time-budget), or fix layers float with --keep-layer until at most "
            f"{C.PLAN_EXHAUSTIVE_MAX_LAYERS} are free",
        )
    return 2**free


def candidate_plans(
    layers: list[WeightLayer],
    order: list[str],
    forced: frozenset[str],
    exhaustive: bool,
    by_block: bool = False,
) -> list[Plan]:
    """Every plan with the ``forced`` layers float (``exhaustive``: 2^n of them), or the greedy
    ones: all-INT8, then the first 1, 2, ... steps of ``order`` kept float (a layer each, or
    ``by_block`` a block each)."""
    if exhaustive:
        exhaustive_count(layers, forced)
        free = [x.name for x in layers if x.name not in forced]
        return [
            Plan(forced | frozenset(combo))
            for k in range(len(free) + 1)
            for combo in itertools.combinations(free, k)
        ]
    ranked = [name for name in order if name not in forced]
    plans, floated = [Plan(forced)], set(forced)
    for step in greedy_steps(layers, ranked, by_block):
        floated |= set(step)
        plans.append(Plan(frozenset(floated)))
    return plans


@dataclass
class SearchLog:
    """How the search went: its sensitivity method and steps, its budgets, and what a budget
    left out (candidate plans never evaluated, layers whose sensitivity was not measured)."""

    sensitivity: str  # the method, and why
    steps: str  # "a layer at a time", "a block at a time", "exhaustive"
    max_candidates: int
    time_budget_s: float
    planned: int = 0  # candidate plans the search would evaluate unbounded
    evaluated: int = 0
    stopped_by: str = ""  # "" or the budget that stopped it
    not_evaluated: list[str] = field(default_factory=list)  # plan labels
    no_sensitivity: list[str] = field(default_factory=list)  # layers
    seconds: float = 0.0

    def note(self) -> str:
        """The line the outputs carry when a budget stopped the search ("" when none did)."""
        if not self.stopped_by:
            return ""
        parts = []
        if self.no_sensitivity:
            parts.append(f"{len(self.no_sensitivity)} layer(s) have no sensitivity (ordered last)")
        if self.not_evaluated:
            shown = "; ".join(self.not_evaluated[:3])
            more = len(self.not_evaluated) - 3
            parts.append(
                f"{self.evaluated} of {self.planned} candidate plans evaluated; not evaluated: "
                f"{shown}" + (f" and {more} more (plan.json lists them)" if more > 0 else "")
            )
        return (
            f"the search stopped at {self.stopped_by}: {'; '.join(parts)}; raise "
            "--max-candidates or --time-budget to search further"
        )

    def as_dict(self) -> dict:
        return asdict(self)


def search_plans(
    layers: list[WeightLayer],
    forced: frozenset[str],
    evaluate: Callable[[Plan], Evaluated],
    all_int8: Evaluated,
    *,
    exhaustive: bool,
    max_candidates: int,
    time_budget_s: float,
    one_shot: Callable[[], list[Sensitivity]],
    progress: Callable[[str], None] = lambda _m: None,
) -> tuple[list[Sensitivity], SearchLog]:
    """Sensitivity, then the candidate plans, each ``evaluate``d, within the budgets: at most
    ``max_candidates`` greedy plans (exhaustive: its size limit), ``time_budget_s`` seconds in
    all. Up to C.PLAN_PER_LAYER_MAX layers: two passes per layer and a layer per greedy step;
    past it ``one_shot`` (one all-INT8 pass for every layer) and a block per step."""
    deadline = Deadline(time_budget_s)
    many = len(layers) > C.PLAN_PER_LAYER_MAX
    log = SearchLog(
        f"one-shot: each layer's noise in one all-INT8 pass (past {C.PLAN_PER_LAYER_MAX} "
        "layers, two passes per layer would take too long)"
        if many
        else "per layer: the network with it alone float, and alone INT8",
        "exhaustive" if exhaustive else ("a block at a time" if many else "a layer at a time"),
        max_candidates,
        time_budget_s,
    )
    if many:
        progress(f"sensitivity of {len(layers)} layers, one-shot (one all-INT8 pass)")
        found = one_shot()
    else:
        found = sensitivities(layers, evaluate, all_int8, deadline, progress)
    measured = {s.layer for s in found}
    log.no_sensitivity = [x.name for x in layers if x.name not in measured]
    order = greedy_order(layers, found)
    plans = [  # all-INT8 is evaluated already: no candidate's place is spent on it
        plan
        for plan in candidate_plans(layers, order, forced, exhaustive, by_block=many)
        if plan != all_int8.plan
    ]
    log.planned = len(plans)
    for k, plan in enumerate(plans, start=1):
        if not exhaustive and log.evaluated >= max_candidates:
            log.stopped_by = f"--max-candidates {max_candidates}"
        elif deadline.expired():
            log.stopped_by = f"--time-budget {time_budget_s:g} s"
        if log.stopped_by:
            log.not_evaluated = [p.label(layers) for p in plans[k - 1 :]]
            break
        progress(
            f"candidate {k}/{len(plans)} ({deadline.elapsed():.0f} of {time_budget_s:g} s): "
            f"{plan.label(layers)}"
        )
        evaluate(plan)
        log.evaluated += 1
    if log.no_sensitivity and not log.stopped_by:
        log.stopped_by = f"--time-budget {time_budget_s:g} s"
    log.seconds = deadline.elapsed()
    return found, log


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
