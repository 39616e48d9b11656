"""tune's confirm stage, what it measures and what its rounds decide (bench/tune_search.py runs
it last, within the time budget).

The finalists (:func:`finalists`): the C.TUNE_CONFIRM_TOP fastest candidates of stages 1-2 that
meet the constraint and the fastest row of each runtime used directly, measured again together,
round robin, over C.TUNE_CONFIRM_ROUNDS rounds (at least --repeat): a shared machine's drift
then falls on every finalist alike. Their rows replace the earlier ones (one row per
configuration; its rounds are the confirm stage's). What those rounds decide
(:class:`Confirmation`): the choice, the best by the median of its rounds; the ratio to each
runtime used directly, the median of the per-round ratios of these same rounds
(direct_tput.Ratio); and which configurations are within the measured round-to-round noise of
the choice (:func:`noise_gap`), said rather than hidden: two runs of tune may choose either of
those, and both are right within the noise.

Pure functions over rows and their rounds: nothing is measured here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.bench.records import BenchRow
from alexnet_deploy.cases import Case
from alexnet_deploy.engines.registry import DIRECT_BACKENDS


def rates(row: BenchRow) -> tuple[float, ...]:
    """A row's images/s per round (its pooled figure where no round was recorded)."""
    return tuple(row.round_images_per_s or (row.images_per_s,))


def median_rate(row: BenchRow) -> float:
    """A row's median images/s over its rounds."""
    return float(np.median(rates(row)))


def spread(rounds: Sequence[float]) -> float:
    """The rounds' spread, relative to their median: (max - min) / median (0 for one round)."""
    if len(rounds) < 2:
        return 0.0
    return (max(rounds) - min(rounds)) / float(np.median(rounds))


def noise_gap(
    chosen: Sequence[float], other: Sequence[float], floor: float = C.TUNE_NOISE_FLOOR
) -> tuple[float, float]:
    """How far ``other``'s median images/s is below ``chosen``'s (a share of ``chosen``'s), and
    the noise it is judged against: ``floor``, or the spread of either one's rounds where that
    is larger. ``other`` is within noise of ``chosen`` where the gap is below the noise."""
    best = float(np.median(chosen))
    gap = (best - float(np.median(other))) / best
    return gap, max(floor, spread(chosen), spread(other))


def finalists(
    rows: list[BenchRow], feasible: Callable[[BenchRow], bool], top: int = C.TUNE_CONFIRM_TOP
) -> list[Case]:
    """The confirm stage's cases, in the order a time budget admits them: the fastest candidate
    meeting the constraint (``feasible``), the fastest row of each runtime used directly (the
    ratio needs them), then the next ``top`` - 1 candidates; each by its images/s so far."""
    ok = sorted((r for r in rows if r.ok), key=lambda r: r.images_per_s, reverse=True)
    best = [r.case for r in ok if r.case.backend not in DIRECT_BACKENDS and feasible(r)][:top]
    peers: dict[str, Case] = {}
    for row in ok:
        if row.case.backend in DIRECT_BACKENDS:
            peers.setdefault(row.case.backend, row.case)
    return best[:1] + list(peers.values()) + best[1:]


@dataclass(frozen=True)
class Confirmation:
    """What the confirm stage's rounds decide. ``ranked``: the confirmed candidates meeting the
    constraint, best median first (the first is the choice); ``peers``: each runtime used
    directly, its confirmed row."""

    ranked: list[BenchRow]
    peers: dict[str, BenchRow]

    @property
    def chosen(self) -> BenchRow:
        return self.ranked[0]

    @property
    def rounds(self) -> int:
        return len(rates(self.chosen))

    def within_noise_of(self) -> list[dict]:
        """The other confirmed candidates whose median is within noise of the choice's: each
        with its median, how far below the choice (``gap``) and the noise it was judged by."""
        found = []
        for row in self.ranked[1:]:
            gap, noise = noise_gap(rates(self.chosen), rates(row))
            if gap < noise:
                found.append(
                    {
                        "label": row.label,
                        "case": row.case.columns(),
                        "median_images_per_s": median_rate(row),
                        "gap": gap,
                        "noise": noise,
                    }
                )
        return found

    def noise_text(self) -> str | None:
        """'openvino int8 b64 static throughput s2 and openvino int8 b32 static throughput s2
        (1.3% apart; noise 2.0%) are within noise of each other', or None where none is."""
        close = self.within_noise_of()
        if not close:
            return None
        others = "; ".join(
            f"{c['label']} ({c['gap']:.1%} apart; noise {c['noise']:.1%})" for c in close
        )
        return f"{self.chosen.label} and {others} are within noise of each other"

    def lines(self) -> list[str]:
        """Each finalist's median and rounds, the choice first, then the runtimes used directly."""
        shown = [*self.ranked, *self.peers.values()]
        return [
            f"  {r.label}: median {median_rate(r):.1f} images/s (rounds "
            f"{', '.join(f'{x:.1f}' for x in rates(r))}; spread {spread(rates(r)):.1%})"
            for r in shown
        ]

    def record(self) -> dict:
        """What tuned.json keeps of it (``search.confirm``)."""
        return {
            "rounds": self.rounds,
            "finalists": [
                {
                    "label": r.label,
                    "median_images_per_s": median_rate(r),
                    "round_images_per_s": list(rates(r)),
                    "spread": spread(rates(r)),
                }
                for r in [*self.ranked, *self.peers.values()]
            ],
            "noise_floor": C.TUNE_NOISE_FLOOR,
        }


def confirm(
    rows: list[BenchRow], confirmed: Collection[Case], feasible: Callable[[BenchRow], bool]
) -> Confirmation | None:
    """The decision of the confirm stage over ``rows``, of which ``confirmed`` are the cases it
    measured; None where it measured no candidate meeting the constraint (the time budget left
    it out, or none is feasible)."""
    ran = sorted((r for r in rows if r.ok and r.case in confirmed), key=median_rate, reverse=True)
    ranked = [r for r in ran if r.case.backend not in DIRECT_BACKENDS and feasible(r)]
    if not ranked:
        return None
    peers: dict[str, BenchRow] = {}
    for row in ran:
        if row.case.backend in DIRECT_BACKENDS:
            peers.setdefault(row.case.backend, row)
    return Confirmation(ranked, peers)
