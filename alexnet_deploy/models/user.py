"""A user's own PyTorch classifier (``export --from``), found from a spec and checked.

A spec is ``path.py:callable`` (a Python file, imported under a private module name with its
folder on the import path, as ``python path.py`` would) or ``package.module:callable``
(imported as usual, the current directory on the path as ``python -m`` would). The callable is
called with no arguments and must return a ``torch.nn.Module`` whose ``forward`` takes one
image batch ``[batch, 3, H, W]`` at the card's input size and returns logits
``[batch, classes]``. Each way this fails is one user error naming the file and the cause.

Nothing of the user's runs until a command asks for it: importing alexnet_deploy never imports
the user's code. The export records where the model came from (the spec with the file's
absolute path, the file's sha256, the weights' path; for a module spec, the import-path folder
the module was found under), so the torch backend can rebuild it later from any directory, and
refuses when the file moved or changed, or another module of that name would be imported
(:func:`model_from_metadata`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.models.variants import Preprocessing, Variant

SPEC_FORMS = "path.py:callable or package.module:callable"
# the metadata keys of a --from export's origin (beside the card's keys and weights_sha256)
FROM_SPEC, FROM_FILE, FROM_FILE_SHA256 = "from_spec", "from_file", "from_file_sha256"
FROM_ROOT = "from_root"  # a module spec's import-path folder (a path spec's is the file's own)
WEIGHTS_PATH = "weights_path"
PROBE_BATCH = 2  # the forward check's batch: catches a model that folds the batch away


@dataclass(frozen=True)
class ModelSource:
    """Where a user's factory lives: a Python file or an importable module, and its name."""

    spec: str  # as given
    attr: str
    file: Path | None = None  # a path spec: the file, absolute
    module: str | None = None  # a module spec
    root: Path | None = None  # a module spec rebuilt: the folder it was imported from

    @property
    def canonical(self) -> str:
        """The spec that finds the same callable from any directory (absolute file path)."""
        return f"{self.file if self.file is not None else self.module}:{self.attr}"


def parse_spec(text: str) -> ModelSource:
    """``path.py:callable`` or ``package.module:callable`` -> :class:`ModelSource`; a file
    that is not there is refused here, before anything is imported."""
    target, colon, attr = text.rpartition(":")
    if not colon or not target or not attr.isidentifier():
        raise UsageError(
            f"--from {text!r} names no callable",
            hint=f"pass {SPEC_FORMS}, e.g. --from models.py:make_model",
        )
    if target.endswith(".py") or os.sep in target:
        file = Path(target).expanduser()
        if not file.is_file():
            raise AlexnetDeployError(
                f"--from: file {file} not found"
                + (" (it is a directory)" if file.is_dir() else ""),
                hint=f"check the path; --from takes {SPEC_FORMS}",
            )
        return ModelSource(text, attr, file=file.resolve())
    return ModelSource(text, attr, module=target)


@contextlib.contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


@contextlib.contextmanager
def _no_bytecode() -> Iterator[None]:
    """No __pycache__ written beside the user's file: their folder is only read."""
    before, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        yield
    finally:
        sys.dont_write_bytecode = before


def _where(err: BaseException, file: Path | None) -> str:
    """' (line N)' of the innermost frame in the user's file, where the traceback has one."""
    if isinstance(err, SyntaxError) and err.lineno:
        return f" (line {err.lineno})"
    frames = [
        f for f in traceback.extract_tb(err.__traceback__) if file and f.filename == str(file)
    ]
    return f" (line {frames[-1].lineno})" if frames else ""


def _failed(what: str, err: BaseException, source: ModelSource) -> AlexnetDeployError:
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    reason = f"{type(err).__name__}: {message}" if message else type(err).__name__
    return AlexnetDeployError(
        f"{what} failed{_where(err, source.file)}: {reason}",
        hint="fix the error in the user's code (rerun with --debug for the traceback)",
    )


