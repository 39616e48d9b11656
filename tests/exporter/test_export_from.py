"""export --from: a user's PyTorch module, from a .py file, exported, validated and carried by
its model card through predict and build (the torch backend rebuilds it from its source); each
way the user's code can be wrong is one line that writes nothing; the evidence scripts'
full-size networks have torchvision's parameter counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from alexnet_deploy.cli import run
from alexnet_deploy.exporter.metadata import manifest_path
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.onnx_model import read_artifact
from tests.test_faults import _snapshot, assert_clean_failure

ROOT = Path(__file__).resolve().parents[2]
SIZE, CLASSES = 32, 4
LABELS = ("ant", "bee", "cat", "dog")

USER_MODEL = """
from torch import nn


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).relu().mean((2, 3)))


def make():
    return Small()
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def _user_model():
    """The module USER_MODEL defines, built here (not through the tool) for the reference."""
    namespace: dict = {}
    exec(compile(USER_MODEL, "user_model", "exec"), namespace)
    return namespace["make"]()


@pytest.fixture(scope="module")
def from_export(tmp_path_factory):
    """USER_MODEL exported through the CLI with --from, trained-looking weights (a checkpoint
    holding the state dict under 'model'), labels and a card of its own."""
    root = tmp_path_factory.mktemp("export-from")
    source = _write(root / "src", "user_model.py", USER_MODEL)
    torch.manual_seed(7)
    reference = _user_model().eval()
    with torch.no_grad():  # running statistics that are not the defaults: BN really folds
        reference.bn.running_mean.uniform_(-0.5, 0.5)
        reference.bn.running_var.uniform_(0.5, 2.0)
    weights = root / "ckpt.pt"
    torch.save({"model": reference.state_dict(), "epoch": 3}, weights)
    labels = _write(root, "labels.txt", "\n".join(LABELS) + "\n")
    out = root / "small.onnx"
    code = run(
        ["export", "--from", f"{source}:make", "--weights", weights, "--input-size", SIZE,
         "--resize-size", 36, "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
         "--labels", labels, "--name", "small-net", "-o", out]
    )  # fmt: skip
    assert code == 0
    return {"root": root, "source": source, "weights": weights, "out": out, "torch": reference}


