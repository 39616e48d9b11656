"""Answers that are right (issue #27, part B), through the real CLI where a user meets them:
caches keyed by everything that determines them and never holding a non-finite range; the
runtime named in an output is the one that computed it; a gate asked to measure noise judges
the report it was given; images decoded as a viewer shows them, their cost bounded from the
header; messages that point the right way."""

from __future__ import annotations

import json
import shutil
import struct
import tracemalloc
import zlib

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from alexnet_deploy import constants as C
from alexnet_deploy.artifacts import ArtifactSet
from alexnet_deploy.calib.images import load_rgb
from alexnet_deploy.calib.stage import DataRequest
from tests.gate.test_gate import _slow_down
from tests.test_faults import _snapshot, assert_clean_failure

DIGITS_PRE = ("--input-size", "32", "--resize-size", "36")


def _input_scale(model) -> tuple[float, int]:
    """The scale and zero point of the quantizer on the network's input."""
    proto = onnx.load(str(model))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    node = next(
        n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input"
    )
    return float(inits[node.input[1]]), int(inits[node.input[2]])


def _calibrate(cli, model, data, out, *extra):
    return cli(
        "calibrate", model, "--data", data, "--calib-size", "24", "--eval-size", "8",
        "--target", "cpu", "--max-top1-drop", "100", "-o", out, *extra,
    )  # fmt: skip


def test_calibration_ranges_are_keyed_by_the_preprocessing(cli, digits, tmp_path):
    """Before: the second run (other --mean/--std) reused the first's ranges: the same input
    scale and zero point. After: its own, as its data gives; the same request reuses them."""
    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    ranges = tmp_path / "out" / ".cache" / "calibration"
    half = ("--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5")
    quarter = ("--mean", "0.2,0.2,0.2", "--std", "0.25,0.25,0.25")
    first = _calibrate(
        cli, model, digits["train_dir"], tmp_path / "out" / "a.onnx", *DIGITS_PRE, *half
    )
    assert first.exit_code == 0, first.stderr
    second = _calibrate(
        cli, model, digits["train_dir"], tmp_path / "out" / "b.onnx", *DIGITS_PRE, *quarter
    )
    assert second.exit_code == 0, second.stderr
    (scale_a, zero_a), (scale_b, zero_b) = (
        _input_scale(tmp_path / "out" / f"{n}.onnx") for n in "ab"
    )
    # pixels span 0..1: the input spans (0 - mean) / std .. (1 - mean) / std, 1 / std wide
    assert scale_a == pytest.approx(1 / (255 * 0.5), rel=0.01)
    assert scale_b == pytest.approx(1 / (255 * 0.25), rel=0.01)
    # and its zero point where 0 falls in it: 255 x mean
    assert abs(zero_a - 255 * 0.5) <= 2 and abs(zero_b - 255 * 0.2) <= 2
    assert len(list(ranges.glob("ranges-*.json"))) == 2
    again = _calibrate(
        cli, model, digits["train_dir"], tmp_path / "out" / "c.onnx", *DIGITS_PRE, *half
    )
    assert again.exit_code == 0 and len(list(ranges.glob("ranges-*.json"))) == 2  # reused
    assert _input_scale(tmp_path / "out" / "c.onnx") == (scale_a, zero_a)


def test_a_zero_std_in_the_models_metadata_is_refused_and_nothing_cached(cli, digits, tmp_path):
    """Before: NaN ranges cached, and every later run of those sizes crashed on them. After:
    the samples are refused, naming the std; nothing cached; the next good run works."""
    proto = onnx.load(str(digits["onnx"]))
    for prop in proto.metadata_props:
        if prop.key == C.METADATA_PREFIX + "std":
            prop.value = "[0.0, 0.0, 0.0]"
    model = tmp_path / "m.onnx"
    onnx.save(proto, str(model))
    before = _snapshot(tmp_path)
    result = _calibrate(cli, model, digits["train_dir"], tmp_path / "out" / "a.onnx")
    assert result.exit_code in (1, 2) and "std" in result.stderr  # here, or at parse time
    assert_clean_failure(result, result.exit_code, "std", before, [tmp_path])
    assert not list(tmp_path.rglob("ranges-*.json"))
    good = _calibrate(cli, model, digits["train_dir"], tmp_path / "out" / "a.onnx", *DIGITS_PRE,
                      "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5")  # fmt: skip
    assert good.exit_code == 0, good.stderr


