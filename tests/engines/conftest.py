from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="package")
def digits_artifacts(digits, tmp_path_factory):
    """The trained network's FP32 model with its FP16 and INT8 (cpu form) artifacts beside it,
    made by the real commands; the torch backend learns the network's variant."""
    from alexnet_deploy.calib.pipeline import DataRequest, calibrate, convert_fp16
    from alexnet_deploy.models.variants import register_variant
    from tests.digits import DIGITS

    register_variant(DIGITS)
    root = tmp_path_factory.mktemp("engines")
    model = root / "digits-tiny.onnx"
    shutil.copy(digits["onnx"], model)
    convert_fp16(model, DataRequest(data=str(digits["heldout_dir"]), eval_size=64))
    calibrate(
        model,
        DataRequest(
            data=str(digits["train_dir"]),
            calib_size=128,
            eval_data=str(digits["heldout_dir"]),
            eval_size=64,
        ),
        targets=("cpu",),
    )
    return {**digits, "model": model, "torch_model": digits["model"], "work": root / "work"}