def _import(source: ModelSource):
    """The module holding the factory; its own errors become one line naming the file."""
    if source.file is not None:
        name = f"alexnet_deploy_user_{sha256_file(source.file)[:16]}"
        spec = importlib.util.spec_from_file_location(name, source.file)
        if spec is None or spec.loader is None:
            raise AlexnetDeployError(f"--from: {source.file} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look their module up here
        try:
            with _on_path(source.file.parent), _no_bytecode():
                spec.loader.exec_module(module)
        except Exception as err:
            sys.modules.pop(name, None)
            raise _failed(f"importing {source.file}", err, source) from err
        return module
    folder = _folder(source)
    try:
        with _on_path(folder):
            if source.root is not None:
                _require_found_under(source)
            return importlib.import_module(source.module)
    except AlexnetDeployError:  # _require_found_under's, worded already
        raise
    except ModuleNotFoundError as err:
        if err.name and (source.module == err.name or source.module.startswith(err.name + ".")):
            raise AlexnetDeployError(
                f"--from: module {source.module!r} not found (from {folder} or the "
                "installed packages)",
                hint=f"install it, run from the folder that holds it, or pass {SPEC_FORMS}",
            ) from None
        raise _failed(f"importing module {source.module}", err, source) from err
    except Exception as err:
        raise _failed(f"importing module {source.module}", err, source) from err


def _folder(source: ModelSource) -> Path:
    """Where the user's code is imported from: a file's folder (as ``python path.py``), a
    rebuilt module's recorded import-path folder, else the current directory (``python -m``)."""
    if source.file is not None:
        return source.file.parent
    return source.root if source.root is not None else Path.cwd()


def import_root(module: str, file: Path) -> Path:
    """The import-path folder ``module`` was found under, from its file: the file less the
    module's dotted path (``ROOT/pkg/nets.py`` for ``pkg.nets``; ``ROOT/pkg/__init__.py`` for
    ``pkg``)."""
    depth = module.count(".") + (1 if file.name == "__init__.py" else 0)
    return Path(file).resolve().parents[depth]


def _require_found_under(source: ModelSource) -> None:
    """The module a rebuild would import is the one exported: found under its recorded root
    (not another of that name, imported already or first on the import path)."""
    found = importlib.util.find_spec(source.module)
    origin = Path(found.origin) if found is not None and found.origin else None
    if origin is None or not origin.is_file() or import_root(source.module, origin) != source.root:
        raise AlexnetDeployError(
            f"--from module {source.module!r} is imported from {origin or 'nowhere'} here, not "
            f"from under {source.root} where the model was exported from",
            hint="another module of that name comes first (installed, or imported already); "
            "export again with --from path.py:callable to name the file itself",
        )


def load_factory(source: ModelSource) -> Callable[[], object]:
    """The user's callable, checked to be callable with no arguments."""
    module = _import(source)
    where = source.file or source.module
    factory = getattr(module, source.attr, None)
    if factory is None or not callable(factory):
        public = (n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        found = sorted(public)[:8]
        raise AlexnetDeployError(
            f"--from: {where} has no callable {source.attr!r}"
            + (" (it is not callable)" if factory is not None else ""),
            hint=f"its callables: {', '.join(found)}" if found else "define it in that file",
        )
    with contextlib.suppress(TypeError, ValueError):  # builtins may have no signature
        needed = [
            p.name
            for p in inspect.signature(factory).parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if needed:
            raise AlexnetDeployError(
                f"--from: {source.spec} needs arguments ({', '.join(needed)}); it is called "
                "with none",
                hint="give every argument a default, or add a no-argument factory beside it",
            )
    return factory


def _module_from(factory: Callable[[], object], source: ModelSource):
    from torch import nn

    try:
        with _on_path(_folder(source)):
            model = factory()
    except Exception as err:
        raise _failed(f"calling {source.spec}()", err, source) from err
    if not isinstance(model, nn.Module):
        raise AlexnetDeployError(
            f"--from: {source.spec}() returned {type(model).__name__}, not a torch.nn.Module",
            hint="the callable must build and return the model (an nn.Module)",
        )
    return model.eval()


def _check_one_input(model, source: ModelSource) -> None:
    params = inspect.signature(model.forward).parameters.values()
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    needed = [p.name for p in params if p.default is p.empty and p.kind not in variadic]
    if len(needed) > 1:
        raise AlexnetDeployError(
            f"--from: the model of {source.spec} takes {len(needed)} inputs "
            f"({', '.join(needed)}); this tool exports image classifiers with one input",
            hint="wrap it in a module whose forward takes the image batch alone",
        )


def _probe(model, source: ModelSource, pre: Preprocessing) -> int:
    """Run the model once at the card's input size; return its number of classes."""
    import torch

    shape = [PROBE_BATCH, 3, pre.crop_size, pre.crop_size]
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape))
    except Exception as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        channels = re.search(r"expected input\[.*\] to have 3 channels", message)
        raise AlexnetDeployError(
            f"--from: the model of {source.spec} fails on an input of {shape} (input size "
            f"{pre.crop_size}){_where(err, source.file)}: {type(err).__name__}: {message}",
            hint="--from takes modules whose forward takes NCHW images [batch, 3, H, W]; for a "
            "channels-last (NHWC) model, torch.onnx.export it and 'alexnet-deploy import' the "
            "ONNX file (import gives an NHWC input a Transpose)"
            if channels
            else "pass the input size the model takes with --input-size (and --resize-size)",
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != PROBE_BATCH:
        what = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise AlexnetDeployError(
            f"--from: the model of {source.spec} returns {what} for {shape}; expected one "
            f"tensor of logits [{PROBE_BATCH}, classes]",
            hint="return the logits alone from forward (no tuple, dict or feature map)",
        )
    if not out.is_floating_point():
        raise AlexnetDeployError(
            f"--from: the model of {source.spec} returns {out.dtype} logits; expected floats",
            hint="return the logits, not the predicted class indices",
        )
    return int(out.shape[1])


def user_variant(
    spec: str, card, *, weights: Path | None = None, root: Path | None = None
) -> Variant:
    """The user's model as a :class:`Variant` the export stage takes: its factory (checked
    once here: a one-input module that classifies at the card's input size), the card's
    preprocessing, the class and parameter counts, and the metadata its export records: the
    card (a :class:`~alexnet_deploy.modelcard.ModelCard`, e.g. ``CardOptions.card``) with the
    class count filled in, and where the model came from (spec, file and its sha256, the
    weights' path, a module's import-path folder). ``root``: a module spec's recorded folder,
    to import it from there (a rebuild)."""
    import torch

    source = replace(parse_spec(spec), root=root)
    factory = load_factory(source)
    with torch.random.fork_rng(devices=[]):  # the caller's RNG state stays as it was
        probe = _module_from(factory, source)
        _check_one_input(probe, source)
        num_classes = _probe(probe, source, card.preprocessing())
    card = replace(card, num_classes=num_classes, source=f"export --from {spec}")
    module = sys.modules.get(getattr(factory, "__module__", ""))
    origin = source.file or Path(getattr(module, "__file__", None) or "")
    named = getattr(sys.modules.get(source.module or ""), "__file__", None)  # the spec's module
    metadata = {
        **card.to_metadata(),
        FROM_SPEC: source.canonical,
        FROM_FILE: str(origin) if origin.is_file() else "",
        FROM_FILE_SHA256: sha256_file(origin) if origin.is_file() else "",
        FROM_ROOT: str(import_root(source.module, Path(named))) if named else "",
        WEIGHTS_PATH: str(Path(weights).resolve()) if weights is not None else "",
    }
    return Variant(
        name=card.name,
        description=f"{source.spec} (export --from)",
        factory=lambda: _module_from(factory, source),
        preprocessing=card.preprocessing(),
        num_params=sum(p.numel() for p in probe.parameters()),
        num_classes=num_classes,
        metadata=metadata,
    )


def _require_unchanged(path: Path, digest: str, what: str, artifact: Path) -> None:
    if not path.is_file():
        raise AlexnetDeployError(
            f"{artifact} was exported from {what} {path}, which is gone (moved or deleted); "
            "the torch backend rebuilds the model from it",
            hint="put it back where it was, or export again with --from",
        )
    if digest and sha256_file(path) != digest:
        raise AlexnetDeployError(
            f"{what} {path} changed since {artifact} was exported from it (its sha256 "
            "differs); the torch backend would rebuild another model",
            hint="export again with --from, or restore the file",
        )


def is_user_export(metadata: dict[str, str]) -> bool:
    return FROM_SPEC in metadata


def model_from_metadata(metadata: dict[str, str], card, artifact: Path):
    """Rebuild a ``--from`` export's model (for the torch backend) from its metadata and its
    card (``ArtifactInfo.card()``): ``(model, WeightsInfo)``, after checking that the source
    file and the weights are the ones exported (sha256)."""
    from alexnet_deploy.models.weights import build_model

    if metadata.get(FROM_FILE):
        _require_unchanged(
            Path(metadata[FROM_FILE]),
            metadata.get(FROM_FILE_SHA256, ""),
            "the source file",
            artifact,
        )
    weights = Path(metadata[WEIGHTS_PATH]) if metadata.get(WEIGHTS_PATH) else None
    if weights is not None:
        _require_unchanged(weights, metadata.get("weights_sha256", ""), "the weights", artifact)
    root = Path(metadata[FROM_ROOT]) if metadata.get(FROM_ROOT) else None
    variant = user_variant(metadata[FROM_SPEC], card, weights=weights, root=root)
    seed = int(metadata["seed"]) if metadata.get("seed") else 0
    return build_model(variant, weights, seed)
