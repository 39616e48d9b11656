"""What to measure: the matrix and the measurement rules, from flags or a TOML file.

Unknown keys are errors that name them (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError, UsageError

MODES = ("latency", "throughput", "server")


@dataclass(frozen=True)
class MeasureRules:
    warmup_iterations: int = C.BENCH_WARMUP_ITERATIONS
    warmup_seconds: float = C.BENCH_WARMUP_SECONDS
    min_iterations: int = C.BENCH_MIN_ITERATIONS
    min_seconds: float = C.BENCH_MIN_SECONDS
    max_seconds: float = C.BENCH_MAX_SECONDS
    stability: float = C.BENCH_STABILITY  # median CI half-width, relative
    percentiles: tuple[float, ...] = C.BENCH_PERCENTILES
    repeat: int = 1

    def __post_init__(self) -> None:
        for name in ("warmup_seconds", "min_seconds", "max_seconds", "stability"):
            if not math.isfinite(getattr(self, name)):
                raise UsageError(
                    f"{name.replace('_', '-')} must be a finite number, got {getattr(self, name)}"
                )
            if getattr(self, name) <= 0 and not (
                name == "warmup_seconds" and getattr(self, name) == 0
            ):
                raise UsageError(f"{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if self.warmup_iterations < 0:
            raise UsageError(f"warmup-iterations must be >= 0, got {self.warmup_iterations}")
        if self.min_iterations < 1:
            raise UsageError(f"min-iterations must be >= 1, got {self.min_iterations}")
        if self.max_seconds < self.min_seconds:
            raise UsageError(
                f"max-seconds {self.max_seconds} is below min-seconds {self.min_seconds}"
            )
        if self.repeat < 1:
            raise UsageError(f"repeat must be >= 1, got {self.repeat}")
        if not self.percentiles or any(not 0 < p < 100 for p in self.percentiles):
            raise UsageError(f"percentiles must be in (0, 100), got {list(self.percentiles)}")


@dataclass(frozen=True)
class Matrix:
    backends: tuple[str, ...] = ()  # empty: every available backend
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    batches: tuple[int, ...] = C.BENCH_BATCHES
    modes: tuple[str, ...] = ("latency",)
    threads: tuple[int | None, ...] = (None,)
    streams: tuple[int | None, ...] = (None,)  # throughput concurrency / OpenVINO streams
    quantizers: tuple[str, ...] = ("qdq",)  # INT8 routes (qdq: this tool's, nncf: NNCF's)
    # each case's engine compiled for its own batch (True) or for a 1..max_batch range
    statics: tuple[bool, ...] = (False,)
    # an INT8 engine's float parts: None, the file's FP32; "bf16" (engines/options.py)
    float_precisions: tuple[str | None, ...] = (None,)
    server_latency_bound_ms: float = C.BENCH_SERVER_BOUND_MS

    def __post_init__(self) -> None:
        from alexnet_deploy.engines.options import FLOAT_PRECISIONS, PRECISIONS, QUANTIZERS
        from alexnet_deploy.engines.registry import BACKEND_NAMES, DIRECT_BACKENDS, GPU_BACKENDS

        known = (*BACKEND_NAMES, *DIRECT_BACKENDS)
        for backend in self.backends:
            if backend not in known:
                raise UsageError(
                    f"unknown backend {backend!r}", hint=f"choose from: {', '.join(known)}"
                )
        for precision in self.precisions:
            if precision not in PRECISIONS:
                raise UsageError(
                    f"unknown precision {precision!r}", hint=f"choose from: {', '.join(PRECISIONS)}"
                )
        on_cpu = not self.backends or not set(self.backends) <= set(GPU_BACKENDS)
        if "bf16" in self.precisions and on_cpu:
            # refused before any work where this CPU would only emulate it (cpu_isa)
            from alexnet_deploy.cpu_isa import require_native_bf16

            require_native_bf16()
        for quantizer in self.quantizers:
            if quantizer not in QUANTIZERS:
                raise UsageError(
                    f"unknown quantizer {quantizer!r}", hint=f"choose from: {', '.join(QUANTIZERS)}"
                )
        if not self.quantizers or len(set(self.quantizers)) != len(self.quantizers):
            raise UsageError(
                f"quantizers must be a non-empty list without duplicates, got {list(self.quantizers)}"
            )
        _one_each("statics", self.statics, (False, True))
        _one_each("float_precisions", self.float_precisions, (None, *FLOAT_PRECISIONS))
        if any(self.float_precisions) and on_cpu:  # bf16 float parts: native BF16 only
            from alexnet_deploy.cpu_isa import require_native_bf16

            require_native_bf16()
        for mode in self.modes:
            if mode not in MODES:
                raise UsageError(f"unknown mode {mode!r}", hint=f"choose from: {', '.join(MODES)}")
        _positive_unique("batch", self.batches)
        _positive_unique("threads", [t for t in self.threads if t is not None])
        _positive_unique("streams", [s for s in self.streams if s is not None])
        if not math.isfinite(self.server_latency_bound_ms) or self.server_latency_bound_ms <= 0:
            raise UsageError(
                f"server latency bound must be > 0 ms, got {self.server_latency_bound_ms}"
            )


def _one_each(name: str, values: tuple, allowed: tuple) -> None:
    """A non-empty list of ``allowed`` values, none twice (None shown as the file's "fp32")."""
    shown = [("fp32" if v is None else v) for v in allowed]
    if not values or any(v not in allowed for v in values) or len(set(values)) != len(values):
        raise UsageError(
            f"{name} must be a non-empty list of {', '.join(map(str, shown))} without "
            f"duplicates, got {[('fp32' if v is None else v) for v in values]}"
        )


def _positive_unique(name: str, values) -> None:
    values = list(values)
    if name == "batch" and not values:
        raise UsageError("the batch list is empty")
    bad = [v for v in values if v < 1]
    if bad:
        raise UsageError(f"{name} values must be >= 1, got {bad}")
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise UsageError(f"{name} list has duplicates: {dupes}")


@dataclass(frozen=True)
class BenchConfig:
    matrix: Matrix = field(default_factory=Matrix)
    rules: MeasureRules = field(default_factory=MeasureRules)

    def as_dict(self) -> dict:
        return {"matrix": asdict(self.matrix), "rules": asdict(self.rules)}


def _check_keys(table: dict, allowed: set[str], where: str, path: Path) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) in {where}: {', '.join(unknown)}",
            hint=f"allowed in {where}: {', '.join(sorted(allowed))}",
        )


