"""Bad option values and odd models through the real CLI (issue #27): every numeric option is
refused at parse time, before any work, with one 'Error:' line naming it; a foreign model with
a fixed batch, two inputs, an NHWC input or another number of classes, an empty array and a
partial last batch each end in one line (or work), leaving every file that was there before
byte for byte as it was. The foreign models are tiny PyTorch CNNs exported in the test
(tests/foreign_models.py)."""

from __future__ import annotations

import shutil
import typing

import numpy as np
import pytest

from alexnet_deploy.cli import app
from tests import foreign_models as F
from tests.test_faults import _snapshot, assert_clean_failure


def _numeric(hint) -> bool:
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    return any(t in (int, float) for t in (base, *typing.get_args(base), *_inner(base)))


def _inner(base) -> tuple:
    return tuple(a for arg in typing.get_args(base) for a in typing.get_args(arg))


def test_every_numeric_option_has_a_parse_time_rule():
    """An int or float option without a rule lets NaN, -1 or 0 through to the work."""
    unchecked = []
    for command in app.registered_commands:
        hints = typing.get_type_hints(command.callback, include_extras=True)
        for name, hint in hints.items():
            if name == "return" or not _numeric(hint):
                continue
            infos = typing.get_args(hint)[1:]
            if not any(getattr(info, "callback", None) for info in infos):
                unchecked.append(f"{command.callback.__name__} {name}")
    assert not unchecked, unchecked


# --- bad values: exit 2 at parse time (the model path does not even exist: no work began) ---


BAD_VALUES = [
    (("export", "--seed", "-1"), "--seed must be >= 0 and <= 4294967295, got -1"),
    (("export", "--seed", "4294967296"), "--seed must be >= 0"),
    (("export", "--opset", "12"), "--opset must be >= 13"),
    (("calibrate", "{m}", "--calib-size", "0"), "--calib-size must be at least 1, got 0"),
    (("calibrate", "{m}", "--eval-size", "-3"), "--eval-size must be at least 1"),
    (("calibrate", "{m}", "--batch-size", "0"), "--batch-size must be at least 1"),
    (("calibrate", "{m}", "--max-top1-drop", "nan"), "--max-top1-drop must be >= 0 and <= 100"),
    (("calibrate", "{m}", "--max-top1-drop", "101"), "--max-top1-drop must be >= 0 and <= 100"),
    (("calibrate", "{m}", "--input-size", "0"), "--input-size must be at least 1"),
    (
        ("calibrate", "{m}", "--std", "0,0,0"),
        "--std values divide the pixels: each must be above 0",
    ),
    (("calibrate", "{m}", "--std", "1,inf,1"), "--std takes three finite comma-separated numbers"),
    (("calibrate", "{m}", "--mean", "nan,0,0"), "--mean takes three finite comma-separated"),
    (("calibrate", "{m}", "--mean", "0.5,0.5"), "--mean takes three finite comma-separated"),
    (("fp16", "{m}", "--seed", "-1"), "--seed must be >= 0"),
    (("build", "{m}", "--max-batch", "0"), "--max-batch must be at least 1"),
    (("build", "{m}", "--threads", "-1"), "--threads must be at least 1"),
    (("build", "{m}", "--workspace-mb", "0"), "--workspace-mb must be at least 1"),
    (("build", "{m}", "--batch", "8:4:16"), "--batch 8:4:16: min 8 is greater than opt 4"),
    (("bench", "--warmup-seconds", "-1"), "--warmup-seconds must be a finite number >= 0"),
    (("bench", "--min-seconds", "0"), "--min-seconds must be a finite number above 0"),
    (("bench", "--stability", "nan"), "--stability must be a finite number above 0"),
    (("bench", "--server-bound-ms", "inf"), "--server-bound-ms must be a finite number above"),
    (("bench", "--repeat", "0"), "--repeat must be at least 1"),
    (("bench", "--warmup-iterations", "-1"), "--warmup-iterations must be >= 0"),
    (("tune", "--max-p99-ms", "0"), "--max-p99-ms must be a finite number above 0"),
    (
        ("tune", "--min-seconds", "5", "--max-seconds", "1"),
        "--min-seconds 5 is above --max-seconds 1",
    ),
    (("tune", "--max-top1-drop", "-1"), "--max-top1-drop must be >= 0"),
    (("package", "--triton", "{tmp}/repo", "--instances", "0"), "--instances must be at least 1"),
    (("package", "--triton", "{tmp}/repo", "--threads", "0"), "--threads must be at least 1"),
    (("gate", "{m}", "{m}", "--top1-budget", "-1"), "--top1-budget must be >= 0"),
    (("gate", "{m}", "{m}", "--measure-noise", "-1"), "--measure-noise must be >= 0"),
    (("predict", "{tmp}", "--top", "0"), "--top must be at least 1, got 0"),
    (("compare", "{m}", "{m}", "--count", "0"), "--count must be at least 1, got 0"),
    (("compare", "{m}", "{m}", "--batch-size", "-8"), "--batch-size must be at least 1"),
    (("plan", "{m}", "--batch", "1", "--batch", "0"), "--batch must be at least 1, got 0"),
    (("plan", "{m}", "--max-measured", "0"), "--max-measured must be at least 1"),
    (("plan", "{m}", "--max-seconds", "nan"), "--max-seconds must be a finite number above 0"),
    (("plan", "{m}", "--min-seconds", "2", "--max-seconds", "1"), "--min-seconds 2 is above"),
]


