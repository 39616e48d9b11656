"""The one shape every backend has (after Polygraphy's loaders and runners).

* ``Backend.capability()`` says "available" or why not, without importing anything heavy
  unless the package is present.
* ``Backend.build(artifact, options, out_dir)`` turns a precision artifact into an engine on
  disk where the runtime has a compiled form, plus a sidecar saying what it is.
* ``Backend.runner(engine)`` is lazy: the runner allocates on ``__enter__`` and frees on
  ``__exit__``; ``infer(batch)`` checks its input once, here, and calls ``_infer_impl``.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy.engines.computed import Computed
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.sidecar import Sidecar
from alexnet_deploy.errors import AlexnetDeployError, UsageError

# How each runtime says a model uses an operator it lacks (the operator is group 1)
_MISSING_OPERATOR = (
    re.compile(r"No Op registered for (\S+) with domain_version"),  # ONNX Runtime
    re.compile(r"Fatal error: (\S+?)\(-?\d+\) is not a registered function/op"),  # ORT
    re.compile(r"Could not find an implementation for (\S+?)\(\d+\)"),  # ORT, no kernel
    re.compile(r"No conversion rule found for operations?: ([^\n]+)"),  # OpenVINO
    re.compile(r"does not support the following ONNX operations: ([^\n]+)"),  # OpenVINO
)


def runtime_error(runtime: str, verb: str, path, err: Exception) -> AlexnetDeployError:
    """A runtime's failure to read or build ``path`` as one line: the operator and the
    runtime where it lacks one, else the first informative line of its message."""
    text = str(err)
    for pattern in _MISSING_OPERATOR:
        found = pattern.search(text)
        if found:
            return AlexnetDeployError(
                f"{runtime} has no implementation of operator {found.group(1).strip()}, which "
                f"{path} uses",
                hint="run the model on another backend (--backend), or export it without that "
                "operator (another opset, or the operation written with standard ones)",
            )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check "))]
    return AlexnetDeployError(
        f"{runtime} cannot {verb} {path}: {(useful or lines or [type(err).__name__])[0]}"
    )


def static_batch_error(engine: Path, static_batch: int, got: int, hint: str = "") -> UsageError:
    """The one refusal of a batch a static engine was not compiled for (``hint``: what the
    caller feeds, where it cannot send that batch)."""
    return UsageError(
        f"engine {engine} was compiled for a static batch of {static_batch}; got {got}",
        hint=hint
        or f"send batches of {static_batch}, or build without --static-batch (a dynamic 1..N "
        "range)",
    )


@dataclass(frozen=True)
class Capability:
    available: bool
    reason: str = "available"
    version: str | None = None
    extra: str | None = None  # the pip extra that installs it

    def require(self, backend: str) -> None:
        if not self.available:
            hint = f"pip install 'alexnet-deploy[{self.extra}]'" if self.extra else None
            raise AlexnetDeployError(
                f"backend {backend!r} is unavailable: {self.reason}", hint=hint
            )


@dataclass
class Engine:
    """A built engine: where its files are and what its sidecar says."""

    backend: str
    path: Path  # the engine file (or the artifact itself for runtimes that compile at load)
    sidecar: Sidecar
    sidecar_path: Path


class Backend(abc.ABC):
    name: str
    precisions: tuple[str, ...]
    refuses: dict[str, str] = {}  # precision -> why this backend does not run it (one line)
    knobs: tuple[str, ...] = ()  # the BuildOptions.RUNTIME_KNOBS this backend honours
    quantizers: tuple[str, ...] = ("qdq",)  # INT8 routes whose artifacts it can run
    # why it cannot compile an engine for one static batch (None: it can: --static-batch)
    no_static_batch: str | None = None
    # what it can run an INT8 engine's float parts in (BuildOptions.float_precision)
    float_precisions: tuple[str, ...] = ()

    @abc.abstractmethod
    def capability(self) -> Capability: ...

    @abc.abstractmethod
    def build(self, artifact: Path, options: BuildOptions, out_dir: Path) -> Engine: ...

    @abc.abstractmethod
    def runner(self, engine: Engine) -> Runner: ...


class Runner(abc.ABC):
    """Runs one engine. ``with backend.runner(engine) as r: r.infer(batch)``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.active = False
        side = engine.sidecar
        self.input_name: str = side.input_name
        self.image_shape: tuple[int, ...] = tuple(side.image_shape)
        self.max_batch: int = side.options["max_batch"]
        # compiled for exactly this batch (None: any batch in 1..max_batch)
        self.static_batch: int | None = side.options.get("static_batch")

    def __enter__(self) -> Runner:
        self.activate()
        self.active = True
        return self

    def __exit__(self, *exc) -> None:
        self.active = False
        self.deactivate()

    @abc.abstractmethod
    def activate(self) -> None: ...

    @abc.abstractmethod
    def deactivate(self) -> None: ...

    @abc.abstractmethod
    def _infer_impl(self, batch: np.ndarray) -> np.ndarray: ...

    def check_batch(self, batch: np.ndarray) -> None:
        """Validate once, for every backend: dtype, rank, image shape, batch range (a static
        engine's one batch: refused, never padded, so every timed image is a real one)."""
        if not isinstance(batch, np.ndarray) or batch.dtype != np.float32:
            got = type(batch).__name__ if not isinstance(batch, np.ndarray) else batch.dtype
            raise UsageError(f"infer takes a float32 numpy array, got {got}")
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.image_shape:
            raise UsageError(
                f"infer got shape {list(batch.shape)}, expected [N, {', '.join(map(str, self.image_shape))}]"
            )
        if self.static_batch is not None and batch.shape[0] != self.static_batch:
            raise static_batch_error(self.engine.path, self.static_batch, batch.shape[0])
        if not 1 <= batch.shape[0] <= self.max_batch:
            raise UsageError(
                f"batch {batch.shape[0]} is outside what this engine was built for (1..{self.max_batch})",
                hint="rebuild with a larger --max-batch (an engine of a model whose graph fixes "
                "its batch at 1 takes one image at a time)"
                if self.max_batch == 1
                else "rebuild with a larger --max-batch",
            )

    def computed(self) -> Computed | None:
        """What this engine computes in, read back from its runtime while active
        (engines/computed.py); None where the runtime does not say."""
        return None

    def workers(self, count: int) -> list:
        """``count`` infer callables that may run concurrently (one per thread). By default
        they share this runner (ONNX Runtime sessions and torch modules are thread-safe)."""
        return [self.infer] * count

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if not self.active:
            raise RuntimeError("runner is not active: use it as a context manager")
        self.check_batch(batch)
        return self._infer_impl(batch)
