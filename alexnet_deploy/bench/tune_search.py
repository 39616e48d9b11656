"""tune's search: three stages within a time budget, in place of bench's matrix loop
(bench/pipeline.py's ``BenchOptions.search``), over the same engines, rules and rows.

Stage 1, the coarse space: the matrix tune was given (runtimes x INT8 routes x precisions x
batches, C.TUNE_BATCHES unless --batch), each engine compiled for its own batch where its
runtime can (static), at the runtime's optimal number of requests (OpenVINO's throughput hint
says, read from the model compiled for that batch; C.TUNE_DEFAULT_REQUESTS elsewhere) unless
--streams names them. Interleaved with it, batch by batch, each runtime used directly with its
documented throughput settings (direct_tput's ``DOCUMENTED``): the rows a user would otherwise
try. Stage 2 refines the C.TUNE_REFINE fastest stage-1 configurations that meet the constraint,
one setting at a time: the dynamic 1..N range against the static batch, C.TUNE_REQUESTS requests
(unless --streams), an INT8 engine's float parts in bf16 (where the runtime and the CPU run it).
The confirm stage (bench/tune_confirm.py) measures the finalists of both stages again,
interleaved over C.TUNE_CONFIRM_ROUNDS rounds (at least --repeat): the choice is the best median
of those rounds, and the ratio to each runtime used directly the median of the per-round ratios.

Every dimension searched is an engine setting (``Case``: static, streams, float_precision) that
``build --tuned`` and ``bench --tuned`` reproduce. Before each candidate the :class:`Budget`
compares the time left within the stage's share with the cost of its rounds, estimated from the
rounds measured so far; one it cannot cover is skipped and listed (in the report's "not
measured", the terminal and tuned.json; a finalist the confirm stage cannot cover keeps its
earlier row, and is listed apart).
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.bench.config import BenchConfig, MeasureRules
from alexnet_deploy.bench.direct_tput import OptimalRequests, case_run, documented_cases
from alexnet_deploy.bench.records import BenchResult, BenchRow
from alexnet_deploy.bench.run import CaseRun, FidelityProbe, run_cases, timed_batches
from alexnet_deploy.bench.tune_confirm import finalists
from alexnet_deploy.cases import Case


def check_time_budget(seconds: float, rules: MeasureRules) -> None:
    """Refuse, before any work, a time budget whose first stage cannot cover one candidate (its
    rounds, --repeat, each a warm-up and the time cap: the estimate before any has run)."""
    from alexnet_deploy.errors import UsageError

    one = rules.repeat * (rules.warmup_seconds + rules.max_seconds)
    if 0 < seconds * C.TUNE_STAGE1_SHARE < one:
        rounds = f"{rules.repeat} rounds (--repeat) of " if rules.repeat > 1 else ""
        raise UsageError(
            f"--time-budget {seconds:g} cannot cover one candidate: about {one:g} s ({rounds}"
            f"warm-up {rules.warmup_seconds:g} s and --max-seconds {rules.max_seconds:g}) within "
            f"the first stage's {C.TUNE_STAGE1_SHARE:.0%} of the budget",
            hint=f"raise --time-budget to {one / C.TUNE_STAGE1_SHARE:.3g} s or more (0: no limit)",
        )


class Budget:
    """The search's time budget (0: none), from the search's start. Asked before a candidate's
    first round (``admit``): the candidate runs only where the time left within the stage's
    limit covers its rounds and the later rounds of those admitted before it, each round's cost
    estimated as the mean of the rounds run so far (before any: the rules' warm-up and time
    cap, a measurement's own bound). A candidate it cannot cover is skipped, and listed."""

    def __init__(self, seconds: float, rules: MeasureRules, clock=time.monotonic) -> None:
        self.seconds, self.rules, self.clock = seconds, rules, clock
        self.start = clock()
        self.limit = seconds
        self.rounds = rules.repeat  # each candidate's rounds in this stage
        self.done = 0  # candidate-rounds run in the stages before this one
        self.admitted = 0  # candidates admitted in this stage (each has run its first round)
        self.skipped: list[Case] = []  # what the search left out
        self._listing = self.skipped  # where this stage's skips are listed

    def stage(self, share: float, rounds: int | None = None, skipped: list | None = None) -> None:
        """A new stage, which may use the budget up to ``share`` of it from the start, each
        candidate ``rounds`` rounds (default: the rules' --repeat); its skips listed in
        ``skipped`` (default: the search's)."""
        self.done += self.admitted * self.rounds
        self.admitted, self.limit = 0, self.seconds * share
        self.rounds = rounds or self.rules.repeat
        self._listing = self.skipped if skipped is None else skipped

    def estimate(self) -> float:
        """Seconds one candidate-round is expected to take."""
        ran = self.done + self.admitted
        if ran == 0:
            return self.rules.warmup_seconds + self.rules.max_seconds
        return (self.clock() - self.start) / ran

    def admit(self, case: Case) -> str | None:
        """None where ``case`` fits in the time left; else why it is skipped."""
        if self.seconds <= 0:
            return None
        rounds = self.rounds
        cost = self.estimate() * (self.admitted * (rounds - 1) + rounds)
        left = self.limit - (self.clock() - self.start)
        if cost > left:
            self._listing.append(case)
            return (
                f"skipped: the time budget ({self.seconds:g} s) has {max(left, 0):.1f} s left "
                f"for this stage, about {cost:.1f} s needed"
            )
        self.admitted += 1
        return None

    def summary(self, skipped: list[Case] | None = None, what: str = "candidate") -> str | None:
        """'skipped 6 candidates (time budget 600 s): A, B, ...' (of ``skipped``, default the
        search's), or None."""
        skipped = self.skipped if skipped is None else skipped
        if not skipped:
            return None
        count, labels = len(skipped), ", ".join(c.label for c in skipped)
        what = f"{count} {what}{'s' * (count != 1)}"
        return f"skipped {what} (time budget {self.seconds:g} s): {labels}"


class StagedSearch:
    """tune's search (module docstring), called as bench/run.py's ``run_matrix`` is. After the
    call: ``stages`` (each stage's candidates, in order), ``budget`` (what it skipped),
    ``confirmed`` (the cases the confirm stage measured: their rows are its rounds; ``earlier``
    their figures before it),
    ``constraint`` (as applied: the top-1 floor dropped where fidelity is uninformative,
    ``relaxed``), ``ceilings`` (the run's, for the % of the INT8 peak)."""

    def __init__(
        self,
        constraint,
        *,
        time_budget: float = C.TUNE_TIME_BUDGET_S,
        requests_given: bool = False,
        direct: bool = True,
        direct_batches: tuple[int, ...] = C.TUNE_DIRECT_BATCHES,
    ) -> None:
        self.constraint, self.time_budget = constraint, time_budget
        self.requests_given = requests_given  # --streams: those alone, in both stages
        self.direct, self.direct_batches = direct, direct_batches
        self.stages: dict[str, list[Case]] = {}
        self.budget: Budget | None = None
        self.ceilings = None
        self.relaxed = False
        self.runs: dict[Case, CaseRun] = {}  # each candidate's run, prepared once
        self.confirmed: list[Case] = []
        self.earlier: dict[Case, float] = {}  # the finalists' images/s before the confirm stage
        self.unconfirmed: list[Case] = []  # finalists the confirm stage's budget left out
        self.confirm_rounds = C.TUNE_CONFIRM_ROUNDS
        self._optimal: OptimalRequests | None = None

    def __call__(
        self,
        model: Path,
        config: BenchConfig,
        work_dir: Path,
        probe: FidelityProbe,
        ceilings,
        *,
        seed: int = C.DEFAULT_SEED,
        direct: bool = True,
        progress=None,
        served=None,
        inputs=None,
    ) -> BenchResult:
        self.ceilings, self.budget = ceilings, Budget(self.time_budget, config.rules)
        self._optimal = OptimalRequests(model)
        if probe.max_top1_drop is None:  # untrained weights or synthetic images
            self.constraint, self.relaxed = replace(self.constraint, min_top1_agreement=0.0), True
        coarse, result = self.coarse(model, config)
        sizes = sorted({*config.matrix.batches, *(c.batch for c in coarse)})
        batches = timed_batches(sizes, probe.images.shape[1:], seed, inputs)

        def run(name: str, runs: list[CaseRun], rounds: int | None = None) -> BenchResult:
            self.stages[name] = [r.case for r in runs]
            self.runs |= {r.case: r for r in runs}
            rules = replace(config.rules, repeat=rounds or config.rules.repeat)
            found = run_cases(
                runs,
                replace(config, rules=rules),
                probe,
                ceilings,
                batches,
                seed=seed,
                progress=progress,
                admit=self.budget.admit,
            )
            result.interrupted = found.interrupted
            return found

        def add(found: BenchResult) -> None:
            result.rows += found.rows
            result.samples += found.samples
            result.not_measured += found.not_measured

        self.budget.stage(C.TUNE_STAGE1_SHARE)
        add(run("stage 1", [case_run(c, model, work_dir) for c in coarse]))
        if not result.interrupted:
            self.budget.stage(C.TUNE_STAGE2_SHARE)
            cases = self.refinements(result.rows)
            add(run("stage 2", [case_run(c, model, work_dir) for c in cases]))
        if not result.interrupted:
            self.confirm_rounds = max(C.TUNE_CONFIRM_ROUNDS, config.rules.repeat)
            self.budget.stage(1.0, self.confirm_rounds, skipped=self.unconfirmed)
            cases = finalists(result.rows, lambda r: self.constraint.why_not(r) is None)
            runs = [_again(self.runs[c]) for c in cases]
            self._replace(result, run("confirm", runs, self.confirm_rounds))
        return result

    def _replace(self, result: BenchResult, found: BenchResult) -> None:
        """The confirm stage's rows and raw samples in place of the earlier ones of the same
        configurations (one row each; its rounds are the confirm stage's)."""
        again = {r.case: r for r in found.rows}
        self.confirmed = list(again)
        self.earlier = {r.case: r.images_per_s for r in result.rows if r.case in again}
        result.rows = [again.get(r.case, r) for r in result.rows]
        result.samples = [s for s in result.samples if s.case not in again] + found.samples

    def coarse(self, model: Path, config: BenchConfig) -> tuple[list[Case], BenchResult]:
        """Stage 1's candidates, batch by batch (the tool's engines, then the runtimes used
        directly), and a result holding what the matrix leaves out."""
        from alexnet_deploy.bench.matrix import refused_cases

        cases, left_out = refused_cases(model, config, list(config.matrix.backends))
        ran = set(cases)
        # each engine compiled for its own batch, where its runtime can (else its range)
        cases = [c for c in cases if c.static or c.but(static=True) not in ran]
        cases = [c if c.streams else c.but(streams=self._optimal(c)) for c in cases]
        if self.direct:
            names = [f"{b}-direct" for b in config.matrix.backends]
            cases += documented_cases(
                model, names, config.matrix, self.direct_batches, self._optimal
            )
        return sorted(cases, key=lambda c: c.batch), BenchResult(not_measured=left_out)

    def refinements(self, rows: list[BenchRow]) -> list[Case]:
        """Stage 2: each of the C.TUNE_REFINE fastest engine rows meeting the constraint with
        one setting changed (static or the dynamic range, requests, bf16 float parts)."""
        from alexnet_deploy.bench.matrix import supported
        from alexnet_deploy.cpu_isa import this_cpu
        from alexnet_deploy.engines.registry import DIRECT_BACKENDS

        best = sorted(
            (
                r
                for r in rows
                if r.case.backend not in DIRECT_BACKENDS and self.constraint.why_not(r) is None
            ),
            key=lambda r: r.images_per_s,
            reverse=True,
        )[: C.TUNE_REFINE]
        measured, found = {r.case for r in rows}, []
        bf16 = this_cpu().bf16_native
        for case in (r.case for r in best):
            variants = [case.but(static=not case.static)]
            if not self.requests_given:
                variants += [case.but(streams=n) for n in C.TUNE_REQUESTS]
            if bf16 and case.precision == "int8" and case.float_precision is None:
                variants.append(case.but(float_precision="bf16"))
            found += [
                v for v in variants if v not in measured and v not in found and supported(v) is None
            ]
        return found

    def shape(self, case: Case) -> str:
        """'static', or the range its engine was compiled for ('dynamic 1..64')."""
        if case.static:
            return "static"
        run = self.runs.get(case)
        if run is None or run.prepared is None:
            return "dynamic"
        return f"dynamic 1..{run.max_batch}"

    def record(self) -> dict:
        """What tuned.json and the terminal say of the search itself."""
        budget = self.budget
        return {
            "time_budget_s": self.time_budget,
            "stages": {name: [c.label for c in cases] for name, cases in self.stages.items()},
            "skipped": [] if budget is None else [c.label for c in budget.skipped],
            "skipped_text": None if budget is None else budget.summary(),
            "confirm_rounds": self.confirm_rounds,
            # what stage 1 or 2 measured of each finalist (its row is now the confirm stage's)
            "earlier_images_per_s": {c.label: v for c, v in self.earlier.items()},
            "unconfirmed": [c.label for c in self.unconfirmed],
            "unconfirmed_text": self.unconfirmed_text(),
        }

    def unconfirmed_text(self) -> str | None:
        """'confirm stage: skipped 2 finalists (time budget 60 s): A, B; ...', or None."""
        said = None if self.budget is None else self.budget.summary(self.unconfirmed, "finalist")
        return said and f"confirm stage: {said}; their rows are their earlier stage's"


def _again(run: CaseRun) -> CaseRun:
    """A prepared candidate measured afresh: its engine and fidelity kept, no rounds yet."""
    fresh = copy.copy(run)
    fresh.measurements = []
    return fresh
