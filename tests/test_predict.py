"""predict: real images (the trained test network's digits, the shipped photos) classified by
each available engine; ImageNet names for a 1000-class model; bad files reported one by one."""

from __future__ import annotations

import csv
import io
import json

import pytest

from alexnet_deploy.engines.registry import get_backend
from alexnet_deploy.predict import class_names

SHIPPED = __import__("pathlib").Path(__file__).parents[1] / "alexnet_deploy" / "data" / "images"
CPU_BACKENDS = [b for b in ("ort", "openvino", "torch") if get_backend(b).capability().available]


@pytest.fixture
def model(digits_model):
    """The trained test network (its variant registered), shared by the session."""
    return digits_model


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_digits_are_classified_by_each_engine(cli, model, digits, backend, tmp_path):
    folders = [digits["heldout_dir"] / str(d) for d in range(10)]
    result = cli(
        "predict", *folders, "--model", model, "--backend", backend, "--top", "3",
        "--format", "json", "--work-dir", tmp_path / "w",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["engine"].startswith(f"{backend} fp32")
    images = data["images"]
    right = sum(img["top"][0]["name"] == f"class {img['path'].split('/')[-2]}" for img in images)
    assert len(images) > 400 and right / len(images) > 0.9  # the network's held-out accuracy
    for img in images:
        probabilities = [t["probability"] for t in img["top"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert set(img["seconds"]) == {"decode", "preprocess", "inference", "postprocess"}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_shipped_photos_with_each_engine(cli, model, backend, tmp_path):
    result = cli("predict", SHIPPED, "--model", model, "--backend", backend, "--work-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "cat.jpg" in result.stdout and "time per stage" in result.stdout


def test_int8_engine(cli, digits_artifacts, digits, tmp_path):
    """The INT8 file calibrated on the network's own data (made beside the model)."""
    result = cli(
        "predict", digits["heldout_dir"] / "7", "--model", digits_artifacts["model"],
        "--precision", "int8",
        "--format", "json", "--work-dir", tmp_path / "w",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    images = json.loads(result.stdout)["images"]
    assert sum(i["top"][0]["name"] == "class 7" for i in images) / len(images) > 0.85


def test_imagenet_names_and_the_untrained_note(cli, exported, tmp_path):
    names = class_names(1000)
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby cat"
    model = exported("torchvision").path
    result = cli(
        "predict", SHIPPED / "cat.jpg", "--model", model, "--work-dir", tmp_path, "--format", "csv"
    )
    assert result.exit_code == 0, result.stderr
    assert "untrained weights" in result.stderr
    row = next(csv.DictReader(io.StringIO(result.stdout)))
    assert row["image"] == str(SHIPPED / "cat.jpg")  # the path as given
    top1 = row["top1"]
    assert top1.rsplit(" (", 1)[0] in names  # an ImageNet name, whatever an untrained net says


def test_bad_files_are_named_and_the_rest_classified(cli, model, digits, tmp_path):
    good = next((digits["heldout_dir"] / "4").iterdir())
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not an image")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((SHIPPED / "cat.jpg").read_bytes()[:300])
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli(
        "predict", good, not_image, corrupt, tmp_path / "missing.png", empty, "--model", model,
        "--format", "json", "--work-dir", tmp_path / "w",
    )  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 4
    for name, why in (
        ("notes.jpg", "cannot decode"),
        ("corrupt.jpg", "cannot decode"),
        ("missing.png", "not found"),
        ("empty", "a directory with no .jpg/.jpeg/.png/.gif/.webp/.bmp/.tif/.tiff files"),
    ):
        assert any(name in e and why in e for e in errors), (name, errors)
    images = json.loads(result.stdout)["images"]
    assert [i["top"][0]["name"] for i in images if not i["error"]] == ["class 4"]


def test_labels_that_do_not_fit_the_model(cli, model, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    result = cli(
        "predict", SHIPPED / "cat.jpg", "--model", model, "--labels", labels,
        "--work-dir", tmp_path / "w",
    )  # fmt: skip
    assert result.exit_code == 2 and "has 2 names; the model has 10 classes" in result.stderr
