"""A new user's trial of issue #23's work (their own models through the README's "Your own
model" steps): each finding, fixed, with the test that failed before.

Real components throughout: tiny CNNs exported by PyTorch (tests/foreign_models.py, and one
whose graph fixes its batch at 1) imported by the tool's own code, run in ONNX Runtime and
OpenVINO, PNG files decoded by Pillow, Triton configs parsed with Triton's own schema, a user's
module imported from a file on disk."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from alexnet_deploy.importer import import_model
from alexnet_deploy.modelcard import CardOptions
from alexnet_deploy.onnx_model import read_artifact
from tests import foreign_models as F
from tests.test_faults import _snapshot, assert_clean_failure

# bench and bench --end-to-end as short as they go: these tests check what is measured, not how fast
QUICK = ("--min-seconds", "0.02", "--max-seconds", "0.05", "--warmup-iterations", "1",
         "--min-iterations", "3", "--no-roofline")  # fmt: skip


class BatchOfOne(torch.nn.Module):
    """A graph that fixes its batch at 1: it flattens to [1, -1] (a Reshape to a constant), so
    import cannot make the batch dynamic (ONNX Runtime fails the copy at batch 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.fc = torch.nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)).reshape(1, -1))


def _export_batch_of_one(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            BatchOfOne().eval(), (torch.zeros(1, 3, F.SIZE, F.SIZE),), str(path),
            input_names=["x"], output_names=["logits"], opset_version=17, dynamo=False,
        )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """The user's models, imported with a card (input size 16): ``dynamic`` (opset 17, a
    dynamic batch), ``fixed`` (the graph fixes batch 1), ``crop_none`` (the dynamic one with
    --crop none); ``foreign``: a model with no card; ``pngs``: 12 PNG files to feed them."""
    root = tmp_path_factory.mktemp("trial")
    user = F.export(root / "user.onnx")
    card = CardOptions(input_size=F.SIZE, resize_size=F.SIZE)
    models = {
        "dynamic": import_model(user, root / "dynamic.onnx", card).path,
        "fixed": import_model(_export_batch_of_one(root / "b1.onnx"), root / "fixed.onnx", card).path,
        "crop_none": import_model(
            user, root / "crop-none.onnx", CardOptions(input_size=F.SIZE, crop="none")
        ).path,
    }
    return {**models, "foreign": user, "pngs": F.png_folder(root / "pngs"), "root": root}


