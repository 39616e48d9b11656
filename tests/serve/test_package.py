"""package --triton: configs from the artifacts, validated with Triton's own protobuf schema."""

from __future__ import annotations

import json

import onnx
import pytest

pytest.importorskip(
    "tritonclient.grpc",
    reason="tritonclient is not installed (pip install 'alexnet-deploy[triton]')",
)

from alexnet_deploy.artifacts import ArtifactSet  # noqa: E402
from alexnet_deploy.errors import AlexnetDeployError  # noqa: E402
from alexnet_deploy.serve.triton_config import model_config_pb2, parse_config  # noqa: E402


@pytest.fixture(scope="module")
def artifacts(digits_artifacts):
    """The trained network's FP32 model with FP16 and INT8 (cpu form) artifacts beside it."""
    return digits_artifacts["model"]


def test_repository_layout_and_configs(artifacts, cli, tmp_path):
    repo = tmp_path / "repo"
    result = cli(
        "package",
        "--triton",
        repo,
        "--model",
        artifacts,
        "--work-dir",
        tmp_path / "work",
        "--max-batch",
        "16",
        "--instances",
        "2",
        "--threads",
        "1",
    )
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in repo.iterdir() if p.is_dir())  # and the tool's marker
    assert (
        "alexnet_digits_tiny_fp32_onnx" in names
        and "alexnet_digits_tiny_int8_onnx" in names
        and "alexnet_digits_tiny_fp16_onnx" in names
    )
    pb = model_config_pb2()
    for name in names:
        config = parse_config((repo / name / "config.pbtxt").read_text())
        assert config.name == name and config.max_batch_size == 16
        assert list(config.input[0].dims) == [3, 32, 32] and config.input[0].name == "input"
        assert list(config.output[0].dims) == [10] and config.output[0].name == "logits"
        assert list(config.dynamic_batching.preferred_batch_size) == [8]
        assert (
            config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
            and config.instance_group[0].count == 2
        )
        files = sorted(p.name for p in (repo / name / "1").iterdir())
        if name.endswith("_onnx"):
            assert config.platform == "onnxruntime_onnx" and files == ["model.onnx"]
            assert config.parameters["intra_op_thread_count"].string_value == "1"
        else:
            assert config.backend == "openvino" and files == ["model.bin", "model.xml"]


def test_an_invalid_field_fails_the_schema():
    with pytest.raises(AlexnetDeployError, match="does not match Triton's schema"):
        parse_config('name: "m"\nmax_batch_sizes: 4\n')
    with pytest.raises(AlexnetDeployError, match="does not match Triton's schema"):
        parse_config('name: "m"\ninstance_group [{ kind: KIND_TPU }]\n')


def _trt_engine(work, name: str, artifact, profile="1:4:32", sha: str | None = None):
    """A TensorRT engine directory as 'build --backend tensorrt' leaves it (the plan's bytes
    are not read: config generation needs no GPU)."""
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.engines.sidecar import Sidecar
    from alexnet_deploy.fileio import sha256_file

    engine_dir = work / "engines" / name
    engine_dir.mkdir(parents=True)
    (engine_dir / "model.plan").write_bytes(f"plan bytes of {name}".encode())
    Sidecar(
        backend="tensorrt",
        runtime="tensorrt",
        runtime_version="10.16.0",
        precision="fp16",
        artifact=str(artifact),
        artifact_sha256=sha or sha256_file(artifact),
        engine_file="model.plan",
        engine_sha256=sha256_file(engine_dir / "model.plan"),
        input_name="input",
        image_shape=[3, 32, 32],
        num_classes=10,
        options=BuildOptions(precision="fp16").as_dict(),
        details={"gpu": {"name": "NVIDIA H200"}, "profile": profile},
    ).write(engine_dir / "engine.json")
    return engine_dir


