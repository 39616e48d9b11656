"""Reading a compiled library's needs from the ELF file: on the real TensorRT bindings and on
the onnxruntime library this process has loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from alexnet_deploy.sharedlibs import find_library, missing_libraries, needed_libraries
from tests.trt_bindings import bindings_module


@pytest.mark.parametrize(("version", "major"), [("10.13.0.35", "10"), ("11.4.0.106", "11")])
def test_the_real_tensorrt_bindings_name_their_libraries(version, major):
    module, stubs = bindings_module(version)
    needed = needed_libraries(module)
    assert {f"libnvinfer.so.{major}", f"libnvonnxparser.so.{major}"} <= set(needed)
    assert "libstdc++.so.6" in needed
    # without TensorRT on this machine they are missing; the stub folder has them
    assert f"libnvinfer.so.{major}" in missing_libraries(module)
    assert find_library(f"libnvinfer.so.{major}", [stubs]) == stubs / f"libnvinfer.so.{major}"


def test_a_library_this_process_loaded_has_everything_it_needs():
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    library = next(capi.glob("libonnxruntime.so*"))
    assert needed_libraries(library) and missing_libraries(library) == []


def test_a_file_that_is_not_elf_is_refused(tmp_path):
    text = tmp_path / "x.so"
    text.write_text("not a library")
    with pytest.raises(ValueError, match="not an ELF file"):
        needed_libraries(text)


def test_doctor_says_whether_each_gpu_provider_can_load(cli):
    result = cli("doctor", "--format", "csv")
    assert result.exit_code == 0
    import onnxruntime

    rows = {
        line.split(",")[0]: line
        for line in result.stdout.splitlines()
        if line.startswith("provider ")
    }
    assert set(rows) == {"provider CUDA", "provider Tensorrt"}
    capi = Path(onnxruntime.__file__).parent / "capi"
    for name, library in (("CUDA", "cuda"), ("Tensorrt", "tensorrt")):
        row = rows[f"provider {name}"]
        if not (capi / f"libonnxruntime_providers_{library}.so").is_file():
            assert "not in this onnxruntime build" in row  # the CPU package
        else:  # onnxruntime-gpu: the verdict follows from the libraries its .so names
            assert ("cannot load" in row) == bool(
                missing_libraries(capi / f"libonnxruntime_providers_{library}.so")
            )
