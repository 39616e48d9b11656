"""What differs between TensorRT major versions, as data (testable without TensorRT).

TensorRT 10.0 removed ``build_engine``, ``max_workspace_size``, ``max_batch_size``, binding
indices and ``execute_async_v2``; 10.1 deprecated the INT8 calibrators; 10.12 deprecated
``BuilderFlag.FP16/INT8`` in favour of strongly typed networks; 11 removed them together with
``EXPLICIT_BATCH`` and ``platform_has_fast_fp16``. Every network here is strongly typed:
precision comes from the ONNX (FP16 tensors, Q/DQ nodes), never from builder flags, except the
labelled ``legacy-int8`` path on TensorRT 10.
"""

from __future__ import annotations

from dataclasses import dataclass

from alexnet_deploy.errors import AlexnetDeployError, UsageError

SUPPORTED_MAJORS = (10, 11)


@dataclass(frozen=True)
class TensorRTApi:
    major: int
    strongly_typed: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists
    explicit_batch_flag: bool  # EXPLICIT_BATCH still exists (10: deprecated no-op, 11: gone)
    precision_flags: bool  # BuilderFlag.FP16/INT8 exist (10: yes, deprecated in 10.12; 11: no)
    calibrators: bool  # IInt8EntropyCalibrator2 and friends (10: deprecated; 11: removed)

    @property
    def legacy_int8(self) -> bool:
        return self.precision_flags and self.calibrators


def api_for(version: str) -> TensorRTApi:
    """The API surface of TensorRT ``version`` (e.g. '10.16.0.72', '11.4.0')."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise AlexnetDeployError(f"unreadable TensorRT version {version!r}") from None
    if major not in SUPPORTED_MAJORS:
        raise AlexnetDeployError(
            f"TensorRT {version} is not supported (supported majors: {SUPPORTED_MAJORS})",
            hint="install TensorRT 10.x or 11.x",
        )
    return TensorRTApi(
        major=major,
        strongly_typed=True,
        explicit_batch_flag=major < 11,
        precision_flags=major < 11,
        calibrators=major < 11,
    )


def api_from_module(trt) -> TensorRTApi:
    """Same as :func:`api_for`, but checked against what the module really has (``hasattr``,
    not assumptions: 11.4's BuilderFlag has no FP16/INT8, 10.16's still does)."""
    declared = api_for(trt.__version__)
    return TensorRTApi(
        major=declared.major,
        strongly_typed=hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"),
        explicit_batch_flag=hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"),
        precision_flags=hasattr(trt.BuilderFlag, "INT8") and hasattr(trt.BuilderFlag, "FP16"),
        calibrators=hasattr(trt, "IInt8EntropyCalibrator2"),
    )


@dataclass(frozen=True)
class Profile:
    """An optimization profile on the batch axis: ``--batch min:opt:max``."""

    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, text: str) -> Profile:
        parts = text.split(":")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 3:
            raise UsageError(
                f"--batch {text!r} is not MIN:OPT:MAX", hint="for example --batch 1:8:64"
            )
        low, opt, high = values
        if low < 1:
            raise UsageError(f"--batch {text}: min must be at least 1")
        if low > opt:
            raise UsageError(f"--batch {text}: min {low} is greater than opt {opt}")
        if opt > high:
            raise UsageError(f"--batch {text}: opt {opt} is greater than max {high}")
        return cls(low, opt, high)

    def shapes(self, image_shape) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return tuple((batch, *image_shape) for batch in (self.min, self.opt, self.max))  # type: ignore[return-value]

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


def default_profile(options) -> Profile:
    """The batch profile of a build (``BuildOptions``): a static batch B as B:B:B (TensorRT
    plans every kernel for that one shape), --batch MIN:OPT:MAX, else 1, an eighth of the max
    batch, and the max batch. Native engines and the TensorRT provider."""
    if options.static_batch is not None:
        return Profile(options.static_batch, options.static_batch, options.static_batch)
    if options.batch_profile:
        return Profile.parse(options.batch_profile)
    return Profile(1, max(1, options.max_batch // 8), options.max_batch)


@dataclass(frozen=True)
class ParserError:
    """One ONNX-parser error, as TensorRT reports it (code, description, node)."""

    code: str
    description: str
    node_index: int
    node_name: str = ""
    node_operator: str = ""

    def format(self) -> str:
        where = f"node {self.node_index}" if self.node_index >= 0 else "graph"
        if self.node_name:
            where += f" {self.node_name!r}"
        if self.node_operator:
            where += f" ({self.node_operator})"
        return f"{where}: {self.description} [{self.code}]"


def format_parser_errors(errors: list[ParserError], path: str) -> str:
    lines = [f"TensorRT's ONNX parser rejected {path} ({len(errors)} error(s)):"]
    lines += [f"  - {e.format()}" for e in errors]
    return "\n".join(lines)


def error_code_name(code) -> str:
    """An ``ErrorCode`` enum value by its name. In the real bindings str() reads
    'ErrorCode.UNSUPPORTED_NODE' in 10.x and 11.x alike, while ``.name`` is a method returning
    that same text in 10.13 and a property in 11.4 (tests/engines/test_tensorrt_bindings.py)."""
    return str(code).rsplit(".", 1)[-1]


def parser_errors(parser) -> list[ParserError]:
    """Read every error off a ``trt.OnnxParser`` (node name/operator exist from 10.x on)."""
    errors = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        errors.append(
            ParserError(
                code=error_code_name(err.code()),
                description=err.desc(),
                node_index=err.node(),
                node_name=err.node_name() if hasattr(err, "node_name") else "",
                node_operator=err.node_operator() if hasattr(err, "node_operator") else "",
            )
        )
    return errors
