"""Any image classifier, end to end through the CLI as a user runs it (issue #23).

Three trained test networks that are not AlexNet (tests/classifiers.py: ResNet-style,
MobileNetV3-style, ViT) are exported by ``torch.onnx.export`` as a user would (no metadata),
given a model card by ``import``, then taken through calibrate (both INT8 forms), build (ONNX
Runtime, OpenVINO), bench (one short configuration), compare, plan, predict and package
--triton. Every INT8 form must stay within the 1-point top-1 budget on the held-out digits on
the figure that judges it, or ``plan`` must meet the budget and name the layers it kept float;
every output names the model. One network is also exported with ``export --from``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from alexnet_deploy import constants as C
from alexnet_deploy.onnx_model import read_artifact
from tests import classifiers as K

SHIPPED = Path(__file__).parents[1] / "alexnet_deploy" / "data" / "images"
LABELS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
BACKENDS = "ort,openvino" if HAS_OPENVINO else "ort"
# The same samples for every figure of one network: 64 calibrate, 200 held out judge.
SIZES = ("--calib-size", "64", "--eval-size", "200")
SHORT_BENCH = ("--batch", "4", "--min-seconds", "0.1", "--max-seconds", "0.3")


@pytest.fixture(scope="module")
def trained(digits):
    """Each network trained once on the digits train folder: {name: (module, accuracy)}."""
    cache: dict[str, tuple[torch.nn.Module, float]] = {}

    def get(name: str) -> tuple[torch.nn.Module, float]:
        if name not in cache:
            network = K.NETWORKS[name]
            model = K.train(network, *K.arrays(digits["train_dir"], network.preprocessing))
            heldout = K.arrays(digits["heldout_dir"], network.preprocessing)
            cache[name] = (model, K.accuracy(model, *heldout))
        return cache[name]

    return get


class Steps:
    """The CLI as one network's user runs it: each command must succeed, and a failure names
    the command and the network with the error line."""

    def __init__(self, cli, name: str, work: Path) -> None:
        self.cli, self.name, self.work = cli, name, work

    def __call__(self, *args):
        result = self.cli(*args)
        command = " ".join(str(a) for a in args[:1])
        assert result.exit_code == 0, f"{self.name}: {command} failed: {result.stderr[-2000:]}"
        return result

    def predict(self, images: Path, model: Path, top: int) -> list[dict]:
        args = ("--model", model, "--top", str(top), "--format", "json", "--work-dir", self.work)
        return json.loads(self("predict", images, *args).stdout)["images"]


def _card_flags(network: K.Network) -> tuple[str, ...]:
    """ResNet through the imagenet preset (mean/std from it), the others through explicit flags."""
    pre = network.preprocessing
    if network.name == "resnet":
        return (
            "--preset",
            "imagenet",
            "--input-size",
            str(pre.crop_size),
            "--resize-size",
            str(pre.resize_size),
        )
    return network.card_flags()


def _labels_file(folder: Path) -> Path:
    path = folder / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n")
    return path


def _assert_int8_within_budget(report: Path, name: str) -> dict[str, float]:
    """Every INT8 form calibrate wrote is within the budget on the figure that judges it."""
    rows = [r for r in json.loads(report.read_text())["rows"] if r["selected"]]
    drops = {r["target"]: r["top1_drop_points"] for r in rows}
    assert set(drops) == {"tensorrt", "cpu"}, f"{name}: forms judged {sorted(drops)}"
    for row in rows:
        assert row["within_budget"] and row["top1_drop_points"] <= C.DEFAULT_MAX_TOP1_DROP, (
            f"{name}: {row['target']} form drops {row['top1_drop_points']:.1f} points "
            f"(judged on {row['judged_on']})"
        )
    return drops


def _same_name(text: str, name: str) -> bool:
    """Triton names allow no '-': compare names with '-' and '_' the same."""
    return name.replace("-", "_") in text.replace("-", "_")


def _bench_rows(steps: Steps, model: Path, data: str, out: Path) -> list[dict]:
    """bench, one short configuration per backend and precision: every row measured."""
    steps("bench", "--model", model, "--backend", BACKENDS, "--precision", "fp32,int8",
          *SHORT_BENCH, "--no-roofline", "--no-direct", "--data", data,
          "--work-dir", steps.work, "--out", out)  # fmt: skip
    rows = json.loads((out / "bench-summary.json").read_text())["rows"]
    failed = [(r["backend"], r["precision"], r["reason"]) for r in rows if r["status"] != "ok"]
    assert not failed, f"{steps.name}: bench rows failed: {failed}"
    assert len(rows) == 2 * len(BACKENDS.split(","))
    return rows


def _plan_within_budget(
    steps: Steps, model: Path, data: tuple, out: Path, target: str = "cpu"
) -> dict:
    """plan (small budget: two plans timed, one short round): the chosen plan within the
    budget; a mixed plan's report names the layers kept float, what INT8 cost; an all-FP32
    choice is explained (:func:`_assert_all_fp32_explained`)."""
    steps("plan", model, *data, "--target", target, "--batch", "4", "--max-measured", "2",
          "--repeat", "1", "--min-seconds", "0.05", "--max-seconds", "0.2", "-o", out,
          "--work-dir", steps.work)  # fmt: skip
    plan = json.loads((out / "plan.json").read_text())
    chosen, report = plan["chosen"], (out / "plan.md").read_text()
    drop = chosen["drop_points"]
    assert drop <= C.DEFAULT_MAX_TOP1_DROP, f"{steps.name}: {chosen['plan']} drops {drop}"
    kept = [layer for layer, p in chosen["precisions"].items() if p != "int8"]
    if chosen["plan"] not in ("all-INT8", "all-FP32"):
        assert kept and all(layer in report for layer in kept), f"{steps.name}: {kept}"
    if chosen["plan"] == "all-FP32":
        _assert_all_fp32_explained(steps.name, plan, report)
    return chosen


def _speed(entry: dict) -> float:
    """A plan's images/s over every backend and batch it was timed at (geometric mean)."""
    rates = list(entry["images_per_s"].values())
    return math.prod(rates) ** (1 / len(rates))