def test_ranges_that_overflow_are_never_cached(cli, digits, tmp_path):
    """A model whose activations overflow float32 gives ranges of Inf and NaN: refused, none
    written to the cache (before: cached, and reused by every later run)."""
    proto = onnx.load(str(digits["onnx"]))
    for init in proto.graph.initializer:
        if init.name == "features.0.weight":
            scaled = numpy_helper.to_array(init) * np.float32(1e37)
            init.CopyFrom(numpy_helper.from_array(scaled, init.name))
    model = tmp_path / "m.onnx"
    onnx.save(proto, str(model))
    before = _snapshot(tmp_path)
    result = _calibrate(cli, model, digits["train_dir"], tmp_path / "out" / "a.onnx")
    assert_clean_failure(result, 1, "ranges of NaN or Inf", before, [tmp_path])
    assert not list(tmp_path.rglob("ranges-*.json")) and "nothing was cached" in result.stderr


def test_the_main_jobs_int8_is_keyed_by_its_data(digits_artifacts, tmp_path):
    """The INT8 file records the request it was calibrated for: a request for other data (or
    the same folder with a file changed) does not take it as its own."""
    model = digits_artifacts["model"]
    made = DataRequest(
        data=str(digits_artifacts["train_dir"]), calib_size=128,
        eval_data=str(digits_artifacts["heldout_dir"]), eval_size=64,
    )  # fmt: skip
    artifacts = ArtifactSet(model)
    assert artifacts.belongs(artifacts.int8("cpu"), made.source_key())
    other = DataRequest(data=str(digits_artifacts["heldout_dir"]), calib_size=128)
    assert not artifacts.belongs(artifacts.int8("cpu"), other.source_key())
    folder = tmp_path / "images"
    shutil.copytree(digits_artifacts["heldout_dir"], folder)
    key = DataRequest(data=str(folder)).source_key()
    first = sorted(folder.rglob("*.png"))[0]
    Image.new("L", (36, 36), 255).save(first)
    assert DataRequest(data=str(folder)).source_key() != key


def _engine_truth(fp32, precision: str, images: np.ndarray, work) -> dict:
    """The logits figures of the engine ``build --backend ort`` makes, against FP32 run as
    written, in compare's batches of 8."""
    import onnxruntime as ort

    from alexnet_deploy.calib.fidelity import compare_logits
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.engines.registry import get_backend

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(fp32), options, providers=["CPUExecutionProvider"])
    engine, _ = build_engine(fp32, "ort", BuildOptions(precision=precision), work)
    reference, executed = [], []
    with get_backend("ort").runner(engine) as runner:
        for start in range(0, len(images), 8):
            batch = images[start : start + 8]
            reference.append(session.run(None, {"input": batch})[0])
            executed.append(runner.infer(batch))
    fidelity = compare_logits(np.concatenate(reference), np.concatenate(executed))
    return {
        k: getattr(fidelity, k)
        for k in ("top1_agreement", "top5_overlap", "centered_cosine", "max_abs_error")
    }


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_compare_ort_is_what_onnx_runtime_executes(cli, digits_artifacts, precision, tmp_path):
    """Before: --runtime ort bit-identical to emulated (every tensor exposed kept every Q/DQ
    pair and Cast from being fused). After: the logits are exactly those of the engine that
    'build --backend ort' makes, and differ from emulated where its execution differs (FP16:
    ONNX Runtime removes the casts and computes in float32); the layers it fused away are
    named, the others read from the optimized graph."""
    from alexnet_deploy.calib.data import load_held_out
    from alexnet_deploy.onnx_model import read_artifact

    fp32 = digits_artifacts["model"]
    candidate = ArtifactSet(fp32).for_precision(precision)
    common = ("--data", digits_artifacts["heldout_dir"], "--count", "16", "--format", "json")
    runs = {
        rt: cli("compare", fp32, candidate, "--runtime", rt, *common) for rt in ("emulated", "ort")
    }
    assert all(r.exit_code == 0 for r in runs.values()), [r.stderr for r in runs.values()]
    emulated, executed = (json.loads(runs[rt].stdout) for rt in ("emulated", "ort"))
    info = read_artifact(fp32)
    images = load_held_out(
        str(digits_artifacts["heldout_dir"]), image_shape=info.image_shape,
        preprocessing=info.preprocessing(), count=16,
    ).eval.images  # fmt: skip
    assert executed["logits"] == _engine_truth(fp32, precision, images, tmp_path / "w")
    assert executed["runtime"] == "ort"
    shown = {layer["name"] for layer in executed["layers"]}
    fused = {f.split(" (")[0] for f in executed["fused"]}
    assert not shown & fused and shown | fused <= {layer["name"] for layer in emulated["layers"]}
    if precision == "fp16":
        assert executed["logits"] != emulated["logits"]  # float32 as executed, FP16 as written
    else:
        assert fused  # the activations computed inside the integer kernels
        assert executed["clip_note"]  # says where the clip rates are missing and why


