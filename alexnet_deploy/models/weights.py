"""A model with weights: from a checkpoint loaded safely, or from a seed (labelled untrained)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy.constants import MAX_MISMATCHES_SHOWN
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.models.variants import Variant

UNTRAINED = "untrained"
CHECKPOINT_KEYS = ("state_dict", "model")  # where training scripts keep the state dict


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from: a checkpoint's sha256, or ``untrained`` and a seed."""

    source: str  # checkpoint path, or "untrained"
    sha256: str  # checkpoint sha256, or "untrained"
    seed: int | None  # the init seed for untrained weights

    @property
    def trained(self) -> bool:
        return self.sha256 != UNTRAINED

    @property
    def label(self) -> str:
        if self.trained:
            return f"weights {self.source} (sha256 {self.sha256[:12]})"
        return f"untrained (seed {self.seed})"


def _format_list(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_MISMATCHES_SHOWN])
    more = len(items) - MAX_MISMATCHES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def load_state_dict(path: Path) -> dict:
    """Read a checkpoint holding tensors only; never unpickle arbitrary objects."""
    import torch

    if not path.exists():
        raise AlexnetDeployError(
            f"weights file not found: {path}", hint="check the path passed to --weights"
        )
    if not path.is_file():
        raise AlexnetDeployError(f"weights path {path} is not a file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's unpickler raises almost anything on garbage input
        text = str(err).strip()
        # torch's wording: "Unsupported global: GLOBAL x.y" (a class), or "unsupported GLOBAL
        # x.y whose module x is blocked" (a callable such as os.system behind __reduce__)
        found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)", text)
        if found:
            raise AlexnetDeployError(
                f"{path} holds pickled Python objects ({found.group(1)}), not only tensors; "
                "refusing to unpickle it",
                hint="re-save it as a state dict: torch.save(model.state_dict(), PATH)",
            ) from None
        reason = (re.findall(r"WeightsUnpickler error: ([^\n]+)", text) or [type(err).__name__])[0]
        raise AlexnetDeployError(
            f"{path} is not a PyTorch checkpoint ({reason})",
            hint="--weights takes a file written by torch.save(model.state_dict(), PATH)",
        ) from None
    for key in CHECKPOINT_KEYS:  # a training checkpoint: the state dict under one key
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AlexnetDeployError(
            f"{path} does not hold a state dict (a mapping of names to tensors)",
            hint="save it with torch.save(model.state_dict(), PATH)",
        )
    return obj


def check_state_dict(state: dict, expected: dict, variant: Variant, path: Path) -> None:
    """Raise an error naming the first missing, unexpected or mis-shaped keys."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    # an integer tensor would be cast to whole numbers (an int64 state dict became all-zero
    # weights labelled "trained"); NaN/Inf fail only after a whole export otherwise
    dtypes = [
        f"{k} is {str(state[k].dtype).removeprefix('torch.')} (expected {str(v.dtype).removeprefix('torch.')})"
        for k, v in expected.items()
        if k in state and v.is_floating_point() and not state[k].is_floating_point()
    ]
    non_finite = [
        f"{k} ({int((~state[k].isfinite()).sum())} NaN/Inf values)"
        for k, v in expected.items()
        if k in state and state[k].is_floating_point() and not bool(state[k].isfinite().all())
    ]
    problems = []
    if dtypes:
        problems.append(f"wrong dtypes: {_format_list(dtypes)}")
    if non_finite:
        problems.append(f"non-finite values: {_format_list(non_finite)}")
    if missing:
        problems.append(f"missing keys: {_format_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_format_list(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {_format_list(wrong)}")
    if problems and variant.metadata:  # a user's model (export --from)
        raise AlexnetDeployError(
            f"checkpoint {path} does not fit the model of {variant.description}: "
            + "; ".join(problems),
            hint="--weights takes that model's state_dict() (or a checkpoint holding it under "
            "'state_dict' or 'model'); check --from and --weights",
        )
    if problems:
        raise AlexnetDeployError(
            f"checkpoint {path} does not fit the {variant.name!r} variant: " + "; ".join(problems),
            hint="check --variant; torchvision checkpoints fit the 'torchvision' variant",
        )


def build_model(variant: Variant, weights: Path | None, seed: int):
    """Return ``(model, WeightsInfo)``: ``variant``'s network in eval mode.

    Without ``weights``, parameters are initialized deterministically from ``seed`` without
    touching the caller's global RNG state.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = variant.build()
    if weights is None:
        return model, WeightsInfo(source=UNTRAINED, sha256=UNTRAINED, seed=seed)
    weights = Path(weights)
    state = load_state_dict(weights)
    check_state_dict(state, model.state_dict(), variant, weights)
    model.load_state_dict(state)
    return model.eval(), WeightsInfo(source=str(weights), sha256=sha256_file(weights), seed=None)
