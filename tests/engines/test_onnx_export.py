"""ONNX export of the tiny generator's UNet step and decoder, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.onnx_export import DECODER_FILE, UNET_STEP_FILE, UNetStep, export_onnx, verify_onnx
from engines.schedule import x0_from_eps

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SIZE = 64  # pixels: 8x8 latents keep the export and the CPU runs to seconds


@pytest.fixture(scope="module")
def exported(tiny_generator, tmp_path_factory):
    backend = tiny_generator.backend
    return export_onnx(
        backend.unet, backend.decoder, tmp_path_factory.mktemp("onnx"), height=SIZE, width=SIZE
    )


def test_files_have_a_dynamic_batch(exported):
    assert exported.unet_step.name == UNET_STEP_FILE and exported.decoder.name == DECODER_FILE
    step = onnx.load(str(exported.unet_step))
    onnx.checker.check_model(step)
    inputs = {i.name: i for i in step.graph.input}
    assert set(inputs) == {"latent_input", "context"} and [o.name for o in step.graph.output] == [
        "x0"
    ]
    for tensor in (*step.graph.input, *step.graph.output):
        assert (
            tensor.type.tensor_type.shape.dim[0].dim_param == "batch"
        )  # symbolic, not the example's 2
    decoder = onnx.load(str(exported.decoder))
    assert [i.name for i in decoder.graph.input] == ["x0"] and [
        o.name for o in decoder.graph.output
    ] == ["image"]
    assert decoder.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_onnxruntime_matches_pytorch_at_another_batch(tiny_generator, exported):
    backend = tiny_generator.backend
    diffs = verify_onnx(backend.unet, backend.decoder, exported, height=SIZE, width=SIZE, batch=3)
    # x0 is ~14.6 x eps (values up to ~50 here): float32 rounding, a few 1e-5 at most.
    assert diffs["x0_max_abs_diff"] < 1e-3 * max(1.0, diffs["x0_max_abs"]), diffs
    assert diffs["image_max_abs_diff"] < 1e-4, diffs


def test_unet_step_is_the_generators_x0(tiny_generator):
    latent, context = torch.randn(2, 4, 8, 8), torch.randn(2, 77, 1024)
    with torch.no_grad():
        step_x0 = UNetStep(tiny_generator.backend.unet)(latent, context)
        expected = x0_from_eps(latent, tiny_generator.backend.eps(latent, context))
    np.testing.assert_allclose(step_x0.numpy(), expected.numpy(), rtol=0, atol=1e-5)