@pytest.mark.parametrize(("args", "message"), BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_a_bad_option_value_is_refused_before_any_work(cli, tmp_path, args, message):
    kept = tmp_path / "kept.txt"
    kept.write_text("a file that was there before")
    before = _snapshot(tmp_path)
    missing = tmp_path / "missing.onnx"  # parse-time: never reached, so never "not found"
    argv = [a.format(m=missing, tmp=tmp_path) for a in args]
    if "-o" not in argv and argv[0] in ("export",):
        argv += ["-o", str(tmp_path / "m.onnx")]
    if argv[0] in ("bench", "tune", "package", "gate", "predict", "plan", "build"):
        argv += ["--work-dir", str(tmp_path / "w")]
    result = cli(*argv)
    assert_clean_failure(result, 2, message, before, [tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]  # nothing made


# --- foreign models: one line each, or the work done where it can be ---


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    root = tmp_path_factory.mktemp("foreign")
    models = {
        "dynamic": F.export(root / "dynamic.onnx"),
        "batch1": F.export(root / "batch1.onnx", batch=1),
        "batch4": F.export(root / "batch4.onnx", batch=4),
        "two_inputs": F.export(root / "two-inputs.onnx", two_inputs=True),
        "nhwc": F.export(root / "nhwc.onnx", nhwc=True),
        "classes1000": F.export(root / "classes1000.onnx", classes=1000),
        "pixels": F.pixel_model(root / "pixels.onnx"),
    }
    data = {
        "npy": F.images_npy(root / "images.npy", 24),
        "nhwc_npy": F.images_npy(root / "images-nhwc.npy", 24, nhwc=True),
        "pngs": F.png_folder(root / "pngs", 12),
    }
    empty = root / "empty.npy"
    np.save(empty, np.zeros((0, 3, F.SIZE, F.SIZE), np.float32))
    return {**models, **data, "empty": empty, "root": root}


def _copy(foreign, name, tmp_path):
    """A private copy of a foreign model (outputs land beside it)."""
    path = tmp_path / foreign[name].name
    shutil.copy(foreign[name], path)
    return path


def _run_refused(cli, tmp_path, argv, code, message):
    before = _snapshot(tmp_path)
    result = cli(*argv)
    assert_clean_failure(result, code, message, before, [tmp_path])
    return result


@pytest.mark.parametrize("command", ["calibrate", "fp16", "compare"])
def test_a_fixed_batch_of_one_runs_one_image_at_a_time(cli, foreign, tmp_path, command):
    """ONNX Runtime's 'Got 8 Expected 1' was a traceback: now the data runs at batch 1."""
    model = _copy(foreign, "batch1", tmp_path)
    argv = {
        "calibrate": ("calibrate", model, "--target", "cpu", "--batch-size", "8"),
        "fp16": ("fp16", model),
        "compare": ("compare", model, model),
    }[command]
    result = cli(*argv, "--data", foreign["npy"])
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    if command == "compare":
        assert "(one batch of 1)" in result.stderr
    else:
        written = {"calibrate": "batch1.int8-cpu.onnx", "fp16": "batch1.fp16.onnx"}[command]
        assert (tmp_path / written).is_file()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("calibrate", "has a fixed batch of 4 (input 'x' [4, 3, 16, 16]); the last batch"),
        ("compare", "has a fixed batch of 4"),
        ("fp16", "has a fixed batch of 4"),
    ],
)
def test_a_larger_fixed_batch_is_refused_naming_it(cli, foreign, tmp_path, command, message):
    model = _copy(foreign, "batch4", tmp_path)
    args = (model, model) if command == "compare" else (model,)
    result = _run_refused(cli, tmp_path, (command, *args, "--data", foreign["npy"]), 1, message)
    assert "dynamic_axes={'x': {0: 'batch'}}" in result.stderr  # the fix, for this model


