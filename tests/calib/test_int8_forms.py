"""INT8 forms per CPU instruction-set class, and fidelity separated from the machine: the
emulated figure (what the Q/DQ file means) against the as-executed ones (this CPU's kernels).
On the trained test network, through the real quantizer, ONNX Runtime and OpenVINO."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from alexnet_deploy import cpu_isa
from alexnet_deploy.calib.fidelity import ort_logits
from alexnet_deploy.calib.int8 import CPU_FORMS, KNOWN_TARGETS, isa_mismatch
from alexnet_deploy.calib.pipeline import calibrate
from alexnet_deploy.calib.stage import DataRequest
from alexnet_deploy.onnx_model import read_artifact


def _request(digits) -> DataRequest:
    return DataRequest(
        data=str(digits["train_dir"]),
        calib_size=64,
        eval_data=str(digits["heldout_dir"]),
        eval_size=128,
    )


def _other_class() -> str:
    """A class whose CPU form differs from this machine's (reduce-range or not)."""
    here = cpu_isa.this_cpu().name
    return "vnni" if CPU_FORMS[here].reduce_range else "avx2"


@pytest.fixture(scope="module")
def forms(digits, tmp_path_factory):
    """The trained model calibrated twice: both default targets, and the CPU form of a class
    this machine is not."""
    root = tmp_path_factory.mktemp("forms")
    model = root / "digits-tiny.onnx"
    shutil.copy(digits["onnx"], model)
    here = calibrate(model, _request(digits))
    other = calibrate(
        model,
        _request(digits),
        targets=(f"cpu-{_other_class()}",),
        output=str(root / "other" / "other.onnx"),
    )
    return {"model": model, "here": here, "other": other, "root": root}


def _weight_range(path) -> tuple[int, int]:
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    lo, hi = 0, 0
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            values = numpy_helper.to_array(inits[node.input[0]])
            if values.dtype == np.int8:
                lo, hi = min(lo, int(values.min())), max(hi, int(values.max()))
    return lo, hi


def test_each_form_is_judged_on_its_own_figure(forms):
    machine = cpu_isa.this_cpu().name
    judged = {c.target: c.basis for c in forms["here"].candidates if c.selected}
    assert judged == {"tensorrt": "emulated", "cpu": "ort"}
    (other,) = [c for c in forms["other"].candidates if c.selected]
    assert other.basis == "emulated"  # this CPU cannot run another class's kernels
    report = json.loads(forms["here"].report_path.read_text())
    assert report["cpu"]["class"] == machine
    for target in ("tensorrt", "cpu"):
        entry = report["fidelity"][target]
        assert entry["judged_on"] == judged[target]
        assert {"emulated", "ort"} <= set(entry["figures"])
        for figure in entry["figures"].values():
            assert figure["samples"] == 128 and 0.9 < figure["top1_agreement"] <= 1.0
    rows = [r for r in report["rows"] if r["selected"]]
    assert all(r["judged_on"] and r["emulated_agreement"] for r in rows)


def test_metadata_records_the_class_and_the_basis(forms):
    here = read_artifact(forms["here"].artifacts["cpu"]).metadata
    assert here["int8_isa"] == cpu_isa.this_cpu().name and here["fidelity_basis"] == "ort"
    assert read_artifact(forms["here"].artifacts["tensorrt"]).metadata["fidelity_basis"] == (
        "emulated"
    )
    other = read_artifact(forms["root"] / "other" / "other.onnx").metadata
    assert other["int8_isa"] == _other_class()
    assert other["int8_target"] == "cpu"  # every CPU class's file is the CPU form


def test_reduce_range_forms_hold_7_bit_weights(forms):
    paths = {cpu_isa.this_cpu().name: forms["here"].artifacts["cpu"]}
    paths[_other_class()] = forms["root"] / "other" / "other.onnx"
    for isa, path in paths.items():
        lo, hi = _weight_range(path)
        if CPU_FORMS[isa].reduce_range:
            # 255 x 64 x 2 = 32640: a pair of u8 x s8 products cannot saturate 16 bits
            assert max(-lo, hi) <= 64, (isa, lo, hi)
        else:
            assert max(-lo, hi) > 64, (isa, lo, hi)  # the full 8 bits are used


def test_emulated_figure_is_the_exact_qdq_semantics(digits, forms):
    """ONNX's reference evaluator (pure NumPy, quantize / dequantize / float compute) gives
    the emulated logits of the TensorRT form."""
    from onnx.reference import ReferenceEvaluator

    path = forms["here"].artifacts["tensorrt"]
    images = digits["heldout_images"][:4]
    model = onnx.load(str(path))
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, 19)  # the evaluator implements DQ from 19
    exact = ReferenceEvaluator(model).run(None, {"input": images})[0]
    emulated = ort_logits(path, "input", images, 4, emulated=True)
    scale = np.abs(exact).max()
    assert np.abs(emulated - exact).max() <= 1e-5 * scale


