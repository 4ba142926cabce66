"""ONNX export of the one-step UNet (with the float32 x0 step) and of the decoder, batch dynamic.

    python -m engines.onnx_export OUT_DIR [--generator tiny] [--size 64] [--verify]

``unet_step.onnx``: (latent_input [B,4,h,w] f32, context [B,77,1024] f32) -> x0 [B,4,h,w] f32.
``decoder.onnx``: x0 [B,4,h,w] f32 -> image [B,3,H,W] f32 in about [-1,1].
The TensorRT backend builds its engines from these files; ``verify_onnx`` runs them with
onnxruntime on the CPU and reports the largest absolute difference from PyTorch.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.schedule import ONE_STEP_TIMESTEP, x0_from_eps
from prompts.stream_model import CONTEXT_SHAPE

ONNX_OPSET = 17  # LayerNormalization and SDPA-friendly ops; TensorRT 10 parses it
UNET_STEP_FILE = "unet_step.onnx"
DECODER_FILE = "decoder.onnx"


class UNetStep(nn.Module):
    """eps at t=999 and x0 = a * x_t - b * eps (x0 in float32), as one exportable graph."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, latent_input: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        param = next(self.unet.parameters())
        timestep = torch.full(
            (latent_input.shape[0],), ONE_STEP_TIMESTEP, dtype=torch.long, device=param.device
        )
        eps = self.unet(
            latent_input.to(param.dtype),
            timestep,
            encoder_hidden_states=context.to(param.dtype),
            return_dict=False,
        )[0]
        return x0_from_eps(latent_input, eps)


class DecoderImage(nn.Module):
    """The decoder with a float32 output."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return self.decoder(x0.to(next(self.decoder.parameters()).dtype)).float()


@dataclass(frozen=True)
class ExportedModels:
    """Paths of the two ONNX files."""

    unet_step: Path
    decoder: Path


def _export(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_name: str,
) -> None:
    dynamic = {name: {0: "batch"} for name in [*input_names, output_name]}
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is deprecated; the dynamo one needs onnxscript,
        # which the device image lacks. Models over 2 GB get external data files beside them.
        warnings.simplefilter("ignore", DeprecationWarning)
        # diffusers shape checks become constants (TracerWarning: public, not in torch.jit.__all__)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        torch.onnx.export(
            module,
            inputs,
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=input_names,
            output_names=[output_name],
            dynamic_axes=dynamic,
        )


def export_onnx(
    unet: nn.Module,
    decoder: nn.Module,
    out_dir: str | Path,
    *,
    height: int,
    width: int,
    example_batch: int = 2,
) -> ExportedModels:
    """Write ``unet_step.onnx`` and ``decoder.onnx`` for ``height`` x ``width`` frames, any batch."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    param = next(unet.parameters())
    latent = torch.randn(example_batch, 4, height // 8, width // 8, device=param.device)
    context = torch.randn(example_batch, *CONTEXT_SHAPE, device=param.device)
    exported = ExportedModels(out / UNET_STEP_FILE, out / DECODER_FILE)
    with torch.no_grad():
        _export(
            UNetStep(unet).eval(),
            (latent, context),
            exported.unet_step,
            ["latent_input", "context"],
            "x0",
        )
        _export(DecoderImage(decoder).eval(), (latent,), exported.decoder, ["x0"], "image")
    return exported


def verify_onnx(
    unet: nn.Module,
    decoder: nn.Module,
    exported: ExportedModels,
    *,
    height: int,
    width: int,
    batch: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Max |ONNX Runtime (CPU) - PyTorch| for x0 and the image, at a batch unlike the export's."""
    import onnxruntime as ort

    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(batch, 4, height // 8, width // 8, generator=generator)
    context = torch.randn(batch, *CONTEXT_SHAPE, generator=generator)
    with torch.no_grad():
        x0 = UNetStep(unet).eval()(latent, context)
        image = DecoderImage(decoder).eval()(x0)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    step = ort.InferenceSession(
        str(exported.unet_step), options, providers=["CPUExecutionProvider"]
    )
    dec = ort.InferenceSession(str(exported.decoder), options, providers=["CPUExecutionProvider"])
    (x0_onnx,) = step.run(None, {"latent_input": latent.numpy(), "context": context.numpy()})
    (image_onnx,) = dec.run(None, {"x0": x0.numpy()})
    return {
        "x0_max_abs_diff": float(np.abs(x0_onnx - x0.numpy()).max()),
        "image_max_abs_diff": float(np.abs(image_onnx - image.numpy()).max()),
        "x0_max_abs": float(np.abs(x0.numpy()).max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export a generator's UNet step and decoder to ONNX."
    )
    parser.add_argument("out_dir")
    parser.add_argument("--generator", default="tiny", choices=("tiny", "tiny-taesd", "sd-turbo"))
    parser.add_argument("--weights", default=None)
    parser.add_argument("--taesd", default=None)
    parser.add_argument(
        "--size", type=int, default=None, help="frame size in pixels (default: native)"
    )
    parser.add_argument(
        "--verify", action="store_true", help="compare with PyTorch through onnxruntime (CPU)"
    )
    args = parser.parse_args(argv)
    from engines import load_generator

    generator = load_generator(args.generator, weights=args.weights, taesd=args.taesd, device="cpu")
    size = args.size or generator.native_size[0]
    backend = generator.backend
    exported = export_onnx(backend.unet, backend.decoder, args.out_dir, height=size, width=size)
    print(
        f"wrote {exported.unet_step} and {exported.decoder} ({generator.generator_id}, {size}x{size})"
    )
    if args.verify:
        for name, value in verify_onnx(
            backend.unet, backend.decoder, exported, height=size, width=size
        ).items():
            print(f"{name}: {value:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