ENGINE_COMMANDS = {
    "bench": lambda m: ("bench", "--model", m, "--backend", "ort", "--precision", "fp32",
                        "--batch", "1", "--no-direct", "--no-roofline"),
    "build": lambda m: ("build", m, "--backend", "ort"),
    "package": lambda m: ("package", "--triton", m.parent / "repo", "--model", m,
                          "--no-openvino"),
    "plan": lambda m: ("plan", m, "--data", m.parent / "none.npy", "-o", m.parent / "plan"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("batch4", "has a fixed batch of 4 (input 'x' [4, 3, 16, 16]); "),  # 1 runs
        ("two_inputs", "has 2 graph inputs (['x', 'y']); expected one image input"),
        ("nhwc", "channels last (NHWC), a layout this tool does not feed"),
    ],
)
@pytest.mark.parametrize("command", sorted(ENGINE_COMMANDS))
def test_odd_models_are_refused_by_the_engine_commands(
    cli, foreign, tmp_path, command, model, message
):
    path = _copy(foreign, model, tmp_path)
    argv = (*ENGINE_COMMANDS[command](path), "--work-dir", tmp_path / "w")
    _run_refused(cli, tmp_path, argv, 1, message)
    assert not (tmp_path / "repo").exists() and not (tmp_path / "plan").exists()