def _assert_all_fp32_explained(name: str, plan: dict, report: str) -> None:
    """An all-FP32 choice says what it cost to take INT8: all-INT8 out of the budget (the
    report gives its drop and the most sensitive layer), or every INT8 plan within the budget
    slower than the FP32 model, which the report says and the timings show."""
    entries = {e["plan"]: e for e in [*plan["plans"], *plan["references"]]}
    fp32, int8 = entries["all-FP32"], entries["all-INT8"]
    if int8["drop_points"] > plan["max_top1_drop"]:  # INT8 costs accuracy: where, per layer
        sensitivity = report.partition("## Sensitivity per layer")[2]
        layers = [row["layer"] for row in plan["sensitivity"]]
        assert layers and all(layer in sensitivity for layer in layers), f"{name}: {layers}"
        assert "all-INT8" in report.partition("## Plans")[2], name
        return
    assert "no plan with INT8 layers ran faster than the FP32 model" in report, name
    assert fp32["images_per_s"], f"{name}: all-FP32 chosen as the fastest, yet not timed"
    timed = [e for e in entries.values() if e["images_per_s"] and e["plan"] != "all-FP32"]
    within = [e for e in timed if e["drop_points"] <= plan["max_top1_drop"]]
    assert int8 in within and all(_speed(e) <= _speed(fp32) for e in within), (
        f"{name}: all-FP32 chosen, yet faster within the budget: "
        f"{[(e['plan'], _speed(e)) for e in within]} against {_speed(fp32)}"
    )


