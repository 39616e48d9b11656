"""Where a step came in: change points in one configuration's history of runs (oldest first).

The method: binary segmentation (find the best split of the series, keep it if significant, then
look again on each side) with a permutation test of a rank statistic on each split, and a
minimum step between the medians either side. It is E-Divisive-means in shape (the method
MongoDB's and Hunter's CI change-point detection use), with three choices made for the runs this
project's machines give:

* **The run is the unit, not the sample.** Separate runs of one engine move p50 by up to 19% on
  a shared machine (docs/gate-evaluation-unpaired.md) while each run's own samples agree within
  a few percent; a test on pooled samples would call every drift between runs a change
  (pseudo-replication). Each run gives one value (its images/s by default), and the test asks
  whether the runs before a split differ from the runs after it. A run's raw samples are the
  gate's business (gate/compare.py judges the current run with them).
* **Tested on ranks, placed on values.** One stalled run (+19%) drags a statistic on values
  towards a split next to it; on ranks it counts as one run among N. The statistic is
  E-Divisive's energy distance (exponent 1) between the runs before and after each split, on
  the runs' ranks; its largest value over the splits is what is tested. Ranks lose how far apart
  two runs are, though (on a staircase 100, 88, 77 every rank split looks alike and the middle
  wins), so the split itself is placed where the same statistic on log values is largest, and
  tested by its rank statistic there (never more significant than the best rank split).
* **A permutation test, exact and seeded.** The p-value is the share of shuffles of the series
  whose largest rank statistic reaches the observed one (C.CHANGEPOINT_PERMUTATIONS shuffles
  for a whole window, more for a shorter series: :func:`_shuffles`; a fixed seed: the same
  history gives the same answer). It makes no assumption on how runs vary, and the maximum over
  splits is in the shuffled statistic, so testing every split costs no extra false alarms.
  Hunter replaced the permutation with a Student's t-test for speed on long series; in windows
  of at most C.CHANGEPOINT_WINDOW runs the permutation takes milliseconds here. E-Divisive
  also ends the segment after a split early (its kappa), which finds a dip that recovers
  (100, 80, 100) sooner; tried here, it doubled the false alarms on 11-run series and lost the
  second step of a 12-run staircase, so each split is tested against the whole rest.

A step must also be large: the medians of the runs either side must differ by at least
C.CHANGEPOINT_MIN_STEP, so small real steps (or a significant drift of a few percent) are not
flagged. Splits are found on significance first, then the smallest steps are dropped one at a
time (their neighbours merged and re-measured) until every step kept is large enough. A step
needs C.CHANGEPOINT_MIN_SEGMENT runs on each side: a single run is a stall as often as a step,
so a step in the newest run alone is the gate's to judge (the current run against the runs
before it), and is named here once the next run confirms it.

How many runs must follow a step depends on the series' length: a permutation test of n runs
has a floor (the share of orderings that separate as cleanly as a perfect step does), so a step
however clear is named only once enough runs follow it (:func:`min_runs_after`: 4 of 9 runs, 3
of 11; exactly, 3 after in 9 runs gives p >= 0.066). A best split whose p misses the rule's
alpha but is under C.CHANGEPOINT_CANDIDATE_ALPHA, with a large enough step, is a *candidate*
(``ChangePoint.candidate``): shown faintly, never judged, named once more runs come.

A long history is looked at in windows of at most C.CHANGEPOINT_WINDOW runs, each overlapping
the next by half, aligned on the newest run (its window is always whole); a step found in two
windows is one step (the smaller p kept). The test's distances cost n x n per shuffle, so one
window of 150 runs took 636 MB; and the false-alarm rate measured on 11-run histories is a rate
per window: a history of several windows has more chances of a false step.

What the rule achieves on series built from real samples and this machine's measured drift
between runs (false alarms on no-change series, detections of 5, 10 and 20% steps):
docs/gate-evaluation-changepoint.md, made by scripts/changepoint-evaluation.
``ruptures`` was not used: its detectors (PELT, binary segmentation) need a penalty or a number
of change points given, and offer no significance test to measure a false-alarm rate against.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alexnet_deploy import constants as C

# the StoredResult fields a series can be tested on, as every output names them
SHOWN = {"images_per_s": "images/s", "p50_ms": "p50 (ms)", "p99_ms": "p99 (ms)"}
METRICS = tuple(SHOWN)


@dataclass(frozen=True)
class ChangePoint:
    """A step in a series: ``index`` is the first run after it (where the change came in)."""

    index: int  # into the series given (its failed or missing points included)
    commit: str | None  # that run's commit
    run_uuid: str | None
    before: float  # the median per-run value of the runs since the previous step
    after: float  # ... and of the runs after this one, up to the next
    relative_change: float  # after / before - 1: the metric's own move (images/s: - is slower)
    p_value: float
    metric: str = "images_per_s"
    candidate: bool = False  # p above the rule's alpha, under the candidates': not named yet

    @property
    def worse(self) -> bool:
        """The step made things slower (fewer images/s, a longer p50 or p99)."""
        return (self.relative_change < 0) == (self.metric == "images_per_s")

    def describe(self) -> str:
        """One line: what moved, by how much, from which commit."""
        from alexnet_deploy.store.records import short_commit

        commit = short_commit(self.commit) or "an unknown commit"
        return (
            f"{'candidate step: ' if self.candidate else ''}{SHOWN[self.metric]} "
            f"{100 * self.relative_change:+.1f}% ({self.before:.4g} -> {self.after:.4g}) from "
            f"commit {commit} (p={self.p_value:.3f})"
        )


@dataclass(frozen=True)
class StepRule:
    """How sure and how large a step must be (defaults: constants.py, with why)."""

    alpha: float = C.CHANGEPOINT_ALPHA
    min_step: float = C.CHANGEPOINT_MIN_STEP
    min_segment: int = C.CHANGEPOINT_MIN_SEGMENT
    permutations: int = C.CHANGEPOINT_PERMUTATIONS
    seed: int = C.DEFAULT_SEED
    candidate_alpha: float = C.CHANGEPOINT_CANDIDATE_ALPHA
    window: int = C.CHANGEPOINT_WINDOW


@dataclass(frozen=True)
class Found:
    """What :func:`find_changes` finds: ``(index, p_value)`` per step and per candidate step,
    in index order (index: the first value after it)."""

    steps: list[tuple[int, float]]
    candidates: list[tuple[int, float]]


def _split_statistics(ranks: np.ndarray, min_segment: int) -> np.ndarray:
    """E-Divisive's statistic (energy distance, exponent 1), per row of ``ranks`` (shuffles x n)
    and admissible split t (min_segment..n-min_segment): t(n-t)/n x (2 x the mean distance
    between the runs before t and those after - the mean distance within the runs before - the
    mean within those after)."""
    n = ranks.shape[-1]
    distances = np.abs(ranks[..., :, None] - ranks[..., None, :])
    block = np.cumsum(np.cumsum(distances, axis=-1), axis=-2)  # block[i, j]: sum of [:i+1, :j+1]
    t = np.arange(min_segment, n - min_segment + 1)
    total = block[..., -1, -1][..., None]
    before = block[..., t - 1, t - 1]  # each pair twice, as in the other two
    rows = block[..., t - 1, -1]  # the first t rows, every column
    between = rows - before
    after = total - 2 * rows + before
    m, k = t, n - t
    energy = 2 * between / (m * k) - before / (m * (m - 1)) - after / (k * (k - 1))
    return m * k / n * energy


def best_split(values: np.ndarray, rule: StepRule, rng: np.random.Generator) -> tuple[int, float]:
    """Where the step in ``values`` is, and its permutation p-value: ``(t, p)``, the step
    before values[t]. The split is placed on the values (ranks lose how far apart two runs are:
    on a staircase every rank split looks alike, and the middle wins); the p-value is the share
    of shuffles whose largest statistic on ranks reaches the ranks' statistic at that split
    (never smaller than the test of the best rank split, so a stall cannot make it)."""
    from scipy.stats import rankdata

    ranks = rankdata(values)
    at = int(np.argmax(_split_statistics(np.log(values), rule.min_segment)))
    observed = _split_statistics(ranks, rule.min_segment)[at]
    shuffles = _shuffles(len(values), rule)
    shuffled = rng.permuted(np.tile(ranks, (shuffles, 1)), axis=1)
    largest = _split_statistics(shuffled, rule.min_segment).max(axis=1)
    p = (1 + int(np.sum(largest >= observed - 1e-9))) / (1 + shuffles)
    return rule.min_segment + at, p


def _shuffles(n: int, rule: StepRule) -> int:
    """How many shuffles test a series of n runs: ``rule.permutations`` for a whole window,
    more for a shorter series (the same n x n work as a window's). A short series' p-value
    lies near the test's floor, where the shuffles' own noise decides which side of alpha it
    falls: 9 runs, a perfect step 3 from the end, is exactly p = 0.066; 999 shuffles put it
    within +-0.016 (two standard errors), at or under 0.05 for some orderings of the same
    runs; 4933 (9 runs) within +-0.007."""
    return max(rule.permutations, rule.permutations * rule.window**2 // n**2)


def _significant_splits(
    values: np.ndarray, lo: int, hi: int, rule: StepRule, rng: np.random.Generator,
    candidates: dict[int, float],
) -> dict[int, float]:  # fmt: skip
    """Binary segmentation of values[lo:hi]: split index -> p-value, every significant one; a
    best split that misses alpha but not the candidates' alpha goes into ``candidates``."""
    if hi - lo < 2 * rule.min_segment:
        return {}
    t, p = best_split(values[lo:hi], rule, rng)
    if p > rule.alpha:
        if p <= rule.candidate_alpha:
            candidates[lo + t] = p
        return {}
    return {
        **_significant_splits(values, lo, lo + t, rule, rng, candidates),
        lo + t: p,
        **_significant_splits(values, lo + t, hi, rule, rng, candidates),
    }


def _windows(n: int, size: int) -> list[tuple[int, int]]:
    """[lo, hi) windows of at most ``size`` values over n, each overlapping the next by half,
    aligned on the newest value (its window is whole), oldest first."""
    if n <= size:
        return [(0, n)]
    stride = max(1, size // 2)
    starts = list(range(n - size, 0, -stride))
    return [(0, size)] + [(lo, lo + size) for lo in reversed(starts) if lo > 0]


def _keep(found: dict[int, float], index: int, p: float, gap: int) -> None:
    """Add a split found in one window: one within ``gap`` of a split already found (another
    window's view of the same step) is the same step; the smaller p is kept."""
    near = [j for j in found if abs(j - index) < gap]
    if any(found[j] <= p for j in near):
        return
    for j in near:
        del found[j]
    found[index] = p


def _segment_medians(values: np.ndarray, splits: list[int]) -> list[float]:
    edges = [0, *splits, len(values)]
    return [float(np.median(values[a:b])) for a, b in zip(edges, edges[1:], strict=False)]


def _around(values: np.ndarray, index: int, splits: list[int]) -> tuple[float, float]:
    """The medians of the runs before ``index`` and from it on, each up to the nearest of
    ``splits`` (a candidate's levels, between the steps named)."""
    lo = max([s for s in splits if s < index], default=0)
    hi = min([s for s in splits if s > index], default=len(values))
    return float(np.median(values[lo:index])), float(np.median(values[index:hi]))


def find_changes(values: Sequence[float], rule: StepRule = StepRule()) -> Found:
    """The steps in a series of per-run values (oldest first), and its candidate steps. Each
    window (``rule.window`` runs) is tested with its own generator seeded alike, so a window
    gives the same answer wherever it lies."""
    data = np.asarray(values, dtype=np.float64)
    found: dict[int, float] = {}
    maybe: dict[int, float] = {}
    for lo, hi in _windows(len(data), rule.window):
        rng = np.random.default_rng(rule.seed)
        window_maybe: dict[int, float] = {}
        for index, p in _significant_splits(data, lo, hi, rule, rng, window_maybe).items():
            _keep(found, index, p, rule.min_segment)
        for index, p in window_maybe.items():
            _keep(maybe, index, p, rule.min_segment)
    splits = sorted(found)
    while splits:  # drop the smallest step below the minimum, merge, re-measure
        medians = _segment_medians(data, splits)
        steps = [
            abs(b / a - 1) if a > 0 else np.inf for a, b in zip(medians, medians[1:], strict=False)
        ]
        smallest = int(np.argmin(steps))
        if steps[smallest] >= rule.min_step:
            break
        splits.pop(smallest)
    candidates = []
    for index in sorted(maybe):
        if any(abs(index - s) < rule.min_segment for s in splits):
            continue  # the step itself, seen with more runs in another window
        before, after = _around(data, index, splits)
        if before > 0 and abs(after / before - 1) >= rule.min_step:
            candidates.append((index, maybe[index]))
    return Found([(index, found[index]) for index in splits], candidates)


def find_steps(values: Sequence[float], rule: StepRule = StepRule()) -> list[tuple[int, float]]:
    """The steps in a series of per-run values (oldest first): ``(index, p_value)`` per step,
    index the first value after it, in order. Pure numpy: scripts/changepoint-evaluation runs
    exactly this."""
    return find_changes(values, rule).steps


@functools.lru_cache(maxsize=64)
def min_runs_after(n: int, rule: StepRule = StepRule()) -> int | None:
    """How many runs must follow a step, however clear, for it to be named in a series of
    ``n`` runs (looked at in windows of ``rule.window``): the fewest k for which a perfect
    step (every run after it below every run before) reaches ``rule.alpha``; None when no k
    does (a series too short to name any step)."""
    n = min(n, rule.window)
    for after in range(rule.min_segment, n - rule.min_segment + 1):
        ideal = np.concatenate([np.full(n - after, 2.0), np.ones(after)]) + 1e-3 * np.arange(n)
        if best_split(ideal, rule, np.random.default_rng(rule.seed))[1] <= rule.alpha:
            return after
    return None


def _value(result, metric: str) -> float | None:
    if not result.ok:
        return None
    value = getattr(result, metric)
    return None if value is None or not np.isfinite(value) or value <= 0 else float(value)


def detect_changes(
    series: Sequence,
    *,
    metric: str = "images_per_s",
    rule: StepRule = StepRule(),
    candidates: bool = False,
) -> list[ChangePoint]:
    """The change points of one configuration's series (store.Store.series: StoredResults
    oldest first, each with ``.run`` set; on one machine class and model). A failed run, or one
    without the metric, is no point of the series; indices are into ``series`` as given.
    ``candidates``: the candidate steps too (``ChangePoint.candidate``), in index order."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: one of {', '.join(METRICS)}")
    kept = [(i, v) for i, v in ((i, _value(r, metric)) for i, r in enumerate(series)) if v]
    values = np.array([v for _, v in kept])
    found = find_changes(values, rule)
    splits = [at for at, _ in found.steps]
    medians = _segment_medians(values, splits) if splits else []
    levels = [(medians[n], medians[n + 1]) for n in range(len(splits))]
    points = [(at, p, level, False) for (at, p), level in zip(found.steps, levels, strict=True)]
    if candidates:
        points += [(at, p, _around(values, at, splits), True) for at, p in found.candidates]
    made = []
    for at, p, (before, after), candidate in sorted(points):
        run = getattr(series[kept[at][0]], "run", None)
        made.append(
            ChangePoint(
                index=kept[at][0],
                commit=None if run is None else run.commit,
                run_uuid=None if run is None else run.uuid,
                before=before,
                after=after,
                relative_change=after / before - 1,
                p_value=p,
                metric=metric,
                candidate=candidate,
            )
        )
    return made
