"""Build options shared by every backend; ``None`` means the backend's default."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError

# bf16: on a CPU, the FP32 artifact run by a runtime told to compute in bfloat16 (OpenVINO,
# PyTorch); on a GPU, the BF16 artifact (STEM.bf16.onnx, TensorRT): calib/bf16.py
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
HINTS = ("latency", "throughput")
QUANTIZERS = ("qdq", "nncf")  # INT8 route: this tool's calibrate (Q/DQ) or NNCF's quantize
# runtime settings measured in docs/tuning-experiments.md; None: the runtime's default
RUNTIME_KNOBS = ("spinning", "mem_arena", "cpu_pinning")
HARDWARE_COMPAT = ("none", "ampere+", "same-cc")  # TensorRT plans: engines/trt_portability.py
# what an INT8 engine's float parts (the layers left in float between Q/DQ) may run in instead
# of the file's FP32: OpenVINO's INFERENCE_PRECISION_HINT on the INT8 artifact, native BF16 only
FLOAT_PRECISIONS = ("bf16",)
# fields added after engines were first keyed: left out of the key at their defaults, so the
# engines built before them keep their keys (and are reused)
LATE_FIELDS = {
    "hardware_compat": "none",
    "version_compatible": False,
    "static_batch": None,
    "float_precision": None,
}


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp32"
    max_batch: int = C.DEFAULT_MAX_BATCH
    threads: int | None = None  # intra-op threads; None: the runtime's default (all cores)
    hint: str = "latency"  # OpenVINO performance hint
    streams: int | None = None  # OpenVINO streams; None: what the hint picks
    channels_last: bool = False  # torch backend
    batch_profile: str | None = None  # TensorRT MIN:OPT:MAX; None: 1:max_batch/8:max_batch
    workspace_mb: int = C.TRT_WORKSPACE_MB  # TensorRT workspace memory-pool limit
    legacy_int8: bool = False  # TensorRT 10 only: deprecated INT8 flag + calibration cache
    quantizer: str = "qdq"  # int8 only: which INT8 artifact (STEM.int8-cpu or STEM.int8-nncf)
    spinning: bool | None = None  # ONNX Runtime: intra-op threads spin while waiting for work
    mem_arena: bool | None = None  # ONNX Runtime: CPU memory arena
    cpu_pinning: bool | None = None  # OpenVINO: ENABLE_CPU_PINNING
    hardware_compat: str = "none"  # TensorRT: none, ampere+ or same-cc
    version_compatible: bool = False  # TensorRT: runs on later TensorRT of the same major
    # the engine is compiled for exactly this batch and refuses any other (None: 1..max_batch)
    static_batch: int | None = None
    float_precision: str | None = None  # int8 only: its float parts in bf16 (FLOAT_PRECISIONS)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(
                f"unknown precision {self.precision!r}",
                hint=f"choose one of: {', '.join(PRECISIONS)}",
            )
        if self.max_batch < 1:
            raise UsageError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
        if self.streams is not None and self.streams < 1:
            raise UsageError(f"--streams must be at least 1, got {self.streams}")
        if self.workspace_mb < 1:
            raise UsageError(f"--workspace-mb must be at least 1, got {self.workspace_mb}")
        if self.legacy_int8 and self.precision != "int8":
            raise UsageError("--legacy-int8 only applies to --precision int8")
        if self.quantizer not in QUANTIZERS:
            raise UsageError(
                f"unknown quantizer {self.quantizer!r}",
                hint=f"choose one of: {', '.join(QUANTIZERS)}",
            )
        if self.quantizer != "qdq" and self.precision != "int8":
            raise UsageError(f"--quantizer {self.quantizer} only applies to --precision int8")
        if self.hardware_compat not in HARDWARE_COMPAT:
            raise UsageError(
                f"unknown --hardware-compat {self.hardware_compat!r}",
                hint=f"choose one of: {', '.join(HARDWARE_COMPAT)}",
            )
        if self.hint not in HINTS:
            raise UsageError(
                f"unknown hint {self.hint!r}", hint=f"choose one of: {', '.join(HINTS)}"
            )
        self._check_late_fields()

    def _check_late_fields(self) -> None:
        if self.static_batch is not None:
            if self.static_batch < 1:
                raise UsageError(f"--static-batch must be at least 1, got {self.static_batch}")
            if self.batch_profile:
                raise UsageError(
                    f"--static-batch {self.static_batch} and --batch {self.batch_profile} both "
                    "set the engine's batch",
                    hint="a static batch is the profile N:N:N: pass one of them",
                )
            # the engine's one batch is also its largest: max_batch follows it, raised or
            # lowered, so one static engine has one key (frozen dataclass: set here)
            object.__setattr__(self, "max_batch", self.static_batch)
        if self.float_precision is not None:
            if self.float_precision not in FLOAT_PRECISIONS:
                raise UsageError(
                    f"unknown --float-precision {self.float_precision!r}",
                    hint=f"choose one of: {', '.join(FLOAT_PRECISIONS)}",
                )
            if self.precision != "int8":
                raise UsageError(
                    f"--float-precision {self.float_precision} sets an INT8 engine's float "
                    f"parts; this is --precision {self.precision}",
                    hint="for a whole model in bf16 use --precision bf16",
                )

    def as_dict(self) -> dict:
        return asdict(self)

    def knobs_set(self) -> dict[str, bool]:
        return {k: getattr(self, k) for k in RUNTIME_KNOBS if getattr(self, k) is not None}

    def portable(self) -> bool:
        return self.hardware_compat != "none" or self.version_compatible

    def key(self) -> str:
        data = {
            k: v
            for k, v in self.as_dict().items()
            if not (k in LATE_FIELDS and v == LATE_FIELDS[k])
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
