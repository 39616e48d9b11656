"""A model that takes decoded pixels: preprocessing prepended to the ONNX graph itself.

``with_pixel_input(model, pre, resize=True)`` gives a model whose one input is the decoded image
as uint8 NHWC of any height and width (``[batch, height, width, 3]``, one size per call), and
whose graph does what the host did (calib/images.py): resize the short side to
``pre.resize_size`` with an antialiased bilinear filter (Pillow's ``BILINEAR`` on a reduction),
round to whole pixel levels as Pillow's uint8 result does, center-crop ``pre.crop_size``, then
scale, normalize and go to NCHW float. ``resize=False``: the input is the resized and cropped
image (``[batch, crop, crop, 3]``) and the graph does the rest.

The output sizes are computed in the graph from the input's shape, in double precision, with
the host's rule (``round(side * resize / short side)``, at least the crop) and passed to Resize
as ``sizes``: Resize's ``keep_aspect_ratio_policy`` would scale both axes by ``resize / short``
where Pillow scales each by its own ``out / in``, a sub-pixel drift that reached 31 levels at
the edge of a 640x480 photo. Measured against the host's Pillow path on the shipped photos at
640x480, 333x517 and 150x100: within one pixel level everywhere (mean 0.1-0.2 levels: Pillow's
fixed-point filter), the same crop; identical where no resize is needed (tests hold it).

Needs opset 18 (Resize ``antialias`` and ``axes``, ``CenterCropPad``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError
from alexnet_deploy.models.variants import Preprocessing

PIXEL_OPSET = C.PIXEL_GRAPH_MIN_OPSET
# what the metadata says the input is (key "input_layout")
PIXELS_ANY_SIZE, PIXELS_CROPPED = "pixels-nhwc-uint8-any-size", "pixels-nhwc-uint8-cropped"


def _nodes(pre: Preprocessing, first: str, resize: bool):
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value, dtype):
        return numpy_helper.from_array(np.asarray(value, dtype), f"pre_{name}")

    mean = np.asarray([255.0 * m for m in pre.mean], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray([255.0 * s for s in pre.std], np.float32).reshape(1, 3, 1, 1)
    inits = [const("mean255", mean, np.float32), const("std255", std, np.float32)]
    node = helper.make_node
    nodes = [node("Cast", [C.PIXELS_INPUT_NAME], ["pre_f32"], to=TensorProto.FLOAT)]
    pixels = "pre_f32"
    if resize:
        inits += [
            const("hw_start", [1], np.int64),
            const("hw_end", [3], np.int64),
            const("resize", [float(pre.resize_size)], np.float64),
            const("crop_f", [float(pre.crop_size)], np.float64),
            const("crop", [pre.crop_size, pre.crop_size], np.int64),
            const("lo", 0.0, np.float32),
            const("hi", 255.0, np.float32),
        ]
        nodes += [
            node("Shape", [C.PIXELS_INPUT_NAME], ["pre_shape"]),
            node("Slice", ["pre_shape", "pre_hw_start", "pre_hw_end"], ["pre_hw"]),
            node("Cast", ["pre_hw"], ["pre_hw_f"], to=TensorProto.DOUBLE),
            node("ReduceMin", ["pre_hw_f"], ["pre_short"], keepdims=1),
            node("Div", ["pre_resize", "pre_short"], ["pre_scale"]),
            node("Mul", ["pre_hw_f", "pre_scale"], ["pre_scaled"]),
            node("Round", ["pre_scaled"], ["pre_rounded"]),
            node("Max", ["pre_rounded", "pre_crop_f"], ["pre_sizes_f"]),
            node("Cast", ["pre_sizes_f"], ["pre_sizes"], to=TensorProto.INT64),
            node(
                "Resize",
                ["pre_f32", "", "", "pre_sizes"],
                ["pre_resized"],
                axes=[1, 2],
                mode="linear",
                antialias=1,
                coordinate_transformation_mode="half_pixel",
            ),
            node("Round", ["pre_resized"], ["pre_levels"]),
            node("Clip", ["pre_levels", "pre_lo", "pre_hi"], ["pre_clipped"]),
            node("CenterCropPad", ["pre_clipped", "pre_crop"], ["pre_cropped"], axes=[1, 2]),
        ]
        pixels = "pre_cropped"
    nodes += [
        node("Transpose", [pixels], ["pre_nchw"], perm=[0, 3, 1, 2]),
        node("Sub", ["pre_nchw", "pre_mean255"], ["pre_centered"]),
        node("Div", ["pre_centered", "pre_std255"], [first]),
    ]
    return nodes, inits


def with_pixel_input(model, pre: Preprocessing, *, resize: bool = True):
    """``model`` (an ONNX ModelProto taking float NCHW) changed in place to take uint8 pixels."""
    import onnx
    from onnx import TensorProto, helper

    opset = next((o for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if resize and (opset is None or opset.version < PIXEL_OPSET):
        raise UsageError(
            f"preprocessing in the graph needs opset {PIXEL_OPSET} or later "
            f"(Resize with antialias, CenterCropPad); this model has "
            f"{opset.version if opset else 'none'}",
            hint=f"export with --opset {PIXEL_OPSET} or later (the default is {C.DEFAULT_OPSET})",
        )
    graph = model.graph
    old = graph.input[0]
    dims = ["batch", "height", "width", 3] if resize else ["batch", pre.crop_size, pre.crop_size, 3]
    pixels = helper.make_tensor_value_info(C.PIXELS_INPUT_NAME, TensorProto.UINT8, dims)
    nodes, inits = _nodes(pre, old.name, resize)
    graph.initializer.extend(inits)
    graph.input.remove(old)
    graph.input.insert(0, pixels)
    for n in reversed(nodes):
        graph.node.insert(0, n)
    layout = PIXELS_ANY_SIZE if resize else PIXELS_CROPPED
    onnx.helper.set_model_props(
        model,
        {
            **{p.key: p.value for p in model.metadata_props},
            C.METADATA_PREFIX + "input_layout": layout,
        },
    )
    onnx.checker.check_model(model)
    return model


def write_with_pixel_input(artifact: Path, pre: Preprocessing, out: Path, *, resize: bool) -> Path:
    """A copy of the ONNX file at ``artifact`` that takes pixels, written atomically to ``out``."""
    import onnx

    from alexnet_deploy.fileio import atomic_path

    model = with_pixel_input(onnx.load(str(artifact)), pre, resize=resize)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, replace=True) as tmp:
        onnx.save(model, str(tmp))
    return out


def pixel_session(path: Path):
    """An infer callable (uint8 NHWC batch -> logits) over a pixel model, on ONNX Runtime's CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {C.PIXELS_INPUT_NAME: batch})[0]


