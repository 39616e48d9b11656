"""The JSON file beside every engine: what it is, built from what, for which machine and
runtime. Engines are not portable: loading one whose sidecar names another runtime version or
machine, or whose bytes no longer match, is refused with the command that rebuilds it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import sha256_file, write_json_atomic

SCHEMA = "alexnet-deploy/engine/1"


def machine_fingerprint() -> dict:
    """What makes a compiled engine machine-specific on the CPU: model and ISA features."""
    from alexnet_deploy.sysinfo import cpu_info

    cpu = cpu_info()
    return {"cpu": cpu["model"], "features": cpu["features"]}


@dataclass
class Sidecar:
    backend: str
    runtime: str
    runtime_version: str
    precision: str
    artifact: str
    artifact_sha256: str
    engine_file: str  # relative to the sidecar's directory
    engine_sha256: str
    input_name: str
    image_shape: list[int]
    num_classes: int
    options: dict
    machine: dict = field(default_factory=machine_fingerprint)
    build_seconds: float = 0.0
    details: dict = field(default_factory=dict)  # backend-specific facts (providers, hints, ...)
    int8_isa: str | None = None  # the CPU class the artifact's INT8 CPU form was made for
    cpu_isa: str | None = None  # the CPU class of the machine that built the engine
    precision_plan: dict | None = None  # layer -> precision, for a plan file (alexnet-deploy plan)
    # the input shape the engine was compiled for: [32, 3, 224, 224] for a static batch,
    # [null, 3, 224, 224] for a 1..max_batch range (None: a sidecar from before it was recorded)
    input_shape: list | None = None
    float_precision: str | None = None  # an INT8 engine's float parts run in this ("bf16")
    schema: str = SCHEMA

    @classmethod
    def describe(
        cls,
        *,
        backend: str,
        runtime: str,
        runtime_version: str,
        options,
        artifact: Path,
        info,
        engine_path: Path,
        build_seconds: float,
        details: dict,
        relative: bool = True,
    ) -> Sidecar:
        """The sidecar of an engine just built from ``artifact`` (``info``: its ArtifactInfo).
        ``relative``: the engine file sits beside the sidecar (else its absolute path is kept)."""
        from alexnet_deploy.calib.int8 import artifact_isa
        from alexnet_deploy.cpu_isa import this_cpu

        artifact_sha = sha256_file(artifact)
        same = Path(engine_path).resolve() == Path(artifact).resolve()
        return cls(
            backend=backend,
            runtime=runtime,
            runtime_version=runtime_version,
            precision=options.precision,
            artifact=str(artifact),
            artifact_sha256=artifact_sha,
            engine_file=engine_path.name if relative else str(Path(engine_path).resolve()),
            engine_sha256=artifact_sha if same else sha256_file(engine_path),
            input_name=info.input.name,
            image_shape=list(info.image_shape),
            num_classes=int(info.outputs[0].dims[-1]),
            options=options.as_dict(),
            build_seconds=build_seconds,
            details=details,
            int8_isa=artifact_isa(info.metadata),
            cpu_isa=this_cpu().name,
            precision_plan=json.loads(info.metadata["precision_plan"])
            if "precision_plan" in info.metadata
            else None,
            input_shape=[options.static_batch or info.fixed_batch, *info.image_shape],
            float_precision=options.float_precision,
        )

    def write(self, path: Path) -> Path:
        return write_json_atomic(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> Sidecar:
        if not path.is_file():
            raise AlexnetDeployError(
                f"engine sidecar {path} not found",
                hint="engines are built by 'alexnet-deploy build'; rebuild it",
            )
        try:
            data = json.loads(path.read_text())
            if data.get("schema") != SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA!r}")
            return cls(**data)
        except (ValueError, TypeError) as err:
            raise AlexnetDeployError(
                f"engine sidecar {path} is unreadable ({err})", hint="rebuild the engine"
            ) from None

    def check_compatible(
        self, runtime_version: str, engine_path: Path, machine_specific: bool
    ) -> None:
        rebuild = "rebuild it here with 'alexnet-deploy build' (engines are not portable)"
        if self.runtime_version != runtime_version:
            raise AlexnetDeployError(
                f"engine {engine_path} was built with {self.runtime} {self.runtime_version}, "
                f"this machine has {runtime_version}",
                hint=rebuild,
            )
        if machine_specific and self.machine != machine_fingerprint():
            raise AlexnetDeployError(
                f"engine {engine_path} was built on another machine ({self.machine.get('cpu')})",
                hint=rebuild,
            )
        if not engine_path.is_file():
            raise AlexnetDeployError(f"engine file {engine_path} is missing", hint=rebuild)
        if sha256_file(engine_path) != self.engine_sha256:
            raise AlexnetDeployError(
                f"engine file {engine_path} is corrupt or truncated (sha256 differs from its sidecar)",
                hint=rebuild,
            )
