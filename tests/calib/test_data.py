"""Calibration data from real image files decoded by Pillow, arrays, and synthetic inputs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from alexnet_deploy.calib.data import load_calibration_data
from alexnet_deploy.calib.images import load_rgb, preprocess
from alexnet_deploy.calib.sources import shipped_images
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.models.variants import get_variant

PRE = get_variant("torchvision").preprocessing
SHAPE = (3, 224, 224)


def load(data, **kwargs):
    return load_calibration_data(str(data), image_shape=SHAPE, preprocessing=PRE, **kwargs)


@pytest.fixture
def photos(tmp_path):
    """A copy of six shipped photographs (JPEG and PNG)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted(shipped_images().glob("*.*g"))[:6]:
        shutil.copy(path, folder / path.name)
    return folder


def test_shipped_images_are_real_photos_with_sources():
    files = sorted(p for p in shipped_images().iterdir() if p.suffix in (".jpg", ".png"))
    assert len(files) >= 12
    sources = (shipped_images() / "SOURCES.md").read_text()
    for path in files:
        assert path.name in sources
        with Image.open(path) as image:
            assert min(image.size) >= 128


def test_sampling_is_deterministic_and_manifest_hashes_files(photos):
    a = load(photos, seed=1, calib_size=3)
    b = load(photos, seed=1, calib_size=3)
    c = load(photos, seed=2, calib_size=3)
    assert a.calib.sources == b.calib.sources and a.key() == b.key()
    assert a.calib.sources + a.eval.sources != c.calib.sources + c.eval.sources
    assert len(a.calib) == 3 and len(a.eval) == 3
    assert a.calib.images.shape == (3, *SHAPE) and a.calib.images.dtype == np.float32
    manifest = a.manifest()
    for row in manifest["calibration"] + manifest["held_out"]:
        assert row["sha256"] == sha256_file(photos / row["source"])
    assert manifest["synthetic"] is False
    assert np.array_equal(a.calib.images, b.calib.images)


def test_preprocessing_uses_declared_constants(photos):
    path = sorted(photos.glob("*.jpg"))[0]
    array = preprocess(load_rgb(path), PRE)
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    # the normalized values span what (pixel - mean) / std allows, per channel
    for channel in range(3):
        lo = (0 - PRE.mean[channel]) / PRE.std[channel]
        hi = (1 - PRE.mean[channel]) / PRE.std[channel]
        assert lo - 1e-5 <= array[channel].min() and array[channel].max() <= hi + 1e-5
    assert abs(array.mean() - ((rgb - PRE.mean) / PRE.std).mean()) < 0.2


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "I;16"])
def test_other_colour_modes_are_converted(tmp_path, mode):
    source = sorted(shipped_images().glob("*.jpg"))[0]
    with Image.open(source) as image:
        converted = image.convert("L").convert("I;16") if mode == "I;16" else image.convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = tmp_path / f"image{suffix}"
    converted.save(path)
    with Image.open(path) as check:
        assert check.mode == mode
    array = preprocess(load_rgb(path), PRE)
    assert array.shape == SHAPE and np.isfinite(array).all()


def test_images_smaller_than_the_crop_are_upscaled(tmp_path):
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "tiny.png")
    array = preprocess(load_rgb(tmp_path / "tiny.png"), PRE)
    assert array.shape == SHAPE
    assert np.allclose(array[0], (200 / 255 - PRE.mean[0]) / PRE.std[0], atol=1e-5)


def test_empty_folder(tmp_path):
    with pytest.raises(AlexnetDeployError, match="is empty"):
        load(tmp_path)


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(AlexnetDeployError, match="has no images"):
        load(tmp_path)


def test_one_corrupt_image_is_skipped_and_counted(photos, caplog):
    for i in range(12):  # 18 readable files, one truncated: under the 10% threshold
        shutil.copy(sorted(photos.glob("*.*g"))[i % 6], photos / f"copy{i}.png")
    good = sorted(photos.glob("*.jpg"))[0].read_bytes()
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 3])
    data = load(photos, calib_size=10, eval_size=9)
    assert [s["source"] for s in data.skipped] == ["truncated.jpg"]
    assert "truncated.jpg" not in data.calib.sources + data.eval.sources
    assert "skipping unreadable image" in caplog.text
    assert data.manifest()["skipped"][0]["source"] == "truncated.jpg"


def test_many_corrupt_images_fail(photos):
    for i in range(3):
        (photos / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))
    with pytest.raises(AlexnetDeployError, match=r"3 of \d+ images .* are unreadable"):
        load(photos, calib_size=4, eval_size=5)


def test_calib_size_larger_than_available(photos):
    with pytest.raises(
        AlexnetDeployError, match="--calib-size 6 is not smaller than the 6 samples"
    ):
        load(photos, calib_size=6)
    with pytest.raises(UsageError, match="at least 1"):
        load(photos, calib_size=0)


def test_image_folder_layout_gives_labels(tmp_path):
    photos = sorted(shipped_images().glob("*.jpg"))
    for i, path in enumerate(photos[:6]):
        target = tmp_path / ("cat" if i % 2 else "dog")
        target.mkdir(exist_ok=True)
        shutil.copy(path, target / path.name)
    data = load(tmp_path, calib_size=3)
    for split in (data.calib, data.eval):
        for source, label in zip(split.sources, split.labels, strict=True):
            assert label == (0 if source.startswith("cat/") else 1)


def test_npy_of_wrong_shape_or_dtype(tmp_path):
    np.save(tmp_path / "shape.npy", np.zeros((4, 3, 32, 32), np.float32))
    np.save(tmp_path / "dtype.npy", np.zeros((4, *SHAPE), np.float64))
    with pytest.raises(
        AlexnetDeployError, match=r"has shape \[4, 3, 32, 32\], expected \['N', 3, 224, 224\]"
    ):
        load(tmp_path / "shape.npy")
    with pytest.raises(AlexnetDeployError, match="dtype float64, expected float32"):
        load(tmp_path / "dtype.npy")


def test_npz_with_labels(tmp_path):
    images = np.random.default_rng(0).standard_normal((6, *SHAPE)).astype(np.float32)
    np.savez(tmp_path / "set.npz", images=images, labels=np.arange(6))
    data = load(tmp_path / "set.npz", calib_size=2)
    assert len(data.calib) == 2 and len(data.eval) == 4
    for split in (data.calib, data.eval):
        for source, label, image in zip(split.sources, split.labels, split.images, strict=True):
            index = int(source.split("[")[1].rstrip("]"))
            assert label == index and np.array_equal(image, images[index])


def test_synthetic_is_labelled():
    data = load("synthetic", calib_size=4, eval_size=2, seed=3)
    assert data.synthetic and data.manifest()["synthetic"] is True
    assert data.calib.images.shape == (4, *SHAPE) and len(data.eval) == 2
    assert "synthetic" in data.source


def test_missing_path_and_unknown_kind(tmp_path):
    with pytest.raises(AlexnetDeployError, match="not found"):
        load(tmp_path / "nope")
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(AlexnetDeployError, match="neither a folder nor a .npy/.npz"):
        load(tmp_path / "data.txt")


def test_separate_eval_data(photos, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(photos, other)
    data = load_calibration_data(
        str(photos), image_shape=SHAPE, preprocessing=PRE, eval_data=str(other), calib_size=6
    )
    assert len(data.calib) == 6 and len(data.eval) == 6