def test_export_from_a_file_records_the_card_and_matches_pytorch(from_export):
    out, weights = from_export["out"], from_export["weights"]
    info = read_artifact(out)
    meta = info.metadata
    assert info.model_name == "small-net" and "variant" not in meta
    assert meta["source"] == f"export --from {from_export['source']}:make"
    assert meta["weights"] == "trained" and meta["weights_sha256"] == sha256_file(weights)
    assert meta["num_classes"] == str(CLASSES) and json.loads(meta["labels"]) == list(LABELS)
    pre = info.preprocessing()
    assert (pre.crop_size, pre.resize_size, pre.mean, pre.std) == (
        SIZE, 36, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
    )  # fmt: skip
    assert info.input.dims == ("batch", 3, SIZE, SIZE) and info.fixed_batch is None
    manifest = json.loads(manifest_path(out).read_text())
    assert [b["batch"] for b in manifest["validation"]["batches"]] == [1, 8]
    assert all(b["within_tolerance"] for b in manifest["validation"]["batches"])
    # the checkpoint's weights, not the seed's: ONNX Runtime agrees with the module loaded here
    images = np.random.default_rng(0).standard_normal((3, 3, SIZE, SIZE)).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = from_export["torch"](torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(session.run(None, {"input": images})[0], expected, atol=1e-5)


def test_predict_and_build_take_the_export(cli, from_export):
    out, work = from_export["out"], from_export["root"] / "work"
    images = [ROOT / "alexnet_deploy" / "data" / "images" / n for n in ("cat.jpg", "coins.png")]
    result = cli("predict", *images, "--model", out, "--top", 2, "--format", "json",
                 "--work-dir", work)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["model"] == "small-net" and len(shown["images"]) == 2
    names = {top["name"] for image in shown["images"] for top in image["top"]}
    assert names and names <= set(LABELS)  # the card's labels, not "class 0"
    built = cli("build", out, "--backend", "ort", "--work-dir", work)
    assert built.exit_code == 0, built.stderr


def test_build_backend_torch_rebuilds_the_users_model(from_export):
    from alexnet_deploy import api
    from alexnet_deploy.engines.registry import get_backend

    out = from_export["out"]
    engine, _ = api.build(out, "torch", work_dir=from_export["root"] / "work")
    images = np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    with get_backend("torch").runner(engine) as runner:
        logits = runner.infer(images)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(logits, session.run(None, {"input": images})[0], atol=1e-5)
    assert engine.sidecar.details["model_name"] == "small-net"


@pytest.mark.parametrize("change", ["edited", "moved"])
def test_torch_backend_refuses_a_source_that_changed_or_moved(cli, from_export, tmp_path, change):
    source = _write(tmp_path / "src", "user_model.py", USER_MODEL)
    out = tmp_path / "m.onnx"
    assert run(["export", "--from", f"{source}:make", "--input-size", SIZE, "-o", out]) == 0
    if change == "edited":
        source.write_text(USER_MODEL.replace("nn.Linear(8, 4)", "nn.Linear(8, 4, bias=False)"))
    else:
        source.rename(tmp_path / "elsewhere.py")
    before = _snapshot(tmp_path)
    result = cli("build", out, "--backend", "torch", "--work-dir", tmp_path / "work")
    expected = "changed since" if change == "edited" else "which is gone (moved or deleted)"
    assert_clean_failure(result, 1, expected, before, [tmp_path])


NOT_A_MODULE = "def make():\n    return 42\n"
BROKEN_IMPORT = "import json\nimport no_such_module_xyz\n\ndef make():\n    pass\n"
TWO_INPUTS = USER_MODEL.replace("def forward(self, x):", "def forward(self, x, mask):")
FLATTENS = USER_MODEL.replace(
    "self.head = nn.Linear(8, 4)", "self.head = nn.Linear(8 * 32 * 32, 4)"
).replace(".relu().mean((2, 3))", ".relu().flatten(1)")
OTHER_WEIGHTS = USER_MODEL.replace("self.head", "self.classifier")


@pytest.mark.parametrize(
    ("code", "spec", "files", "extra", "message"),
    [
        (2, "user.py", {"user.py": USER_MODEL}, [], "names no callable"),
        (1, "missing.py:make", {}, [], "missing.py not found"),
        (1, "user.py:make", {"user.py": BROKEN_IMPORT}, [],
         "user.py failed (line 2): ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        (1, "user.py:nope", {"user.py": USER_MODEL}, [], "has no callable 'nope'"),
        (1, "user.py:make", {"user.py": NOT_A_MODULE}, [], "returned int, not a torch.nn.Module"),
        (1, "user.py:make", {"user.py": TWO_INPUTS}, [], "takes 2 inputs (x, mask)"),
        (1, "user.py:make", {"user.py": FLATTENS}, ["--input-size", "48"],
         "fails on an input of [2, 3, 48, 48] (input size 48)"),
        (1, "user.py:make", {"user.py": USER_MODEL}, ["--weights", "other.pt"],
         "missing keys: head.weight, head.bias; unexpected keys: classifier.weight"),
        (2, "user.py:make", {"user.py": USER_MODEL}, ["--variant", "paper"], "both name the model"),
    ],
    ids=["no-colon", "file-missing", "import-error", "callable-missing", "not-a-module",
         "two-inputs", "forward-fails", "weights-mismatch", "variant-and-from"],
)  # fmt: skip
def test_a_bad_model_is_one_line_and_writes_nothing(
    cli, tmp_path, monkeypatch, code, spec, files, extra, message
):
    for name, text in files.items():
        _write(tmp_path, name, text)
    if "other.pt" in extra:  # a checkpoint of another module (the head under another name)
        namespace: dict = {}
        exec(compile(OTHER_WEIGHTS, "other", "exec"), namespace)
        torch.save(namespace["make"]().state_dict(), tmp_path / "other.pt")
    monkeypatch.chdir(tmp_path)  # specs and --weights relative to the current directory
    out = tmp_path / "out" / "m.onnx"
    before = _snapshot(tmp_path)
    result = cli("export", "--from", spec, *extra, "-o", out)
    assert_clean_failure(result, code, message, before, [tmp_path])
    assert not out.exists() and not out.parent.exists()


def test_card_flags_without_from_are_refused(cli, tmp_path):
    result = cli("export", "--input-size", "64", "-o", tmp_path / "m.onnx")
    assert_clean_failure(result, 2, "--input-size describe(s) a model of your own")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("spec", "params"),
    [
        ("scripts/resnet50.py:resnet50", 25_557_032),
        ("scripts/mobilenetv3_large.py:mobilenet_v3_large", 5_483_032),
    ],
)
def test_evidence_networks_have_torchvision_parameter_counts(spec, params):
    """Construct only (no export): the full-size networks the evidence script exports."""
    from alexnet_deploy.models.user import load_factory, parse_spec

    path, attr = spec.split(":")
    model = load_factory(parse_spec(f"{ROOT / path}:{attr}"))()
    assert sum(p.numel() for p in model.parameters()) == params
    assert isinstance(model, torch.nn.Module)


def test_the_users_folder_is_only_read(from_export):
    """Importing the user's file writes no bytecode cache (or anything else) beside it."""
    assert sorted(p.name for p in from_export["source"].parent.iterdir()) == ["user_model.py"]
