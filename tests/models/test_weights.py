"""Checkpoints: torchvision's key names load unchanged; everything else fails clearly."""

from __future__ import annotations

import pytest
import torch

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.models.variants import get_variant
from alexnet_deploy.models.weights import build_model

# torchvision.models.alexnet().state_dict().keys(), written out so a rename cannot slip by.
TORCHVISION_KEYS = [
    "features.0.weight",
    "features.0.bias",
    "features.3.weight",
    "features.3.bias",
    "features.6.weight",
    "features.6.bias",
    "features.8.weight",
    "features.8.bias",
    "features.10.weight",
    "features.10.bias",
    "classifier.1.weight",
    "classifier.1.bias",
    "classifier.4.weight",
    "classifier.4.bias",
    "classifier.6.weight",
    "classifier.6.bias",
]


class NotATensor:
    """A pickled object that a weights-only load must refuse."""

    def __init__(self):
        self.payload = "arbitrary code could run here"


def test_state_dict_keys_are_torchvisions():
    assert list(get_variant("torchvision").build().state_dict()) == TORCHVISION_KEYS


def test_checkpoint_round_trip(tmp_path):
    variant = get_variant("torchvision")
    source, _ = build_model(variant, None, seed=123)
    path = tmp_path / "alexnet.pth"
    torch.save(source.state_dict(), path)
    loaded, info = build_model(variant, path, seed=0)
    assert info.trained and len(info.sha256) == 64
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_wrapped_state_dict_is_accepted(tmp_path):
    variant = get_variant("paper")
    source, _ = build_model(variant, None, seed=1)
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    loaded, _ = build_model(variant, path, seed=0)
    assert torch.equal(loaded.features[0].weight, source.features[0].weight)


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone():
    variant = get_variant("paper")
    torch.manual_seed(99)
    before = torch.get_rng_state()
    a, info = build_model(variant, None, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    b, _ = build_model(variant, None, seed=5)
    c, _ = build_model(variant, None, seed=6)
    assert not info.trained and info.label == "untrained (seed 5)"
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


def test_missing_file(tmp_path):
    with pytest.raises(AlexnetDeployError, match="weights file not found"):
        build_model(get_variant("torchvision"), tmp_path / "missing.pth", seed=0)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(AlexnetDeployError, match="is not a PyTorch checkpoint"):
        build_model(get_variant("torchvision"), path, seed=0)


def test_pickled_object_is_refused(tmp_path):
    path = tmp_path / "object.pth"
    torch.save({"model": NotATensor()}, path)
    with pytest.raises(AlexnetDeployError, match="pickled Python objects"):
        build_model(get_variant("torchvision"), path, seed=0)


def test_wrong_keys_are_named(tmp_path):
    paper, _ = build_model(get_variant("paper"), None, seed=0)
    path = tmp_path / "paper.pth"
    torch.save(paper.state_dict(), path)
    with pytest.raises(AlexnetDeployError) as err:
        build_model(get_variant("torchvision"), path, seed=0)
    message = str(err.value)
    assert "does not fit the 'torchvision' variant" in message
    assert "wrong shapes: features.0.weight (96, 3, 11, 11) (expected (64, 3, 11, 11))" in message


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = get_variant("torchvision").build().state_dict()
    state["extra.weight"] = state.pop("classifier.6.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(
        AlexnetDeployError,
        match=r"missing keys: classifier\.6\.weight; "
        r"unexpected keys: extra\.weight",
    ):
        build_model(get_variant("torchvision"), path, seed=0)


def test_integer_checkpoint_is_refused_per_tensor(tmp_path):
    """An int64 state dict used to load as all-zero weights labelled "trained"."""
    state = {
        k: v.to(torch.int64) for k, v in get_variant("torchvision").build().state_dict().items()
    }
    path = tmp_path / "int.pth"
    torch.save(state, path)
    with pytest.raises(
        AlexnetDeployError, match=r"wrong dtypes: features\.0\.weight is int64 \(expected float32\)"
    ):
        build_model(get_variant("torchvision"), path, seed=0)


def test_non_finite_weights_are_named_before_export(tmp_path):
    state = get_variant("torchvision").build().state_dict()
    state["classifier.4.weight"][0, :3] = torch.tensor([float("nan"), float("inf"), 1.0])
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(
        AlexnetDeployError, match=r"non-finite values: classifier\.4\.weight \(2 NaN/Inf values\)"
    ):
        build_model(get_variant("torchvision"), path, seed=0)


class RunsCode:
    """A pickle whose __reduce__ calls a function on load: refused, naming it."""

    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def test_code_running_pickle_is_refused_with_the_callable_named(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": RunsCode()}, path)
    with pytest.raises(
        AlexnetDeployError, match=r"holds pickled Python objects \((posix|nt)\.system\)"
    ):
        build_model(get_variant("torchvision"), path, seed=0)
