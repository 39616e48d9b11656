"""Is the calibration set big enough, and does it look like the data the model will see?

Bootstrap over calibration subsets of several sizes: per subset, min/max ranges from the
per-image extremes of every calibrated tensor (one FP32 pass over the calibration images), the
all-INT8 file of the planned recipe from those ranges, and its emulated fidelity on the
held-out images. Per size: the interval of the top-1 drop and of each tensor's range (its
quantization scale, relative to the full set's); the smallest size whose drop interval stays
inside the budget. Beside it, the calibration and held-out images' per-channel statistics,
flagged when they disagree (a calibration set unlike the data mis-sets every range).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C


@dataclass
class SizeFigures:
    size: int
    resamples: int
    drop_low: float  # the interval's ends (C.SUFFICIENCY_INTERVAL)
    drop_high: float
    agreement_low: float
    agreement_high: float
    scale_spread: float  # widest relative interval of one tensor's range, over tensors
    widest_tensor: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Sufficiency:
    sizes: list[SizeFigures]
    smallest_sufficient: int | None  # calibration images whose drop interval meets the budget
    shift: list[dict] = field(default_factory=list)  # per channel: calib vs held-out statistics
    shifted: bool = False
    note: str = ""

    def as_dict(self) -> dict:
        return {
            "sizes": [s.as_dict() for s in self.sizes],
            "smallest_sufficient": self.smallest_sufficient,
            "shift": self.shift,
            "shifted": self.shifted,
            "note": self.note,
        }


def per_image_extremes(model_path: Path, names: list[str], images: np.ndarray, batch: int):
    """name -> (mins, maxes), one entry per image, from one FP32 pass."""
    import onnx
    import onnxruntime as ort

    from alexnet_deploy.precision.layers import with_outputs

    model = with_outputs(onnx.load(str(model_path)), names, {})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    lows: dict[str, list] = {n: [] for n in names}
    highs: dict[str, list] = {n: [] for n in names}
    for i in range(0, len(images), batch):
        outputs = session.run(names, {input_name: images[i : i + batch]})
        for name, value in zip(names, outputs, strict=True):
            flat = value.reshape(len(value), -1)
            lows[name].append(flat.min(axis=1))
            highs[name].append(flat.max(axis=1))
    return {n: (np.concatenate(lows[n]), np.concatenate(highs[n])) for n in names}


def channel_shift(calib: np.ndarray, held_out: np.ndarray) -> tuple[list[dict], bool]:
    """Per input channel: means and standard deviations of both sets, the standardized mean
    difference, and whether it (or the ratio of deviations) is beyond C.SHIFT_* limits."""
    rows, shifted = [], False
    for c in range(calib.shape[1]):
        a, b = calib[:, c].astype(np.float64), held_out[:, c].astype(np.float64)
        pooled = np.sqrt((a.var() + b.var()) / 2) or 1.0
        difference = abs(a.mean() - b.mean()) / pooled
        ratio = (a.std() or 1e-12) / (b.std() or 1e-12)
        flag = difference > C.SHIFT_MAX_MEAN_DIFFERENCE or not (
            1 / C.SHIFT_MAX_STD_RATIO <= ratio <= C.SHIFT_MAX_STD_RATIO
        )
        shifted = shifted or bool(flag)
        rows.append(
            {
                "channel": c,
                "calib_mean": float(a.mean()),
                "held_out_mean": float(b.mean()),
                "calib_std": float(a.std()),
                "held_out_std": float(b.std()),
                "standardized_mean_difference": float(difference),
                "std_ratio": float(ratio),
                "flagged": bool(flag),
            }
        )
    return rows, shifted


def calibration_sufficiency(
    source: Path, ranges, recipe, data, reference, labels, budget: float, scratch: Path,
    *, input_name: str, batch_size: int, resamples: int = C.SUFFICIENCY_RESAMPLES, seed: int = C.DEFAULT_SEED,
    progress=lambda _m: None,
) -> Sufficiency:  # fmt: skip
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    from alexnet_deploy.calib.fidelity import EMULATED, compare_logits, logits_on
    from alexnet_deploy.calib.int8 import quantize_to_file
    from alexnet_deploy.calib.ranges import Ranges

    full = ranges.load()
    names = sorted(full.data)
    images = data.calib.images
    progress(f"sufficiency: per-image ranges of {len(names)} tensors on {len(images)} images")
    extremes = per_image_extremes(source, names, images, batch_size)
    full_scale = {
        n: max(abs(float(extremes[n][0].min())), abs(float(extremes[n][1].max()))) for n in names
    }
    rng = np.random.default_rng(seed)
    sizes = [s for s in C.SUFFICIENCY_SIZES if s < len(images)] + [len(images)]
    found = []
    for size in sizes:
        drops, agreements, scales = [], [], {n: [] for n in names}
        for r in range(resamples):
            progress(f"sufficiency: {size} images, resample {r + 1}/{resamples}")
            pick = rng.integers(0, len(images), size)
            tensors = {}
            for n in names:
                lo, hi = float(extremes[n][0][pick].min()), float(extremes[n][1][pick].max())
                tensors[n] = TensorData(
                    lowest=np.array([lo], np.float32), highest=np.array([hi], np.float32)
                )
                scales[n].append(max(abs(lo), abs(hi)) / (full_scale[n] or 1.0))
            path = scratch / f"sufficiency-{size}-{r}.json"
            save_tensors_data(TensorsData(full.calibration_method, tensors), path)
            model = scratch / f"sufficiency-{size}-{r}.onnx"
            quantize_to_file(source, Ranges(ranges.config, path, 0.0, True, False), recipe, model)
            logits = logits_on(EMULATED, model, input_name, data.eval.images, batch_size)
            f = compare_logits(reference, logits, labels)
            drops.append(f.top1_drop_points())
            agreements.append(f.top1_agreement)
            model.unlink()
        low_q, high_q = (1 - C.SUFFICIENCY_INTERVAL) / 2, (1 + C.SUFFICIENCY_INTERVAL) / 2
        spreads = {
            n: float(np.quantile(v, high_q) - np.quantile(v, low_q)) for n, v in scales.items()
        }
        widest = max(spreads, key=spreads.get)
        found.append(
            SizeFigures(
                size, resamples,
                float(np.quantile(drops, low_q)), float(np.quantile(drops, high_q)),
                float(np.quantile(agreements, low_q)), float(np.quantile(agreements, high_q)),
                spreads[widest], widest,
            )
        )  # fmt: skip
    sufficient = next((s.size for s in found if s.drop_high <= budget + 1e-9), None)
    shift, shifted = channel_shift(images, data.eval.images)
    note = (
        f"the smallest calibration set whose {int(100 * C.SUFFICIENCY_INTERVAL)}% interval of "
        f"the top-1 drop stays within {budget:g} points: "
        + (f"{sufficient} images" if sufficient else "none of the sizes tried")
    )
    if shifted:
        note += (
            "; the calibration images look unlike the held-out images (per-channel statistics "
            "disagree): calibrate on images like the ones the model will see"
        )
    return Sufficiency(found, sufficient, shift, shifted, note)