def test_gate_measure_noise_judges_the_current_report(cli, report, tmp_path):
    """Before: 'gate BASE CUR --measure-noise N' measured, then exited 0 without looking at
    CUR (a CI step that always passed). After: it measures, then judges CUR with those
    thresholds: a 4x slowdown fails."""
    base = tmp_path / "base"
    shutil.copytree(report / "report", base)
    slow = _slow_down(base, tmp_path / "slow", 4.0)
    result = cli("gate", base, slow, "--measure-noise", "2", "--work-dir", report / "work")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "gate FAIL (history)" in result.stdout and "Traceback" not in result.stderr
    assert "thresholds from measured run-to-run noise" in result.stderr
    assert (base / "gate-noise.json").is_file()


def test_gate_measure_noise_with_a_paired_gate_is_refused(cli, report, digits, tmp_path):
    before = _snapshot(report / "report")
    result = cli("gate", report / "report", "--model", digits["onnx"], "--measure-noise", "2")
    assert_clean_failure(result, 2, "a paired gate measures its own", before, [report / "report"])


def test_gate_shows_a_throughput_gain_as_positive_and_markdown_no_null(cli, report, tmp_path):
    """Before: a 54% throughput gain printed as -54.6%, and '--format md' printed null in the
    empty cells. After: +54.6% (the metric's own move; the verdict says which way is better),
    and '-'."""
    fast = _slow_down(report / "report", tmp_path / "fast", 1 / 1.546)
    result = cli("gate", report / "report", fast, "--format", "md", "--json", tmp_path / "g.json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "null" not in result.stdout
    header = next(line for line in result.stdout.splitlines() if "change_pct" in line)
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in result.stdout.splitlines() if "| throughput" in line)
    change = float(row.strip("|").split("|")[columns.index("change_pct")])
    assert change == pytest.approx(54.6, abs=2)
    verdicts = json.loads((tmp_path / "g.json").read_text())["verdicts"]
    throughput = next(v for v in verdicts if v["metric"] == "throughput")
    assert throughput["metric_change"] == pytest.approx(0.546, abs=0.02)
    assert throughput["change"] == pytest.approx(-throughput["metric_change"])


