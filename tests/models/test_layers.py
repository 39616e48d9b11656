"""LRN: the module, and its single exported ONNX operator, against the paper's formula."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch

from alexnet_deploy.models.layers import PaperLRN


def paper_lrn(a: np.ndarray, n=5, alpha=1e-4, beta=0.75, k=2.0) -> np.ndarray:
    """b[c] = a[c] / (k + alpha * sum_{c'=max(0,c-n/2)}^{min(N-1,c+n/2)} a[c']^2) ** beta"""
    channels = a.shape[1]
    out = np.empty_like(a, dtype=np.float64)
    for c in range(channels):
        lo, hi = max(0, c - n // 2), min(channels - 1, c + n // 2)
        square_sum = (a[:, lo : hi + 1].astype(np.float64) ** 2).sum(axis=1)
        out[:, c] = a[:, c] / (k + alpha * square_sum) ** beta
    return out


def _activations(seed=0):
    # Large post-ReLU-like activations so the alpha term matters (values up to ~200).
    rng = np.random.default_rng(seed)
    return (rng.random((2, 12, 5, 5), dtype=np.float32) * 200).astype(np.float32)


def test_module_matches_the_paper_formula():
    a = _activations()
    got = PaperLRN()(torch.from_numpy(a)).numpy()
    expected = paper_lrn(a)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # and the normalization is not a no-op at this scale
    assert np.abs(expected - a / 2.0**0.75).max() > 1e-2


def test_exported_as_one_onnx_lrn_node_matching_the_formula(exported):
    # The LRN nodes come from the real paper model's export.
    graph = onnx.load(str(exported("paper").path)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("LRN") == 2
    assert not {"Pow", "AveragePool", "If", "Pad"} & set(ops), ops
    lrn = next(n for n in graph.node if n.op_type == "LRN")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in lrn.attribute}
    assert attrs["size"] == 5
    assert np.isclose(attrs["alpha"], 5e-4) and np.isclose(attrs["beta"], 0.75)
    assert np.isclose(attrs["bias"], 2.0)

    # Run the exported LRN node alone in ONNX Runtime against the formula.
    node = onnx.helper.make_node("LRN", ["x"], ["y"], **attrs)
    single = onnx.helper.make_model(
        onnx.helper.make_graph(
            [node],
            "lrn",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 18)],
    )
    a = _activations(1)
    session = ort.InferenceSession(single.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": a})[0]
    np.testing.assert_allclose(got, paper_lrn(a), rtol=1e-5)
