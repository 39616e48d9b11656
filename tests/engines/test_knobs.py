"""Runtime settings (spinning, memory arena, CPU pinning): applied to the real runtime, kept in
the sidecar, refused by a backend that has no such setting."""

from __future__ import annotations

import numpy as np
import pytest

from alexnet_deploy.engines.build import build_engine
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.ort import _session_options
from alexnet_deploy.engines.registry import get_backend
from alexnet_deploy.errors import UsageError


@pytest.mark.parametrize("spinning", [True, False])
def test_ort_session_options_carry_the_knobs(spinning):
    so = _session_options(None, False, knobs={"spinning": spinning, "mem_arena": not spinning})
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == str(int(spinning))
    assert so.enable_cpu_mem_arena is (not spinning)
    default = _session_options(None, False)
    assert default.enable_cpu_mem_arena is True
    with pytest.raises(Exception, match="does not have configuration"):
        default.get_session_config_entry("session.intra_op.allow_spinning")  # runtime default


def test_ort_engine_with_knobs_runs_and_gives_the_same_logits(digits_artifacts, tmp_path):
    model = digits_artifacts["model"]
    plain, _ = build_engine(model, "ort", BuildOptions(), tmp_path)
    tuned, _ = build_engine(model, "ort", BuildOptions(spinning=False, mem_arena=False), tmp_path)
    assert plain.path != tuned.path  # the settings are part of the engine's identity
    assert (
        tuned.sidecar.options["spinning"] is False and tuned.sidecar.options["mem_arena"] is False
    )
    x = np.random.default_rng(0).standard_normal((3, *plain.sidecar.image_shape)).astype(np.float32)
    with get_backend("ort").runner(plain) as a, get_backend("ort").runner(tuned) as b:
        np.testing.assert_allclose(a.infer(x), b.infer(x), rtol=1e-5, atol=1e-6)
        assert b.session.get_session_options().enable_cpu_mem_arena is False


@pytest.mark.openvino
@pytest.mark.parametrize("pinning", [True, False])
def test_openvino_pinning_reaches_the_compiled_model(digits_artifacts, tmp_path, pinning):
    engine, _ = build_engine(
        digits_artifacts["model"], "openvino", BuildOptions(cpu_pinning=pinning), tmp_path
    )
    with get_backend("openvino").runner(engine) as runner:
        assert runner.compiled.get_property("ENABLE_CPU_PINNING") is pinning
        x = np.zeros((1, *engine.sidecar.image_shape), np.float32)
        assert runner.infer(x).shape[0] == 1


@pytest.mark.parametrize(
    ("backend", "options", "message"),
    [
        ("ort", BuildOptions(cpu_pinning=True), "--cpu-pinning is not a setting of backend 'ort'"),
        pytest.param(
            "openvino",
            BuildOptions(spinning=False),
            "--spinning is not a setting of backend 'openvino'",
            marks=pytest.mark.openvino,
        ),
        ("torch", BuildOptions(mem_arena=False), "--mem-arena is not a setting of backend 'torch'"),
    ],
)
def test_a_knob_the_backend_lacks_is_refused(digits_artifacts, tmp_path, backend, options, message):
    with pytest.raises(UsageError, match=message):
        build_engine(digits_artifacts["model"], backend, options, tmp_path)
    assert not (tmp_path / "engines").exists()


def test_cli_build_takes_the_knobs(cli, digits_artifacts, tmp_path):
    result = cli(
        "build",
        digits_artifacts["model"],
        "--no-spinning",
        "--no-mem-arena",
        "--work-dir",
        tmp_path,
    )
    assert result.exit_code == 0, result.stderr
    wrong = cli("build", digits_artifacts["model"], "--cpu-pinning", "--work-dir", tmp_path)
    assert wrong.exit_code == 2 and "Hint: ort takes: --spinning, --mem-arena" in wrong.stderr