def _header_only_png(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels (its pixels never decodable)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_a_thin_strip_is_refused_before_its_resize(cli, digits_model, tmp_path):
    """Before: a 1x4000 PNG (100 bytes) took 2.9 GB in predict (its short side's resize made
    it 256 x 1,024,000). After: refused from its header, naming the limit, memory untouched."""
    strip = tmp_path / "strip.png"
    Image.new("L", (1, 4000), 128).save(strip)
    before = _snapshot(tmp_path)
    tracemalloc.start()
    try:
        result = cli("predict", strip, "--model", digits_model, "--work-dir", tmp_path / "w")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_clean_failure(result, 1, "MAX_RESIZED_SIDE", before, [tmp_path])
    assert "1x4000 pixels" in result.stderr and peak < 200 * 2**20


@pytest.mark.parametrize("size", [(12_000, 10_000), (20_000, 20_000)])
def test_an_image_over_the_pixel_limit_is_refused_from_its_header(
    cli, digits_model, size, tmp_path
):
    """120 megapixels (over the limit, under Pillow's own) and 400 (over Pillow's too): one
    line naming the limit, nothing decoded (before: Pillow's warning, then a 360 MB decode,
    or its DecompressionBombError)."""
    big = tmp_path / "big.png"
    big.write_bytes(_header_only_png(*size))
    before = _snapshot(tmp_path)
    result = cli("predict", big, "--model", digits_model, "--work-dir", tmp_path / "w")
    assert_clean_failure(result, 1, "MAX_IMAGE_PIXELS", before, [tmp_path])


def test_images_are_decoded_as_a_viewer_shows_them(tmp_path):
    """EXIF orientation applied; transparency over white; 16-bit grey scaled; CMYK to RGB;
    an animation's first frame. Before: sideways, black where transparent, 16-bit stretched
    to its own min and max (a flat grey became black)."""
    turned = Image.new("RGB", (40, 20), (255, 0, 0))
    turned.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    turned.save(tmp_path / "turned.png", exif=exif)
    shown = load_rgb(tmp_path / "turned.png")
    assert shown.size == (20, 40) and shown.getpixel((10, 5)) == (255, 0, 0)
    assert shown.getpixel((10, 35)) == (0, 0, 255)

    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_rgb(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 200, 0, 0])
    palette.save(tmp_path / "palette.png", transparency=0)
    assert load_rgb(tmp_path / "palette.png").getpixel((0, 0)) == (255, 255, 255)

    grey = Image.fromarray(np.full((8, 8), 128 * 257, np.uint16))
    grey.save(tmp_path / "grey16.png")
    with Image.open(tmp_path / "grey16.png") as check:
        assert check.mode.startswith("I")
    assert load_rgb(tmp_path / "grey16.png").getpixel((0, 0)) == (128, 128, 128)

    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(tmp_path / "cyan.tif")
    assert load_rgb(tmp_path / "cyan.tif").getpixel((0, 0)) == (0, 255, 255)

    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    assert load_rgb(tmp_path / "anim.gif").getpixel((0, 0)) == (255, 0, 0)


def test_predict_lists_every_image_type_it_reads_and_shows_paths(cli, digits_model, tmp_path):
    """Before: GIF/WebP/BMP/TIFF accepted by name but skipped in a folder, and two x.png in
    two folders shown as 'x.png' twice. After: one list of extensions; each row its path."""
    folder = tmp_path / "photos"
    for sub in ("a", "b"):
        (folder / sub).mkdir(parents=True)
        Image.new("RGB", (40, 40), (200, 30, 30)).save(folder / sub / "x.png")
    for suffix in (".gif", ".webp", ".bmp", ".tiff"):
        Image.new("RGB", (40, 40), (30, 200, 30)).save(folder / f"other{suffix}")
    result = cli("predict", folder, "--model", digits_model, "--format", "csv",
                 "--work-dir", tmp_path / "w")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    images = [line.split(",")[0] for line in result.stdout.splitlines()[1:] if line]
    assert sorted(images) == sorted(
        [str(folder / "a" / "x.png"), str(folder / "b" / "x.png")]
        + [str(folder / f"other{s}") for s in (".gif", ".webp", ".bmp", ".tiff")]
    )
    md = cli("predict", folder / "a" / "x.png", tmp_path / "missing.png", "--model", digits_model,
             "--format", "md", "--work-dir", tmp_path / "w")  # fmt: skip
    assert md.exit_code == 1 and "null" not in md.stdout  # the missing file's empty cells: "-"


def test_bench_inputs_that_do_not_exist_name_the_option(cli, digits_model, tmp_path):
    """Before: 'calibration data nosuch_dir not found' for bench --inputs. After: names
    --inputs."""
    result = cli(
        "bench", "--model", digits_model, "--inputs", tmp_path / "nosuch_dir", "--backend", "ort",
        "--precision", "fp32", "--batch", "1", "--no-direct", "--no-roofline",
        "--work-dir", tmp_path / "w", "--out", tmp_path / "out",
    )  # fmt: skip
    assert_clean_failure(result, 1, f"--inputs {tmp_path / 'nosuch_dir'} not found")
    assert "calibration" not in result.stderr and not (tmp_path / "out").exists()