@pytest.mark.parametrize(
    ("model", "data", "extra", "message"),
    [
        ("two_inputs", "npy", (), "has 2 graph inputs"),
        ("nhwc", "pngs", F.PREPROCESSING_FLAGS, "input 'x' has dims ['batch', 16, 16, 3]: "
         "channels last (NHWC)"),
        ("nhwc", "nhwc_npy", (), "channels last (NHWC)"),
        ("dynamic", "empty", (), "empty.npy has 0 usable sample(s)"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["calibrate", "compare"])
def test_odd_models_and_data_in_calibrate_and_compare(
    cli, foreign, tmp_path, command, model, data, extra, message
):
    path = _copy(foreign, model, tmp_path)
    if command == "compare":
        extra = ()  # compare has no preprocessing flags: the layout is refused first
    args = (path, path) if command == "compare" else (path, "--target", "cpu")
    _run_refused(cli, tmp_path, (command, *args, "--data", foreign[data], *extra), 1, message)


def test_compare_refuses_models_with_other_class_counts(cli, foreign, tmp_path):
    """A 10-class reference and a 1000-class candidate failed in numpy broadcasting."""
    reference = _copy(foreign, "dynamic", tmp_path)
    candidate = _copy(foreign, "classes1000", tmp_path)
    out = tmp_path / "out"
    result = _run_refused(
        cli, tmp_path,
        ("compare", reference, candidate, "--data", foreign["npy"], "--out", out), 2,
        f"{candidate} is not a version of {reference}: it has 1000 classes, the reference 10",
    )  # fmt: skip
    assert "the FP32 model it was made from" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("command", ["predict", "package"])
def test_a_pixels_model_is_refused_naming_the_command_run(cli, foreign, tmp_path, command):
    """It was refused with 'calibrate, build and bench take the float export'."""
    model = _copy(foreign, "pixels", tmp_path)
    argv = {
        "predict": ("predict", foreign["pngs"], "--model", model),
        "package": ("package", "--triton", tmp_path / "repo", "--model", model),
    }[command]
    result = _run_refused(
        cli, tmp_path, (*argv, "--work-dir", tmp_path / "w"), 1,
        f"exported with --preprocess): {command} takes the float export",
    )  # fmt: skip
    assert "calibrate, build and bench" not in result.stderr
    assert not (tmp_path / "repo").exists()


# --- partial last batch: entropy and auto work, the ranges as one batch gives them ---


@pytest.mark.parametrize("method", ["entropy", "auto"])
def test_a_partial_last_batch_calibrates_with_histogram_methods(cli, foreign, tmp_path, method):
    """12 calibration samples in batches of 5: ONNX Runtime's histogram collector stacked the
    batches' outputs and failed on the last one (2 samples)."""
    model = _copy(foreign, "dynamic", tmp_path)
    result = cli(
        "calibrate", model, "--data", foreign["npy"], "--target", "cpu", "--method", method,
        "--batch-size", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "dynamic.int8-cpu.onnx").is_file()


def test_histogram_ranges_do_not_depend_on_the_batching(foreign, tmp_path):
    from alexnet_deploy.calib.config import CalibrationConfig
    from alexnet_deploy.calib.ranges import collect_ranges, uniform_batch
    from alexnet_deploy.calib.samples import Split

    assert [uniform_batch(12, b) for b in (5, 12, 32, 1)] == [4, 12, 12, 1]
    assert uniform_batch(13, 5) == 1
    images = np.load(foreign["npy"])[:12]
    split = Split(images, [f"s{i}" for i in range(12)], [""] * 12)
    config = CalibrationConfig(method="entropy")
    ranges = [
        collect_ranges(foreign["dynamic"], "sha", F.INPUT, split, "data", config,
                       tmp_path / f"cache-{size}", size).load()
        for size in (5, 12)
    ]  # fmt: skip
    for name, data in ranges[1].items():
        np.testing.assert_array_equal(ranges[0][name].range_value, data.range_value)


# --- messages name only the options the command has ---


def test_compare_count_above_the_images_is_a_cap(cli, foreign, tmp_path):
    """--count is documented as capped; it was refused, naming --calib-size."""
    model = _copy(foreign, "dynamic", tmp_path)
    result = cli("compare", model, model, "--data", foreign["npy"], "--count", "1000")
    assert result.exit_code == 0, result.stderr
    assert "24 images" in result.stdout and "--calib-size" not in result.stderr


def test_fp16_eval_size_above_the_images_is_a_cap(cli, foreign, tmp_path):
    model = _copy(foreign, "dynamic", tmp_path)
    result = cli("fp16", model, "--data", foreign["npy"], "--eval-size", "1000")
    assert result.exit_code == 0, result.stderr
    assert "measuring fidelity on 24 samples" in result.stderr  # all of them, not refused
    assert "--calib-size" not in result.stderr


@pytest.mark.parametrize(
    ("command", "named"), [("compare", False), ("calibrate", True), ("fp16", True)]
)
def test_unknown_preprocessing_hint_names_flags_only_where_they_exist(
    cli, foreign, tmp_path, command, named
):
    model = _copy(foreign, "dynamic", tmp_path)
    args = (model, model) if command == "compare" else (model,)
    result = _run_refused(
        cli, tmp_path, (command, *args, "--data", foreign["pngs"]), 2,
        "its image preprocessing is unknown",
    )  # fmt: skip
    assert ("--input-size" in result.stderr) is named
    assert "float32 .npy/.npz array" in result.stderr or named
