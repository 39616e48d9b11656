"""The gate's thresholds: the default set per metric, the wider one for two separate runs
without a measured noise, and ``--threshold`` parsed into them (values and why:
constants.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError


@dataclass(frozen=True)
class Thresholds:
    values: dict = field(default_factory=lambda: dict(C.GATE_THRESHOLDS))  # one default set
    top1_budget_points: float = C.GATE_TOP1_BUDGET_POINTS
    explicit: frozenset = frozenset()  # the metrics whose threshold the user set

    def for_separate_runs(self) -> Thresholds:
        """A history of one run without a measured noise: the defaults the user did not
        override become those measured between separate runs (C.GATE_UNPAIRED_THRESHOLDS),
        never the paired setting's."""
        values = {
            m: v if m in self.explicit else C.GATE_UNPAIRED_THRESHOLDS[m]
            for m, v in self.values.items()
        }
        return Thresholds(values, self.top1_budget_points, self.explicit)

    @classmethod
    def parse(cls, specs: list[str], budget: float = C.GATE_TOP1_BUDGET_POINTS) -> Thresholds:
        """``["0.15"]`` sets every speed metric; ``["p99=0.2"]`` one of them; both: p99 takes
        its own, whatever the order. One set twice (two bare fractions, a metric named twice)
        is refused: one of the two would be silently dropped."""
        values = dict(C.GATE_THRESHOLDS)
        explicit: set[str] = set()
        named = [spec.rpartition("=")[0] for spec in specs]
        twice = sorted({n or "every metric" for n in named if named.count(n) > 1})
        if twice:
            raise UsageError(
                f"--threshold sets {', '.join(twice)} twice", hint="give each threshold once"
            )
        for spec in sorted(specs, key=lambda s: "=" in s):  # the bare fraction first
            name, _, number = spec.rpartition("=")
            try:
                value = float(number)
            except ValueError:
                raise UsageError(
                    f"--threshold {spec!r}: expected a fraction like 0.1 or p99=0.2"
                ) from None
            if not 0 < value < 10:
                raise UsageError(f"--threshold {spec!r}: must be a positive fraction (0.1 = 10%)")
            if not name:
                values = dict.fromkeys(values, value)
                explicit |= set(values)
            elif name in values:
                values[name] = value
                explicit.add(name)
            else:
                raise UsageError(
                    f"--threshold {spec!r}: unknown metric {name!r}", hint="p50, p99 or throughput"
                )
        if budget < 0:
            raise UsageError(f"--top1-budget must be >= 0, got {budget}")
        return cls(values, budget, frozenset(explicit))