def test_unknown_target_lists_the_known_ones(digits, cli, tmp_path):
    result = cli("calibrate", digits["onnx"], "--target", "cpu-avx1024", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "unknown --target 'cpu-avx1024'" in result.stderr
    assert all(t in result.stderr for t in KNOWN_TARGETS)
    assert not list(tmp_path.iterdir())


def test_two_cpu_forms_in_one_run_are_refused(digits, cli, tmp_path):
    result = cli(
        "calibrate", digits["onnx"], "--target", "cpu-vnni", "--target", "cpu-avx2",
        "-o", tmp_path / "{target}.onnx",
    )  # fmt: skip
    assert result.exit_code == 2 and "one file holds one form" in result.stderr


def test_artifact_for_another_class_warns_with_the_fix(forms, tmp_path, caplog):
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import BuildOptions

    other = forms["root"] / "other" / "other.onnx"
    text = isa_mismatch(read_artifact(other).metadata, cpu_isa.this_cpu().name, "m.onnx")
    assert text and "recalibrate here" in text and f"cpu-{cpu_isa.this_cpu().name}" in text
    with caplog.at_level(logging.WARNING):
        engine, _ = build_engine(other, "ort", BuildOptions(precision="int8"), tmp_path)
    assert any("recalibrate here" in r.getMessage() for r in caplog.records)
    assert engine.sidecar.int8_isa == _other_class()
    assert engine.sidecar.cpu_isa == cpu_isa.this_cpu().name
    # this machine's own form: no warning
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_engine(forms["model"], "ort", BuildOptions(precision="int8"), tmp_path)
    assert not any("recalibrate" in r.getMessage() for r in caplog.records)


def test_mismatch_rules():
    old = {"precision": "int8", "int8_target": "cpu"}  # from before the class was recorded
    assert isa_mismatch(old, "vnni") is None
    assert "unfaithful" in isa_mismatch(old, "avx2")
    reduce = {**old, "int8_isa": "avx2"}
    assert isa_mismatch(reduce, "avx512") is None and isa_mismatch(reduce, "portable") is None
    assert "loses precision for nothing" in isa_mismatch(reduce, "arm64")
    assert isa_mismatch({**old, "int8_target": "tensorrt"}, "avx2") is None
    assert isa_mismatch({**old, "int8_quantizer": "nncf"}, "avx2") is None


def test_unknown_cpu_gets_the_portable_form_and_says_why(digits, tmp_path, monkeypatch, caplog):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: SomeNewVendor\nflags\t\t: fpu sse2\n")
    monkeypatch.setattr(cpu_isa, "CPUINFO", info)
    monkeypatch.setattr(cpu_isa.platform, "machine", lambda: "x86_64")
    assert cpu_isa.this_cpu().name == "portable"
    model = tmp_path / "digits-tiny.onnx"
    shutil.copy(digits["onnx"], model)
    with caplog.at_level(logging.WARNING):
        report = calibrate(model, _request(digits), targets=("cpu",), trt_cache=False)
    assert any(
        "found no int8 class it knows (x86 without AVX2 or VNNI)" in r.getMessage()
        for r in caplog.records
    )
    meta = read_artifact(report.artifacts["cpu"]).metadata
    assert meta["int8_isa"] == "portable" and "reduce-range" in meta["int8_recipe"]


@pytest.fixture
def readonly_dir(tmp_path):
    """A read-only file system (a tmpfs remounted read-only) holding what the test puts in
    first; skipped where this process cannot mount one (it needs root)."""
    import subprocess

    path = tmp_path / "ro"
    path.mkdir()

    def mount(*args):
        return subprocess.run(["mount", *args], capture_output=True, text=True)

    if mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")

    def seal():
        assert mount("-o", "remount,ro", str(path)).returncode == 0

    yield path, seal
    subprocess.run(["umount", str(path)], capture_output=True)


def test_calibrate_writes_nothing_beside_a_read_only_model(digits, readonly_dir, tmp_path):
    """ONNX Runtime's quantizer used to write STEM-inferred.onnx beside the model: a model on a
    read-only volume crashed calibrate with a traceback."""
    path, seal = readonly_dir
    shutil.copy(digits["onnx"], path / "m.onnx")
    seal()
    report = calibrate(
        path / "m.onnx", _request(digits), output=str(tmp_path / "out" / "m.int8-{target}.onnx")
    )
    assert set(report.artifacts) == {"tensorrt", "cpu"}
    assert sorted(p.name for p in path.iterdir()) == ["m.onnx"]
    assert not list((tmp_path / "out" / ".cache").glob("int8-run-*"))  # scratch removed


def test_two_calibrations_of_one_model_at_once(digits, tmp_path):
    """Candidates had fixed names in one shared directory: two runs crashed each other."""
    import threading

    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    out, errors = tmp_path / "out", []

    def run(name):
        try:
            calibrate(model, _request(digits), output=str(out / f"{name}-{{target}}.onnx"))
        except Exception as err:  # the test's point: neither may fail
            errors.append(err)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for name in ("a", "b"):
        assert read_artifact(out / f"{name}-cpu.onnx").metadata["precision"] == "int8"
