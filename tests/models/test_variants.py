from __future__ import annotations

import pytest

from alexnet_deploy.errors import UsageError
from alexnet_deploy.models.summary import layer_table, total_macs
from alexnet_deploy.models.variants import VARIANTS, get_variant

# The source document's walk-through of the 2012 network (C x H x W), conv1 to fc8.
PAPER_WALKTHROUGH = [
    ("conv1", "96x55x55"),
    ("pool1", "96x27x27"),
    ("conv2", "256x27x27"),
    ("pool2", "256x13x13"),
    ("conv3", "384x13x13"),
    ("conv4", "384x13x13"),
    ("conv5", "256x13x13"),
    ("pool5", "256x6x6"),
    ("fc6", "4096"),
    ("fc7", "4096"),
    ("fc8", "1000"),
]
TORCHVISION_SHAPES = [
    ("conv1", "64x55x55"),
    ("pool1", "64x27x27"),
    ("conv2", "192x27x27"),
    ("pool2", "192x13x13"),
    ("conv3", "384x13x13"),
    ("conv4", "256x13x13"),
    ("conv5", "256x13x13"),
    ("pool5", "256x6x6"),
    ("avgpool", "256x6x6"),
    ("fc6", "4096"),
    ("fc7", "4096"),
    ("fc8", "1000"),
]


def _shapes(name):
    table = layer_table(get_variant(name))
    return [(r["layer"], r["output"]) for r in table.iter_rows(named=True) if r["layer"] != "total"]


def test_paper_walkthrough_shapes():
    shapes = [s for s in _shapes("paper") if not s[0].startswith("lrn")]
    assert shapes == PAPER_WALKTHROUGH


def test_paper_lrn_follows_pooling_as_the_text_says():
    layers = [name for name, _ in _shapes("paper")]
    assert layers[:6] == ["conv1", "pool1", "lrn1", "conv2", "pool2", "lrn2"]


def test_torchvision_shapes():
    assert _shapes("torchvision") == TORCHVISION_SHAPES


@pytest.mark.parametrize(("name", "params"), [("torchvision", 61_100_840), ("paper", 60_965_224)])
def test_parameter_totals(name, params):
    variant = get_variant(name)
    table = layer_table(variant)
    assert table.filter(table["layer"] == "total")["params"][0] == params
    assert sum(p.numel() for p in variant.build().parameters()) == params == variant.num_params


def test_paper_per_layer_parameters_match_the_architecture_doc():
    table = layer_table(get_variant("paper"))
    params = {r["layer"]: r["params"] for r in table.iter_rows(named=True)}
    assert params["conv1"] == 34_944 and params["conv2"] == 307_456
    assert params["conv3"] == 885_120 and params["conv4"] == 663_936
    assert params["conv5"] == 442_624 and params["fc6"] == 37_752_832
    assert params["fc7"] == 16_781_312 and params["fc8"] == 4_097_000


def test_torchvision_macs_about_0_71_giga():
    assert 0.70e9 < total_macs(get_variant("torchvision")) < 0.72e9


def test_grouped_convs_count_half_the_macs():
    table = layer_table(get_variant("paper"))
    macs = {r["layer"]: r["macs"] for r in table.iter_rows(named=True)}
    # conv2: 256 filters of 5x5x48 over 27x27 outputs
    assert macs["conv2"] == 256 * 27 * 27 * 5 * 5 * 48


def test_input_sizes_travel_with_the_variant():
    assert VARIANTS["torchvision"].input_shape == (3, 224, 224)
    assert VARIANTS["paper"].input_shape == (3, 227, 227)


def test_unknown_variant_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown variant 'vgg'"):
        get_variant("vgg")
