"""Build options shared by every backend; ``None`` means the backend's default."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError

PRECISIONS = ("fp32", "fp16", "int8")
HINTS = ("latency", "throughput")


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
        if self.hint not in HINTS:
            raise UsageError(
                f"unknown hint {self.hint!r}", hint=f"choose one of: {', '.join(HINTS)}"
            )

    def as_dict(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:10]