@pytest.mark.parametrize("name", list(K.NETWORKS))
def test_a_users_classifier_goes_through_every_command(name, trained, digits, cli, tmp_path):
    """Before: without metadata only calibrate (with four flags) took the model; bench,
    compare, plan and predict refused it. After: one import, then every command."""
    network = K.NETWORKS[name]
    module, accuracy = trained(name)
    assert accuracy >= 0.85, f"{name} trained to only {accuracy:.1%} on the held-out digits"
    user = K.export_onnx(module, tmp_path / "user" / f"{name}.onnx")
    user_bytes = user.read_bytes()
    model, model_name = tmp_path / "model.onnx", f"tiny-{name}"
    steps = Steps(cli, name, tmp_path / "work")
    labels = _labels_file(tmp_path)

    steps(
        "import", user, "-o", model, "--name", model_name, *_card_flags(network), "--labels", labels
    )
    assert user.read_bytes() == user_bytes, f"{name}: import modified the user's file"
    info = read_artifact(model)
    assert info.model_name == model_name
    pre = info.preprocessing()
    assert (pre.crop_size, pre.resize_size) == (32, 36)
    assert pre.mean == pytest.approx(network.preprocessing.mean)
    assert pre.std == pytest.approx(network.preprocessing.std)

    heldout = str(digits["heldout_dir"])
    data = ("--data", str(digits["train_dir"]), "--eval-data", heldout, *SIZES)
    steps("calibrate", model, *data, "--target", "tensorrt,cpu")
    _assert_int8_within_budget(tmp_path / "model.int8.report.json", name)
    for backend in BACKENDS.split(","):
        steps("build", model, "--backend", backend, "--precision", "int8", "--work-dir", steps.work)

    _bench_rows(steps, model, heldout, tmp_path / "report")
    report = (tmp_path / "report" / "bench-summary.md").read_text()
    assert _same_name(report, model_name), f"{name}: the bench report does not name the model"

    int8 = tmp_path / "model.int8-tensorrt.onnx"
    compared = steps(
        "compare", model, int8, "--data", heldout, "--count", "32", "--out", tmp_path / "compare"
    )
    assert "logits" in compared.stdout and (tmp_path / "compare" / "compare.json").is_file()

    _plan_within_budget(steps, model, data, tmp_path / "plan")

    shipped = steps.predict(SHIPPED, model, top=3)
    assert len(shipped) == len(list(SHIPPED.glob("*.*"))) - 1  # SOURCES.md is not an image
    assert all(top["name"] in LABELS for image in shipped for top in image["top"])
    sevens = [image["top"][0]["name"] for image in steps.predict(Path(heldout) / "7", model, 1)]
    assert sevens.count("seven") >= 0.85 * len(sevens), f"{name}: sevens read as {sevens}"

    steps("package", "--triton", tmp_path / "triton", "--model", model, "--work-dir", steps.work)
    configs = sorted((tmp_path / "triton").glob("*/config.pbtxt"))
    assert any("int8" in c.parent.name for c in configs), f"{name}: packaged {configs}"
    for config in configs:
        assert _same_name(config.parent.name, model_name), config.parent.name
        assert _same_name(config.read_text(), model_name)
    if name == "resnet":  # the rest of the commands, on one network
        _the_other_commands(steps, model, model_name, data, tmp_path)