# What each TOML key holds: a list of one kind, or one number.
_LISTS = {
    **dict.fromkeys(("backends", "precisions", "modes", "quantizers", "float_precisions"), str),
    **dict.fromkeys(("batches", "threads", "streams"), int),
    "percentiles": float,
    "statics": bool,
}
_EXAMPLES = {str: "['ort']", bool: "[false, true]"}
# a TOML list holds no None: float_precisions names the file's own float "fp32"
_TOML_NONE = {"float_precisions": "fp32"}
_NUMBERS = {
    **dict.fromkeys(("warmup_iterations", "min_iterations", "repeat"), int),
    **dict.fromkeys(
        ("warmup_seconds", "min_seconds", "max_seconds", "stability", "server_latency_bound_ms"),
        float,
    ),
}


def _is(value, kind) -> bool:
    if isinstance(value, bool) or kind is bool:
        return isinstance(value, bool) and kind is bool
    return isinstance(value, int) if kind is int else isinstance(value, (kind, int))


def _check_types(table: dict, where: str, path: Path) -> None:
    names = {str: "strings", int: "whole numbers", float: "numbers", bool: "true or false"}
    for key, value in table.items():
        if key in _LISTS:
            kind = _LISTS[key]
            if not isinstance(value, list) or not all(_is(v, kind) for v in value):
                raise UsageError(
                    f"{path}: {where} {key} = {value!r}: expected a list of {names[kind]}",
                    hint=f"e.g. {key} = {_EXAMPLES.get(kind, '[1, 32]')}",
                )
        elif key in _NUMBERS and not _is(value, _NUMBERS[key]):
            raise UsageError(
                f"{path}: {where} {key} = {value!r}: expected {'a whole number' if _NUMBERS[key] is int else 'a number'}"
            )


def config_from_toml(path: Path) -> BenchConfig:
    """[matrix] and [rules] tables; lists where the fields are tuples. Every value's type is
    checked with its key named, before any field is built from it."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"config file {path} is a directory", hint="pass a .toml file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"config file {path} not found") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text file (TOML expected)") from None
    except OSError as err:
        raise UsageError(f"config file {path} cannot be read: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path} is not valid TOML: {err}") from None
    _check_keys(data, {"matrix", "rules"}, "the top level", path)
    matrix_keys = {f.name for f in fields(Matrix)}
    rules_keys = {f.name for f in fields(MeasureRules)}
    matrix, rules = data.get("matrix", {}), data.get("rules", {})
    for name, table in (("matrix", matrix), ("rules", rules)):
        if not isinstance(table, dict):
            raise UsageError(f"{path}: {name} = {table!r}: expected a table [{name}]")
    _check_keys(matrix, matrix_keys, "[matrix]", path)
    _check_keys(rules, rules_keys, "[rules]", path)
    _check_types(matrix, "[matrix]", path)
    _check_types(rules, "[rules]", path)

    def tuples(table: dict) -> dict:
        return {
            k: tuple(None if x == _TOML_NONE.get(k) else x for x in v) if isinstance(v, list) else v
            for k, v in table.items()
        }

    try:
        return BenchConfig(Matrix(**tuples(matrix)), MeasureRules(**tuples(rules)))
    except TypeError as err:
        raise AlexnetDeployError(f"{path}: {err}") from None


def config_from_sources(
    config_file: Path | None, matrix_flags: dict | None = None, rule_flags: dict | None = None
) -> BenchConfig:
    """The TOML file's configuration (or the defaults), with every flag that was given
    (not None, not empty) over it; a list flag is a tuple of its values (``batches=(1, 32)``)."""
    base = config_from_toml(config_file) if config_file else BenchConfig()
    matrix_over = {k: v for k, v in (matrix_flags or {}).items() if v is not None and v != ()}
    rules_over = {k: v for k, v in (rule_flags or {}).items() if v is not None}
    return BenchConfig(
        replace(base.matrix, **matrix_over),
        MeasureRules(**{**base.rules.__dict__, **rules_over}),
    )
