"""The runtimes used directly with their documented throughput settings, on the trained test
network: OpenVINO's asynchronous queue (a static batch, the throughput hint, the optimal number
of requests) and what its measurement counts, and tune setting its choice beside each runtime
used directly in the same run (the ratio, the % of the INT8 compute peak). No timing asserted."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from alexnet_deploy.bench.config import MeasureRules
from alexnet_deploy.cases import Case
from alexnet_deploy.onnx_model import read_artifact

pytestmark = pytest.mark.openvino


@pytest.fixture(scope="module")
def setup(digits_artifacts, tmp_path_factory):
    root = tmp_path_factory.mktemp("direct-tput")
    for path in digits_artifacts["model"].parent.glob("digits-tiny*"):
        shutil.copy(path, root / path.name)
    model = root / "digits-tiny.onnx"
    return {
        "model": model,
        "int8": root / "digits-tiny.int8-cpu.onnx",
        "work": root / "work",
        "data": digits_artifacts["heldout_dir"],
        "images": np.asarray(digits_artifacts["heldout_images"][:16], dtype=np.float32),
    }


def test_the_openvino_queue_counts_every_request_it_ran(setup):
    from alexnet_deploy.bench.direct import (
        measure_queue,
        openvino_optimal_requests,
        openvino_queue,
    )

    artifact, images = setup["int8"], setup["images"]
    rules = MeasureRules(
        warmup_iterations=2, warmup_seconds=0, min_iterations=20, min_seconds=0.05, max_seconds=5
    )
    with openvino_queue(artifact, 4) as compiled:
        assert list(compiled.compiled.input(0).get_partial_shape().to_shape()) == [4, 3, 32, 32]
        assert compiled.requests == openvino_optimal_requests(artifact, 4) >= 1
        assert compiled.computed.precision.startswith("int8")  # read back from OpenVINO
        # the compiled model is the artifact: the same classes as ONNX Runtime on the same file
        session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for start in range(0, 16, 4):
            batch = images[start : start + 4]
            ours = compiled.infer(batch)
            assert ours.shape == (4, 10)
            assert (ours.argmax(1) == session.run(None, {name: batch})[0].argmax(1)).all()
        measured = measure_queue(compiled, np.ascontiguousarray(images[:4]), rules)
    assert measured.concurrency == compiled.requests and measured.batch == 4
    assert measured.requests == len(measured.samples_ns) >= rules.min_iterations
    assert (measured.samples_ns > 0).all()
    assert measured.wall_seconds >= rules.min_seconds
    assert measured.samples_ns.max() <= measured.wall_seconds * 1e9  # each inside the window
    assert measured.stop_reason == "minimums met"
    assert measured.images_per_second == pytest.approx(
        measured.requests * 4 / measured.wall_seconds
    )


def test_tune_sets_its_choice_beside_each_runtime_used_directly(cli, setup, tmp_path):
    from alexnet_deploy.bench.direct import openvino_optimal_requests

    out, model = tmp_path / "tuned.json", setup["model"]
    result = cli(
        "tune", "--model", model, "--data", setup["data"], "--backend", "ort", "--backend",
        "openvino", "--precision", "int8", "--quantizer", "qdq", "--batch", "1,4", "--streams",
        "2", "--min-seconds", "0.05", "--max-seconds", "0.05", "--time-budget", "0",
        "--work-dir", setup["work"], "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    saved = json.loads(out.read_text())
    assert saved["model"] == read_artifact(model).model_name and saved["model_path"] == str(model)
    report = json.loads((setup["work"] / "reports" / "tune" / "bench-summary.json").read_text())
    rows = {Case.from_row(r): r for r in report["rows"]}
    direct = {c: r for c, r in rows.items() if c.backend.endswith("-direct")}
    assert all(r["status"] == "ok" and r["top1_agreement"] is not None for r in direct.values())
    # OpenVINO: a static batch, as many requests as its throughput hint asks for; ONNX Runtime:
    # its defaults, called from one thread and from two at once; both at each batch searched
    expected = {
        Case("openvino-direct", "int8", b, "throughput", streams=n, static=True)
        for b in (1, 4)
        if (n := openvino_optimal_requests(setup["int8"], b))
    } | {Case("ort-direct", "int8", b, "throughput", streams=n) for b in (1, 4) for n in (1, 2)}
    assert set(direct) == expected
    versus = saved["direct"]
    assert report["comparisons"]["tune_vs_direct"] == versus  # the report says the same
    chosen = next(r for c, r in rows.items() if c == Case.from_row(saved["choice"]))
    peak = report["ceilings"]["int8_gops"]
    assert versus["pct_int8_peak"] == pytest.approx(100 * chosen["gflops"] / peak)
    for name, words in (
        ("openvino-direct", "OpenVINO used directly (THROUGHPUT hint, async queue, "),
        ("ort-direct", "ONNX Runtime used directly (default session options, run from "),
    ):
        # its row the confirm stage measured in the same 3 rounds as the choice
        entry, confirmed = versus["runtimes"][name], saved["search"]["stages"]["confirm"]
        best = next(r for c, r in direct.items() if c.backend == name and c.label in confirmed)
        assert entry["images_per_s"] == best["images_per_s"] and best["rounds"] == 3
        rounds = zip(chosen["round_images_per_s"], best["round_images_per_s"], strict=True)
        assert entry["ratio"] == pytest.approx(float(np.median([m / p for m, p in rounds])))
        assert entry["pct_int8_peak"] == pytest.approx(100 * best["gflops"] / peak)
        assert words in entry["text"] and entry["text"] in result.stdout
    ratios = [e["ratio"] for e in versus["runtimes"].values()]
    reached = any(e["pct_int8_peak"] >= 90 for e in versus["runtimes"].values())
    assert versus["met"] == (min(ratios) >= 1.0 and (not reached or versus["pct_int8_peak"] >= 90))
    assert versus["peak_text"] in result.stdout