def test_tensorrt_engine_is_packaged_from_its_sidecar(artifacts, cli, tmp_path):
    engine_dir = _trt_engine(tmp_path / "work", "tensorrt-fp16-abc", ArtifactSet(artifacts).fp16)
    repo = tmp_path / "repo"
    assert (
        cli(
            "package",
            "--triton",
            repo,
            "--model",
            artifacts,
            "--work-dir",
            tmp_path / "work",
            "--no-openvino",
        ).exit_code
        == 0
    )
    config = parse_config((repo / "alexnet_digits_tiny_fp16_trt" / "config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 32
    assert config.instance_group[0].kind == model_config_pb2().ModelInstanceGroup.KIND_GPU
    # the same engine without its sidecar is refused, and nothing is written
    (engine_dir / "engine.json").unlink()
    result = cli(
        "package",
        "--triton",
        tmp_path / "repo2",
        "--model",
        artifacts,
        "--work-dir",
        tmp_path / "work",
        "--no-openvino",
    )
    assert result.exit_code == 1 and "has no sidecar" in result.stderr
    assert not (tmp_path / "repo2").exists()


def test_one_model_per_tensorrt_engine_of_this_model(artifacts, cli, tmp_path):
    """Two FP16 plans of this model (the newest is packaged, the other listed), and another
    model's plan (left out): no name is written twice (this crashed with FileExistsError)."""
    import os

    work = tmp_path / "work"
    fp16 = ArtifactSet(artifacts).fp16
    old = _trt_engine(work, "tensorrt-fp16-old", fp16)
    os.utime(old / "engine.json", (1, 1))
    new = _trt_engine(work, "tensorrt-fp16-new", fp16, profile="1:8:16")
    _trt_engine(work, "tensorrt-fp16-other", fp16, sha="f" * 64)
    repo = tmp_path / "repo"
    result = cli(
        "package", "--triton", repo, "--model", artifacts, "--work-dir", work, "--no-openvino"
    )
    assert result.exit_code == 0, result.stderr
    trt = [p.name for p in repo.iterdir() if p.name.endswith("_trt")]
    assert trt == ["alexnet_digits_tiny_fp16_trt"]
    config = parse_config((repo / "alexnet_digits_tiny_fp16_trt" / "config.pbtxt").read_text())
    assert config.max_batch_size == 16  # the newest engine's profile
    assert (repo / "alexnet_digits_tiny_fp16_trt" / "1" / "model.plan").read_bytes() == (
        new / "model.plan"
    ).read_bytes()


def test_tensorrt_sidecar_without_a_profile_is_a_clear_error(artifacts, cli, tmp_path):
    work = tmp_path / "work"
    engine = _trt_engine(work, "tensorrt-fp16-x", ArtifactSet(artifacts).fp16)
    side = json.loads((engine / "engine.json").read_text())
    del side["details"]["profile"]
    (engine / "engine.json").write_text(json.dumps(side))
    result = cli(
        "package", "--triton", tmp_path / "r", "--model", artifacts, "--work-dir", work,
        "--no-openvino",
    )  # fmt: skip
    assert result.exit_code == 1 and "no readable optimization profile" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()


def test_existing_output_is_refused_without_force(artifacts, cli, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "keep.txt").write_text("mine")
    result = cli("package", "--triton", repo, "--model", artifacts, "--work-dir", tmp_path / "w")
    assert (
        result.exit_code == 1 and "already exists" in result.stderr and (repo / "keep.txt").exists()
    )


def test_missing_artifact(cli, tmp_path):
    result = cli("package", "--triton", tmp_path / "repo", "--model", tmp_path / "missing.onnx")
    assert result.exit_code == 1 and "not found" in result.stderr


def test_fixed_batch_artifact_is_refused(artifacts, cli, tmp_path):
    """A batch the graph fixes above 1 (a fixed batch of 1 is served with max_batch_size 0:
    tests/test_any_model_trial.py)."""
    model = onnx.load(str(artifacts))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    result = cli(
        "package", "--triton", tmp_path / "repo", "--model", fixed, "--work-dir", tmp_path / "w"
    )
    assert (
        result.exit_code == 1
        and "max_batch_size 64 > 0 needs a dynamic batch axis" in result.stderr
    )
    assert not (tmp_path / "repo").exists()


def test_repository_is_readable_by_other_users(artifacts, cli, tmp_path):
    """A Triton server running as another user must read the repository: directories came
    out 0700 (mkdtemp's mode) whatever the umask."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        repo = tmp_path / "repo"
        result = cli(
            "package", "--triton", repo, "--model", artifacts, "--work-dir", tmp_path / "w"
        )
        assert result.exit_code == 0, result.stderr
    finally:
        os.umask(old)
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [repo, *repo.rglob("*")]}
    assert {oct(m) for p, m in modes.items() if p.is_dir()} == {"0o755"}
    assert {oct(m) for p, m in modes.items() if p.is_file()} == {"0o644"}


@pytest.mark.parametrize(
    ("version_compatible", "target", "code", "said"),
    [
        (False, ("--triton-tensorrt", "10.16.0"), 0, "runs on the server's TensorRT 10.16.0 (TensorRT 10.16.0 only)"),
        (False, ("--triton-release", "25.12"), 1, "the Triton server has 10.13.3.9"),
        (False, ("--triton-release", "19.01"), 2, "(trtllm-python-py3 containers 24.05,"),
        (False, (), 0, "the server's TensorRT was not given"),
        (True, ("--triton-tensorrt", "10.17.1"), 0, "(TensorRT 10.x from 10.16.0 on)"),
        (True, ("--triton-tensorrt", "11.4.0"), 1, "runs on TensorRT 10.x from 10.16.0"),
    ],
)  # fmt: skip
def test_tensorrt_plans_are_checked_against_the_servers_tensorrt(
    artifacts, cli, tmp_path, version_compatible, target, code, said
):
    """A plan runs only on the TensorRT that built it (10.16.0 here), or with
    --version-compatible on later releases of its major: a server it cannot run on is refused
    naming both versions and the fix, nothing written; a release of Triton's trtllm container is
    looked up in NVIDIA's table, an unknown one lists the known ones."""
    engine_dir = _trt_engine(tmp_path / "work", "tensorrt-fp16-abc", ArtifactSet(artifacts).fp16)
    sidecar = json.loads((engine_dir / "engine.json").read_text())
    sidecar["options"]["version_compatible"] = version_compatible
    (engine_dir / "engine.json").write_text(json.dumps(sidecar))
    out = tmp_path / "repo"
    result = cli(
        "package", "--triton", out, *target, "--model", artifacts, "--work-dir",
        tmp_path / "work", "--no-openvino",
    )  # fmt: skip
    assert result.exit_code == code, result.stderr
    assert said in (result.stdout if code == 0 else result.stderr)
    assert out.exists() == (code == 0) and "Traceback" not in result.stderr
    if code == 1:
        assert "--version-compatible" in result.stderr