def preprocessing_model(pre: Preprocessing):
    """The preprocessing alone: pixels in, the float NCHW tensor the network takes out."""
    from onnx import TensorProto, helper

    size = pre.crop_size
    graph = helper.make_graph(
        [helper.make_node("Identity", [C.INPUT_NAME], ["preprocessed"])],
        "preprocessing",
        [helper.make_tensor_value_info(C.INPUT_NAME, TensorProto.FLOAT, ["batch", 3, size, size])],
        [
            helper.make_tensor_value_info(
                "preprocessed", TensorProto.FLOAT, ["batch", 3, size, size]
            )
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", PIXEL_OPSET)])
    model.ir_version = 8
    return with_pixel_input(model, pre, resize=True)


def compare_with_host(pre: Preprocessing, images) -> dict:
    """The graph's preprocessing against the host's (Pillow) on ``images`` (PIL images, any
    size): the largest and mean difference in pixel levels (0-255) over every value."""
    import onnxruntime as ort

    from alexnet_deploy.calib.images import preprocess

    session = ort.InferenceSession(
        preprocessing_model(pre).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    std = np.asarray(pre.std, np.float32).reshape(3, 1, 1) * 255
    worst, total, count = 0.0, 0.0, 0
    for image in images:
        graph = session.run(None, {C.PIXELS_INPUT_NAME: np.asarray(image)[None]})[0][0]
        levels = np.abs(graph - preprocess(image, pre)) * std
        worst, total, count = (
            max(worst, float(levels.max())),
            total + levels.sum(),
            count + levels.size,
        )
    return {"images": len(images), "max_levels": worst, "mean_levels": total / max(count, 1)}


def bake_preprocessing(path: Path, pre: Preprocessing) -> dict:
    """Rewrite the validated float export at ``path`` to take pixels (export --preprocess), and
    check the graph's preprocessing against the host's on the shipped photos, as they are and
    resized to sizes that need reducing and enlarging. Raises when it differs by more than
    ``C.PIXEL_GRAPH_MAX_LEVELS`` pixel levels anywhere."""
    import onnx
    from PIL import Image

    from alexnet_deploy.calib.images import load_rgb
    from alexnet_deploy.calib.sources import shipped_images
    from alexnet_deploy.errors import ToleranceError
    from alexnet_deploy.predict import image_files

    model = with_pixel_input(onnx.load(str(path)), pre, resize=True)
    onnx.save(model, str(path))
    photos = [load_rgb(p) for p in image_files([shipped_images()])[0]]
    images = photos + [
        photo.resize(size, Image.Resampling.LANCZOS)
        for photo in photos
        for size in C.PIXEL_GRAPH_CHECK_SIZES
    ]
    check = compare_with_host(pre, images)
    if check["max_levels"] > C.PIXEL_GRAPH_MAX_LEVELS:
        raise ToleranceError(
            f"the preprocessing baked into the graph differs from the host's by "
            f"{check['max_levels']:.1f} pixel levels (allowed {C.PIXEL_GRAPH_MAX_LEVELS})",
            hint="export without --preprocess and preprocess on the host; report it",
        )
    return {"reference": "Pillow on the host (calib/images.py)", **check}
