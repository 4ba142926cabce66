"""Float8 (e4m3) linear layers through ``torch._scaled_mm``: Hopper tensor cores at twice the fp16 rate."""

from __future__ import annotations

import torch
from torch import nn

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0  # largest finite float8_e4m3fn value
FP8_ALIGNMENT = 16  # _scaled_mm needs both matrix dimensions it contracts/produces divisible by 16
# Linears whose input is the 77-token text context (cross-attention keys/values) stay in fp16:
# their row count (batch x 77) is small and not a multiple of 16.
CONTEXT_LINEAR_SUFFIXES = ("attn2.to_k", "attn2.to_v", "attn2.to_kv")


def _per_tensor_scale(tensor: torch.Tensor) -> torch.Tensor:
    return (tensor.abs().amax().float() / FP8_MAX).clamp(min=1e-12)


class Fp8Linear(nn.Module):
    """``nn.Linear`` with a float8 weight (per-tensor scale, fixed) and float8 input (per-tensor, per call)."""

    # buffers (register_buffer below)
    weight_fp8: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach()
        scale = _per_tensor_scale(weight)
        self.out_features, self.in_features = weight.shape
        self.register_buffer(
            "weight_fp8", (weight.float() / scale).to(FP8_DTYPE).contiguous()
        )  # [N, K]
        self.register_buffer("weight_scale", scale.reshape(()))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())
        self.out_dtype = weight.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        scale = _per_tensor_scale(rows)
        rows_fp8 = (rows.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
        out = torch._scaled_mm(
            rows_fp8,
            self.weight_fp8.t(),
            scale_a=scale,
            scale_b=self.weight_scale,
            bias=self.bias,
            out_dtype=self.out_dtype,
        )
        return out.reshape(*x.shape[:-1], self.out_features)


def fp8_eligible(name: str, module: nn.Module) -> bool:
    """Attention-block linears of the UNet that see image tokens, with 16-aligned sizes."""
    return (
        isinstance(module, nn.Linear)
        and ".attentions." in f".{name}"
        and not name.endswith(CONTEXT_LINEAR_SUFFIXES)
        and module.in_features % FP8_ALIGNMENT == 0
        and module.out_features % FP8_ALIGNMENT == 0
    )


def convert_linears_to_fp8(model: nn.Module) -> int:
    """Replace every eligible linear of ``model`` in place; returns how many were replaced."""
    targets = [
        (name, module) for name, module in model.named_modules() if fp8_eligible(name, module)
    ]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(
            model.get_submodule(parent_name) if parent_name else model, child, Fp8Linear(module)
        )
    return len(targets)