def _not_measured(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Not measured:")]


# 1. a graph that fixes its batch at 1: build, bench at batch 1, predict and package take it


@pytest.mark.openvino
@pytest.mark.parametrize("backend", ["ort", "openvino"])
def test_a_fixed_batch_of_one_builds_and_predicts(cli, trial, tmp_path, backend):
    """Before: build and predict refused it ("engines need a dynamic batch axis"), while
    docs/any-model.md said a batch of 1 runs everywhere, one image at a time."""
    assert read_artifact(trial["fixed"]).fixed_batch == 1
    work = tmp_path / "w"
    built = cli("build", trial["fixed"], "--backend", backend, "--work-dir", work)
    assert built.exit_code == 0, built.stderr
    sidecar = json.loads(next(work.glob(f"engines/{backend}-*/engine.json")).read_text())
    assert sidecar["options"]["max_batch"] == 1  # an engine for the graph's one batch
    images = sorted(trial["pngs"].iterdir())[:3]
    result = cli(
        "predict", *images, "--model", trial["fixed"], "--backend", backend, "--format", "json",
        "--work-dir", work,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    classified = json.loads(result.stdout)["images"]
    assert len(classified) == 3 and all(len(image["top"]) == 5 for image in classified)


@pytest.mark.openvino
def test_a_fixed_batch_of_one_benches_at_batch_one_and_names_the_batch_it_refuses(
    cli, trial, tmp_path
):
    """Before: every row refused (exit 2, "engines need a dynamic batch axis"). After: batch 1
    measured on both runtimes; batch 2 not measured, one line each naming the fixed batch, and
    listed in the report."""
    out = tmp_path / "report"
    result = cli(
        "bench", "--model", trial["fixed"], "--data", trial["pngs"], "--backend", "ort,openvino",
        "--precision", "fp32", "--batch", "1,2", "--no-direct", *QUICK,
        "--work-dir", tmp_path / "w", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "bench-summary.json").read_text())
    assert {(r["backend"], r["batch"], r["status"] != "failed") for r in report["rows"]} == {
        ("ort", 1, True),
        ("openvino", 1, True),
    }
    lines = _not_measured(result.stderr)
    assert len(lines) == 2 and all("the graph fixes the batch at 1" in line for line in lines)
    assert "ort fp32 b2 latency: the graph fixes the batch at 1 (input 'x' [1, 3, 16, 16])" in (
        lines[0]
    )
    assert [n["what"] for n in report["not_measured"]] == [
        "ort fp32 b2 latency",
        "openvino fp32 b2 latency",
    ]
    markdown = (out / "bench-summary.md").read_text()
    assert "## Not measured" in markdown and "- openvino fp32 b2 latency: the graph fixes" in (
        markdown
    )


def test_a_fixed_batch_of_one_is_served_unbatched(cli, trial, tmp_path):
    """Before: package refused it ("max_batch_size 64 > 0 needs a dynamic batch axis"). After:
    max_batch_size 0 (Triton does not batch it) with the model's dims in full, and no dynamic
    batching, as Triton's own schema reads the config back."""
    from alexnet_deploy.serve.triton_config import parse_config

    repo = tmp_path / "repo"
    result = cli(
        "package", "--triton", repo, "--model", trial["fixed"], "--no-openvino",
        "--work-dir", tmp_path / "w",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    config = parse_config((repo / "b1_fp32_onnx" / "config.pbtxt").read_text())  # its name: b1
    assert config.max_batch_size == 0
    assert list(config.input[0].dims) == [1, 3, F.SIZE, F.SIZE]
    assert list(config.output[0].dims) == [1, 10]
    assert not config.HasField("dynamic_batching")
    # 6. the skipped artifacts name the exact command that makes them, with the model's path
    printed = result.stdout + result.stderr
    assert f"make it with 'alexnet-deploy fp16 {trial['fixed']}'" in printed
    assert f"make it with 'alexnet-deploy calibrate {trial['fixed']}'" in printed


# 2. bench without --backend on an imported model: torch left out, with one note


def test_bench_s_default_backends_leave_torch_out_of_an_imported_model(cli, trial, tmp_path):
    """Before: the default backends included torch, whose row failed (exit 3: "an imported
    model has none"). After: left out with one line; named explicitly, it is refused as before."""
    common = (
        "bench", "--model", trial["dynamic"], "--data", trial["pngs"], "--precision", "fp32",
        "--batch", "1", "--no-direct", *QUICK, "--work-dir", tmp_path / "w",
    )  # fmt: skip
    result = cli(*common, "--out", tmp_path / "default")
    assert result.exit_code == 0, result.stderr
    lines = _not_measured(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(
        "Not measured: torch: left out of the default backends:"
    )
    assert "is an imported ONNX model" in lines[0]
    report = json.loads((tmp_path / "default" / "bench-summary.json").read_text())
    assert "torch" not in {r["backend"] for r in report["rows"]} and report["rows"]
    named = cli(*common, "--backend", "ort,torch", "--out", tmp_path / "named")
    assert named.exit_code == 3 and "Failed: torch fp32 b1 latency" in named.stderr


# 3. fp16 and bf16 list only the kept ops the graph has


@pytest.mark.parametrize("command", ["fp16", "bf16"])
def test_a_16_bit_model_without_lrn_keeps_no_op_in_fp32(cli, trial, tmp_path, command):
    """Before: "(ops kept in FP32: LRN)" and *_kept_fp32_ops=LRN for a model without LRN."""
    out = tmp_path / f"m.{command}.onnx"
    result = cli(command, trial["dynamic"], "--data", trial["pngs"], "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "no op kept in FP32" in result.stdout and "LRN" not in result.stdout
    assert read_artifact(out).metadata[f"{command}_kept_fp32_ops"] == ""


# 4. bench --end-to-end: placements a model cannot have are named, the rest measured


@pytest.mark.parametrize(
    ("model", "left_out", "why"),
    [
        ("dynamic", ["onnx-graph-resize"], "needs opset 18 (Resize with antialias); this model has opset 17"),
        ("crop_none", ["onnx-graph", "onnx-graph-resize"], "this model's card has crop none"),
    ],
)  # fmt: skip
def test_end_to_end_names_the_placements_a_model_cannot_have(
    cli, trial, tmp_path, model, left_out, why
):
    """Before: an opset-17 model failed the whole run (exit 2, "needs opset 18"); a card the
    in-graph placements cannot reproduce lost them without a word."""
    out = tmp_path / "e2e"
    result = cli(
        "bench", "--end-to-end", "--model", trial[model], "--data", trial["pngs"],
        "--inputs", trial["pngs"], "--backend", "ort", "--precision", "fp32", *QUICK,
        "--work-dir", tmp_path / "w", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = _not_measured(result.stderr)
    assert [line.split(":")[1].strip() for line in lines] == left_out
    assert all(why in line for line in lines)
    report = json.loads((out / "end-to-end.json").read_text())
    measured = {r["placement"] for r in report["rows"]}
    assert "host" in measured and not measured & set(left_out)
    assert [n["what"] for n in report["not_measured"]] == left_out
    markdown = (out / "end-to-end.md").read_text()
    assert "## Not measured" in markdown and f"- {left_out[0]}: " in markdown


# 5. a combination refused inside a matrix is named and recorded


def test_a_refused_combination_is_named_and_recorded(cli, digits_model, digits, tmp_path):
    """Before: --backend ort,torch --precision fp32,fp16 measured three rows and said nothing
    of torch fp16. After: one line with the reason, and the report lists it."""
    out = tmp_path / "report"
    result = cli(
        "bench", "--model", digits_model, "--data", digits["heldout_dir"],
        "--backend", "ort,torch", "--precision", "fp32,fp16", "--batch", "1", "--no-direct",
        *QUICK, "--work-dir", tmp_path / "w", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = _not_measured(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("Not measured: torch fp16 b1 latency: ")
    report = json.loads((out / "bench-summary.json").read_text())
    assert [n["what"] for n in report["not_measured"]] == ["torch fp16 b1 latency"]
    assert len(report["rows"]) == 3 and report["status"] == "complete"
    assert "- torch fp16 b1 latency: " in (out / "bench-summary.md").read_text()


# 6. hints that name the command the user is running


def test_import_of_a_missing_file_says_check_the_path(cli, tmp_path):
    """Before: "create it with 'alexnet-deploy export'", for the user's own model."""
    result = cli("import", tmp_path / "nosuch.onnx", "-o", tmp_path / "m.onnx")
    assert_clean_failure(result, 1, "nosuch.onnx not found")
    assert "check the path" in result.stderr and "alexnet-deploy export" not in result.stderr


def test_calibrate_of_an_int8_file_names_export_and_import(cli, trial, tmp_path):
    """Before: "is already a int8 model ... pass the FP32 .onnx written by 'alexnet-deploy
    export'" (an imported model's FP32 file was written by import)."""
    calibrated = cli(
        "calibrate", trial["dynamic"], "--data", trial["pngs"], "--target", "cpu",
        "-o", tmp_path / "m.int8-{target}.onnx",
    )  # fmt: skip
    assert calibrated.exit_code == 0, calibrated.stderr
    int8 = tmp_path / "m.int8-cpu.onnx"
    before = _snapshot(tmp_path)
    result = cli("calibrate", int8, "--data", trial["pngs"], "-o", tmp_path / "x-{target}.onnx")
    assert_clean_failure(result, 1, "is already an int8 model", before, [tmp_path])
    assert "'alexnet-deploy import'" in result.stderr


# 7. a model without a card is a usage error (exit 2) in every command


@pytest.mark.parametrize("command", ["calibrate", "fp16", "bench", "compare"])
def test_no_model_card_is_a_usage_error_everywhere(cli, trial, tmp_path, command):
    """Before: exit 2 in predict, exit 1 in calibrate, fp16, bench and compare."""
    model, pngs = trial["foreign"], trial["pngs"]
    argv = {
        "calibrate": ("calibrate", model, "-o", tmp_path / "x-{target}.onnx"),
        "fp16": ("fp16", model, "-o", tmp_path / "x.fp16.onnx"),
        "bench": ("bench", "--model", model, "--backend", "ort", "--precision", "fp32",
                  "--batch", "1", "--no-direct", "--work-dir", tmp_path / "w",
                  "--out", tmp_path / "out"),
        "compare": ("compare", model, model, "--out", tmp_path / "cmp"),
    }[command]  # fmt: skip
    result = cli(*argv, "--data", pngs)
    assert_clean_failure(result, 2, "has no model card")


# 8. export --from: a channels-last module, and the input size it was checked at

MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, channels_last=False):
        super().__init__()
        self.channels_last = channels_last
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def nchw():
    return Net()


def nhwc():
    return Net(channels_last=True)
'''


def test_export_from_a_channels_last_module_says_what_from_takes(cli, tmp_path):
    """Before: "pass the input size the model takes with --input-size", which cannot help."""
    (tmp_path / "net.py").write_text(MODULE)
    result = cli(
        "export", "--from", f"{tmp_path / 'net.py'}:nhwc", "--input-size", str(F.SIZE),
        "-o", tmp_path / "m.onnx",
    )  # fmt: skip
    assert_clean_failure(result, 1, "to have 3 channels")
    hint = next(line for line in result.stderr.splitlines() if line.startswith("Hint:"))
    assert "NCHW" in hint and "alexnet-deploy import" in hint and "--input-size" not in hint
    assert not (tmp_path / "m.onnx").exists()


# 10. --work-dir decides where import and export write by default (8.: the size's note)


def test_import_and_export_write_into_the_work_directory(cli, trial, tmp_path):
    """Before: neither took --work-dir (exit 2); their default was ./work whatever the other
    commands were told. export --from without --input-size said nothing of the size it used."""
    work = tmp_path / "elsewhere"
    imported = cli("import", trial["foreign"], "--name", "mine", "--work-dir", work)
    assert imported.exit_code == 0, imported.stderr
    assert read_artifact(work / "mine.onnx").model_name == "mine"
    (tmp_path / "net.py").write_text(MODULE)
    exported = cli("export", "--from", f"{tmp_path / 'net.py'}:nchw", "--work-dir", work)
    assert exported.exit_code == 0, exported.stderr
    assert (work / "nchw.onnx").is_file()
    assert "Note: input size 224 from --preset imagenet" in exported.stderr


# 9. summary: the table's MACs and the roofline's count, each said for what it is


def test_summary_gives_the_roofline_s_count_beside_the_table_s(cli, trial):
    """Before: the README called the table's MAC total "the count bench's roofline and plan
    use", while bench's macs_per_image leaves the zero padding out (a different number)."""
    from alexnet_deploy.bench.roofline import macs_per_image

    result = cli("summary", trial["dynamic"])
    assert result.exit_code == 0, result.stderr
    real = macs_per_image(trial["dynamic"])
    line = next(x for x in result.stdout.splitlines() if "without zero padding" in x)
    assert f"{real:,} per image" in line and "zero padding included" in line
