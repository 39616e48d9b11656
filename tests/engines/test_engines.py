"""Engine files, sidecars, reuse, and every bad input of the build/load/infer path."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest

from alexnet_deploy.engines.build import build_engine, load_engine
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.registry import get_backend
from alexnet_deploy.errors import AlexnetDeployError, UsageError


def test_engine_is_reused_when_nothing_changed(digits_artifacts):
    first, _ = build_engine(
        digits_artifacts["model"], "ort", BuildOptions(max_batch=8), digits_artifacts["work"]
    )
    second, reused = build_engine(
        digits_artifacts["model"], "ort", BuildOptions(max_batch=8), digits_artifacts["work"]
    )
    assert reused and second.path == first.path
    side = json.loads(second.sidecar_path.read_text())
    assert side["backend"] == "ort" and side["runtime"] == "onnxruntime"
    assert side["artifact_sha256"] and side["machine"]["cpu"] and side["options"]["max_batch"] == 8


def test_cli_build_and_missing_int8_artifact(cli, digits, tmp_path):
    result = cli(
        "build", digits["onnx"], "--backend", "ort", "--precision", "int8", "--work-dir", tmp_path
    )
    assert result.exit_code == 1 and "no int8 artifact" in result.stderr
    assert "alexnet-deploy calibrate" in result.stderr
    result = cli("build", digits["onnx"], "--backend", "ort", "--work-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "ort fp32 engine built" in result.stdout


def test_missing_or_not_onnx_artifact(tmp_path):
    with pytest.raises(AlexnetDeployError, match="not found"):
        build_engine(tmp_path / "missing.onnx", "ort", BuildOptions(), tmp_path)
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(AlexnetDeployError, match="is not an ONNX model"):
        build_engine(bogus, "ort", BuildOptions(), tmp_path)


def test_fixed_batch_or_wrong_rank_input_is_refused(digits, tmp_path):
    model = onnx.load(str(digits["onnx"]))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2  # 1 runs, one at a time
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    with pytest.raises(
        AlexnetDeployError, match=r"fixed batch of 2 \(.*\); engines run a dynamic batch, or"
    ):
        build_engine(fixed, "ort", BuildOptions(), tmp_path)
    flat = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Relu", ["x"], ["y"])],
            "flat",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 10])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 10])],
        )
    )
    onnx.save(flat, str(tmp_path / "flat.onnx"))
    with pytest.raises(
        AlexnetDeployError,
        match=r"input 'x' is float32 \['batch', 10\], expected float32 \[batch, C, H, W\]",
    ):
        build_engine(tmp_path / "flat.onnx", "ort", BuildOptions(), tmp_path)


def test_precision_the_artifact_does_not_carry(digits_artifacts):
    int8 = digits_artifacts["model"].with_name("digits-tiny.int8-cpu.onnx")
    with pytest.raises(UsageError, match="carries int8, not fp16"):
        build_engine(int8, "ort", BuildOptions(precision="fp16"), digits_artifacts["work"])
    with pytest.raises(UsageError, match="runs fp32, bf16, not int8"):
        build_engine(
            digits_artifacts["model"],
            "torch",
            BuildOptions(precision="int8"),
            digits_artifacts["work"],
        )
    with pytest.raises(UsageError, match="is the cpu INT8 form; tensorrt needs the tensorrt form"):
        from alexnet_deploy.engines.build import resolve_artifact

        resolve_artifact(int8, "int8", "tensorrt")


def test_missing_backend_package_names_the_extra(digits_artifacts, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # what Python does when it is not installed
    capability = get_backend("openvino").capability()
    assert not capability.available and capability.extra == "openvino"
    with pytest.raises(AlexnetDeployError) as err:
        build_engine(
            digits_artifacts["model"], "openvino", BuildOptions(), digits_artifacts["work"]
        )
    assert (
        "openvino is not installed" in str(err.value)
        and "alexnet-deploy[openvino]" in err.value.hint
    )


@pytest.mark.parametrize("backend", ["ort", pytest.param("openvino", marks=pytest.mark.openvino)])
def test_truncated_engine_is_refused(digits_artifacts, tmp_path, backend):
    engine, _ = build_engine(digits_artifacts["model"], backend, BuildOptions(), tmp_path)
    engine.path.write_bytes(engine.path.read_bytes()[:1000])
    with pytest.raises(AlexnetDeployError, match="corrupt or truncated"):
        get_backend(backend).runner(load_engine(engine.path.parent))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("runtime_version", "0.0.1", "was built with onnxruntime 0.0.1"),
        ("machine", {"cpu": "Some Other CPU", "features": {}}, "was built on another machine"),
        ("schema", "alexnet-deploy/engine/0", "is unreadable"),
    ],
)
def test_foreign_sidecar_is_refused(digits_artifacts, tmp_path, field, value, message):
    engine, _ = build_engine(digits_artifacts["model"], "ort", BuildOptions(), tmp_path)
    side = json.loads(engine.sidecar_path.read_text())
    side[field] = value
    engine.sidecar_path.write_text(json.dumps(side))
    with pytest.raises(AlexnetDeployError, match=message) as err:
        get_backend("ort").runner(load_engine(engine.path.parent))
    assert "rebuild" in (err.value.hint or "")


def test_missing_sidecar(tmp_path):
    with pytest.raises(AlexnetDeployError, match="sidecar .* not found"):
        load_engine(tmp_path)


@pytest.mark.parametrize(
    "backend", ["ort", "torch", pytest.param("openvino", marks=pytest.mark.openvino)]
)
def test_batch_outside_build_and_bad_inputs(digits_artifacts, tmp_path, backend):
    engine, _ = build_engine(
        digits_artifacts["model"], backend, BuildOptions(max_batch=4), tmp_path
    )
    images = digits_artifacts["heldout_images"]
    with get_backend(backend).runner(engine) as runner:
        assert runner.infer(images[:4]).shape == (4, 10)
        with pytest.raises(
            UsageError, match=r"batch 5 is outside what this engine was built for \(1..4\)"
        ):
            runner.infer(images[:5])
        with pytest.raises(UsageError, match="float32 numpy array, got float64"):
            runner.infer(images[:2].astype(np.float64))
        with pytest.raises(
            UsageError, match=r"got shape \[2, 3, 28, 28\], expected \[N, 3, 32, 32\]"
        ):
            runner.infer(images[:2, :, :28, :28])


def test_runner_must_be_activated(digits_artifacts):
    engine, _ = build_engine(
        digits_artifacts["model"], "ort", BuildOptions(), digits_artifacts["work"]
    )
    runner = get_backend("ort").runner(engine)
    with pytest.raises(RuntimeError, match="not active"):
        runner.infer(digits_artifacts["heldout_images"][:1])


def test_tensorrt_build_without_tensorrt_says_why(digits_artifacts):
    if get_backend("tensorrt").capability().available:
        pytest.skip("TensorRT is available here")
    with pytest.raises(AlexnetDeployError, match="backend 'tensorrt' is unavailable") as err:
        build_engine(
            digits_artifacts["model"], "tensorrt", BuildOptions(), digits_artifacts["work"]
        )
    assert "alexnet-deploy[tensorrt]" in err.value.hint


def test_gpu_providers_say_why_they_are_unavailable_and_keep_caches_in_the_work_dir(tmp_path):
    import onnxruntime as ort

    from alexnet_deploy.engines.ort import CUDA, TENSORRT_EP, OrtBackend

    for provider, name in ((CUDA, "ort-cuda"), (TENSORRT_EP, "ort-trt")):
        backend = OrtBackend(provider)
        assert backend.name == name
        capability = backend.capability()
        if provider not in ort.get_available_providers():
            assert (
                not capability.available
                and f"{provider} is not in this onnxruntime build" in capability.reason
            )
            assert capability.extra == "gpu"
    trt, cuda, cpu = OrtBackend(TENSORRT_EP)._providers(tmp_path / "engines" / "ort-trt-x")
    name, options = trt
    assert name == TENSORRT_EP and (cuda, cpu) == (CUDA, "CPUExecutionProvider")
    assert options["trt_engine_cache_path"] == str(
        tmp_path / "engines" / "ort-trt-x" / "trt-engine-cache"
    )
    assert options["trt_timing_cache_path"] == str(tmp_path / "engines")
    assert options["trt_engine_cache_enable"] and options["trt_timing_cache_enable"]


def test_every_declared_backend_is_registered():
    from alexnet_deploy.engines.registry import BACKEND_NAMES, _backends, capabilities

    assert tuple(_backends()) == BACKEND_NAMES
    assert set(capabilities()) == set(BACKEND_NAMES)


def test_concurrent_rebuilds_never_show_half_an_engine(digits_artifacts, tmp_path):
    """Two rebuilds of one engine at once (this crashed 1 in 3), and a reader watching: the
    engine directory holds a whole engine or none, never a sidecar without its model."""
    import threading

    from alexnet_deploy.engines.build import build_engine, load_engine
    from alexnet_deploy.engines.options import BuildOptions

    model, work = digits_artifacts["model"], tmp_path / "work"
    engine, _ = build_engine(model, "ort", BuildOptions(), work)
    target = engine.sidecar_path.parent
    errors, halves, done = [], [], threading.Event()

    def rebuild():
        try:
            for _ in range(4):
                build_engine(model, "ort", BuildOptions(), work, rebuild=True)
        except Exception as err:  # the test's point: nothing may raise
            errors.append(err)

    def watch():
        import os

        while not done.is_set():
            try:  # one version of the directory: the same one at the path before and after
                before = os.stat(target).st_ino
                names = set(os.listdir(target))
                after = os.stat(target).st_ino
            except FileNotFoundError:
                continue  # between the two renames: no engine, which a reader may see
            if before == after and "engine.json" in names and engine.path.name not in names:
                halves.append(names)

    watcher = threading.Thread(target=watch)
    watcher.start()
    builders = [threading.Thread(target=rebuild) for _ in range(2)]
    for thread in builders:
        thread.start()
    for thread in builders:
        thread.join()
    done.set()
    watcher.join()
    assert not errors and not halves
    assert load_engine(target).path.is_file()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # nothing left aside


def test_which_provider_ran_each_node_is_read_from_the_profiler(digits_artifacts):
    """A session asked for the CUDA provider on a build without it still runs, every node on
    the CPU: the silent fallback `build` now reports node by node (ort-cuda, ort-trt)."""
    import numpy as np

    from alexnet_deploy.artifacts import ArtifactSet
    from alexnet_deploy.engines.ort import nodes_by_provider

    model = ArtifactSet(digits_artifacts["model"]).int8("cpu")
    batch = np.zeros((2, 3, 32, 32), np.float32)
    on_cpu = nodes_by_provider(model, ["CPUExecutionProvider"], batch)
    assert list(on_cpu) == ["CPUExecutionProvider"] and len(on_cpu["CPUExecutionProvider"]) > 3
    assert any("QuantizeLinear" in n or "QLinear" in n or "Conv" in n
               for n in on_cpu["CPUExecutionProvider"])  # fmt: skip
    asked_gpu = nodes_by_provider(model, ["CUDAExecutionProvider", "CPUExecutionProvider"], batch)
    assert "CUDAExecutionProvider" not in asked_gpu and asked_gpu == on_cpu