def _the_other_commands(steps: Steps, model: Path, model_name: str, data: tuple, tmp: Path):
    """fp16, bench --inputs, bench --end-to-end, tune, gate and plan --target tensorrt on the
    imported model, each in one short configuration (about 30 s together on 2 cores)."""
    heldout = Path(data[data.index("--eval-data") + 1])
    steps("fp16", model, "--data", heldout, "--eval-size", "64")
    assert read_artifact(tmp / "model.fp16.onnx").model_name == model_name

    out = tmp / "inputs"
    steps("bench", "--model", model, "--inputs", heldout / "5", "--backend", "ort",
          "--precision", "fp32,fp16", *SHORT_BENCH, "--no-roofline", "--no-direct", "--data",
          heldout, "--work-dir", steps.work, "--out", out)  # fmt: skip
    report = json.loads((out / "bench-summary.json").read_text())
    assert "real images from" in report["timed_inputs"] and report["model"]["name"] == model_name
    assert [r["status"] for r in report["rows"]] == ["ok", "ok"], report["rows"]

    out = tmp / "end-to-end"
    steps("bench", "--end-to-end", "--model", model, "--inputs", heldout / "7", "--backend",
          "ort", "--precision", "int8", "--min-seconds", "0.1", "--max-seconds", "0.2",
          "--work-dir", steps.work, "--out", out)  # fmt: skip
    measured = json.loads((out / "end-to-end.json").read_text())
    rows, left_out = measured["rows"], {n["what"] for n in measured.get("not_measured", [])}
    placements = {r["placement"] for r in rows}
    assert {"host", "onnx-graph"} <= placements, placements  # the card is AlexNet's form
    assert "onnx-graph-resize" in placements | left_out, (placements, left_out)
    assert all(r["images"] >= 1 and r["top1_agrees_with_host_pct"] >= 80 for r in rows), rows
    assert model_name in (out / "end-to-end.md").read_text()

    tuned = tmp / "tuned.json"
    steps("tune", "--model", model, "--data", heldout, "--backend", "ort", "--precision", "int8",
          "--quantizer", "qdq", "--batch", "4", "--streams", "1", "--min-seconds", "0.1",
          "--max-seconds", "0.2", "--no-roofline", "--work-dir", steps.work, "-o", tuned)  # fmt: skip
    choice = json.loads(tuned.read_text())
    assert choice["model"] == model_name and choice["model_path"] == str(model)
    assert choice["choice"]["precision"] == "int8"
    assert json.loads(Path(choice["report"]).read_text())["model"]["name"] == model_name

    gated = steps("gate", tmp / "report", tmp / "report")
    assert "gate PASS" in gated.stdout and "0 regressed" in gated.stdout

    _plan_within_budget(steps, model, data, tmp / "plan-tensorrt", target="tensorrt")
    assert (tmp / "plan-tensorrt" / "model.plan-tensorrt.onnx").is_file()


@pytest.mark.parametrize("name", list(K.NETWORKS))
def test_calibrate_takes_the_card_as_flags_without_import(name, trained, digits, cli, tmp_path):
    """The flags calibrate took before import existed still work on the user's own export:
    both INT8 forms written beside it, each within the budget."""
    network = K.NETWORKS[name]
    user = K.export_onnx(trained(name)[0], tmp_path / f"{name}.onnx")
    data = ("--data", digits["train_dir"], "--eval-data", digits["heldout_dir"], *SIZES)
    steps = Steps(cli, name, tmp_path / "work")
    steps("calibrate", user, *data, "--target", "tensorrt,cpu", *network.card_flags())
    _assert_int8_within_budget(tmp_path / f"{name}.int8.report.json", name)


def test_export_from_a_users_python_file_with_weights(trained, digits, cli, tmp_path):
    """export --from path.py:callable --weights: the user's module exported with its card,
    checked against PyTorch, and the file classifies the held-out digits like the module."""
    network = K.NETWORKS["resnet"]
    module, accuracy = trained("resnet")
    weights, out = tmp_path / "resnet.pth", tmp_path / "exported.onnx"
    torch.save(module.state_dict(), weights)
    source = f"{Path(K.__file__)}:{network.factory}"
    steps = Steps(cli, "resnet", tmp_path / "work")
    steps("export", "--from", source, "--weights", weights, "--name", "tiny-resnet",
          *_card_flags(network), "-o", out)  # fmt: skip
    info = read_artifact(out)
    assert info.model_name == "tiny-resnet" and info.trained is not False
    assert info.preprocessing().mean == pytest.approx(network.preprocessing.mean)
    assert info.fixed_batch is None  # a dynamic batch axis

    import onnxruntime as ort

    images, labels = K.arrays(digits["heldout_dir"], network.preprocessing)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(None, {info.input.name: images})[0]
    assert float((logits.argmax(1) == labels).mean()) == pytest.approx(accuracy, abs=0.005)
    with torch.no_grad():
        expected = module(torch.from_numpy(images[:16])).numpy()
    assert abs(logits[:16] - expected).max() < 1e-3
    sevens = [
        image["top"][0]["class"] for image in steps.predict(digits["heldout_dir"] / "7", out, 1)
    ]
    assert sevens.count(7) >= 0.85 * len(sevens)
