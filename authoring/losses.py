"""Fitting losses: MSE plus a pluggable perceptual term plus a penalty on |c|.

Every term returns one value per frame (shape ``[B]``) so the fitting loop can weight the
interval's worst frame. Images are in the generator's range, about [-1, 1].
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

PerceptualTerm = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SSIM_WINDOW = 11  # pixels, Gaussian window of Wang et al.
SSIM_SIGMA = 1.5  # pixels
SSIM_C1 = 0.01**2  # for data range 1
SSIM_C2 = 0.03**2
# Per-scale exponents of MS-SSIM (Wang, Simoncelli, Bovik 2003); fewer scales on small images.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


@functools.cache
def gaussian_window(channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The separable SSIM window, made once per (channels, device, dtype): a CUDA graph being
    captured cannot copy a fresh host tensor to the device."""
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    g = (g / g.sum()).to(device=device, dtype=dtype)
    return g.reshape(1, 1, 1, -1).repeat(channels, 1, 1, 1)


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    channels = x.shape[1]
    x = F.conv2d(x, window, groups=channels)  # separable: rows
    return F.conv2d(x, window.transpose(2, 3), groups=channels)  # then columns


def ssim_terms(
    x: torch.Tensor, y: torch.Tensor, window: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean SSIM and mean contrast-structure term, images in [0, 1]."""
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    sxx = _blur(x * x, window) - mu_x**2
    syy = _blur(y * y, window) - mu_y**2
    sxy = _blur(x * y, window) - mu_x * mu_y
    cs = (2 * sxy + SSIM_C2) / (sxx + syy + SSIM_C2)
    luminance = (2 * mu_x * mu_y + SSIM_C1) / (mu_x**2 + mu_y**2 + SSIM_C1)
    return (luminance * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales an image of this size supports (the coarsest keeps a full window)."""
    side = min(height, width)
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and side // (2**scales) >= SSIM_WINDOW:
        scales += 1
    return scales


@functools.cache
def ms_ssim_exponents(scales: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The per-scale exponents for ``scales`` scales, normalised to sum to 1 (made once)."""
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], device=device, dtype=dtype)
    return weights / weights.sum()


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM of two ``[B, C, H, W]`` batches in [0, 1] (scales adapt to the size)."""
    scales = ms_ssim_scales(x.shape[-2], x.shape[-1])
    weights = ms_ssim_exponents(scales, x.device, x.dtype)
    window = gaussian_window(x.shape[1], x.device, x.dtype)
    factors = []
    for scale in range(scales):
        ssim, cs = ssim_terms(x, y, window)
        if scale == scales - 1:
            factors.append(ssim.clamp_min(1e-6) ** weights[scale])
        else:
            factors.append(cs.clamp_min(1e-6) ** weights[scale])
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    # A running product, not ``torch.prod``: prod's backward asks the host whether any factor
    # is zero (a synchronisation), which invalidates the CUDA-graph capture of a fitting step.
    return functools.reduce(operator.mul, factors)


def ms_ssim_loss(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM per frame; inputs in [-1, 1]."""
    return 1.0 - ms_ssim((image.float() + 1) / 2, (target.float() + 1) / 2)


# VGG16 "features" up to relu3_3, torchvision layer numbering: (index, in, out) or "pool".
_VGG16_LAYERS: tuple[tuple[int, int, int] | str, ...] = (
    (0, 3, 64), (2, 64, 64), "pool",
    (5, 64, 128), (7, 128, 128), "pool",
    (10, 128, 256), (12, 256, 256), (14, 256, 256),
)  # fmt: skip
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_from_state(
    state: dict[str, torch.Tensor], path: str | Path, index: int, shape: tuple[int, int] | None
) -> torch.nn.Conv2d:
    """The 3x3 convolution ``features.{index}`` of a torchvision-layout VGG state dict.

    ``shape`` (in, out) is checked when given; otherwise the widths are read from the file.
    """
    keys = (f"features.{index}.weight", f"features.{index}.bias")
    for key in keys:
        if key not in state:
            raise ValueError(f"VGG weights file {path} lacks {key}")
    weight, bias = state[keys[0]].float(), state[keys[1]].float()
    if weight.dim() != 4 or weight.shape[2:] != (3, 3) or bias.shape != weight.shape[:1]:
        raise ValueError(
            f"VGG weights file {path}: {keys[0]} has shape {tuple(weight.shape)}, not a 3x3 conv"
        )
    if shape is not None and tuple(weight.shape[1::-1]) != shape:
        raise ValueError(f"VGG weights file {path}: {keys[0]} has shape {tuple(weight.shape)}")
    conv = torch.nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
    conv.weight.data.copy_(weight)
    assert conv.bias is not None  # built with one
    conv.bias.data.copy_(bias)
    return conv


class VGGFeatureLoss(torch.nn.Module):
    """Perceptual loss on VGG16 features (relu1_2, relu2_2, relu3_3) from a user's weights file.

    The file is a torchvision-layout state dict (``features.0.weight`` ...) as safetensors or a
    ``torch.save`` file; the latter is read with ``weights_only=True``.
    """

    mean: torch.Tensor  # buffers: ImageNet mean and std, [1, 3, 1, 1]
    std: torch.Tensor

    def __init__(self, weights_path: str | Path) -> None:
        super().__init__()
        state = load_state_dict(weights_path)
        self.convs = torch.nn.ModuleList()
        self.plan: list[str] = []
        for layer in _VGG16_LAYERS:
            if isinstance(layer, str):  # "pool"
                self.plan.append("pool")
                continue
            index, cin, cout = layer
            self.convs.append(conv_from_state(state, weights_path, index, (cin, cout)))
            self.plan.append("conv")
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        taps, conv_index, outputs = {1, 3, 6}, 0, []
        for step in self.plan:
            if step == "pool":
                x = F.max_pool2d(x, 2)
                continue
            x = F.relu(self.convs[conv_index](x))
            if conv_index in taps:
                outputs.append(x)
            conv_index += 1
        return outputs

    def forward(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses = [
            F.mse_loss(a, b, reduction="none").flatten(1).mean(1)
            for a, b in zip(
                self._features(image.float()), self._features(target.float()), strict=True
            )
        ]
        return torch.stack(losses, 0).mean(0)


# VGG19 "features", torchvision numbering: the 16 convolutions; a 2x2 max-pool follows
# convolutions 2, 4, 8 and 12 (1-based).
VGG19_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
VGG19_POOL_AFTER = frozenset({1, 3, 7, 11})  # 0-based positions in VGG19_CONV_INDICES


class VGG19PreReluLoss(torch.nn.Module):
    """The original release's perceptual term: VGG19, the mean over its 16 convolutions of the
    per-frame MSE between their outputs (taken before the ReLU that follows each), inputs
    normalised with the ImageNet mean/std *as they are*, i.e. on [-1, 1] images.

    Weights come only from the user's torchvision-layout file (``features.N.weight/bias``,
    safetensors or a ``torch.save`` dict read with ``weights_only=True``); nothing is ever
    downloaded. Channel widths are read from the file (64 ... 512 in a real VGG19), so a small
    file of the same layout also loads (tests use one).
    """

    mean: torch.Tensor  # buffers: ImageNet mean and std, [1, 3, 1, 1]
    std: torch.Tensor

    def __init__(self, weights_path: str | Path) -> None:
        super().__init__()
        state = load_state_dict(weights_path)
        self.convs = torch.nn.ModuleList()
        channels = 3
        for index in VGG19_CONV_INDICES:
            conv = conv_from_state(state, weights_path, index, None)
            if conv.in_channels != channels:
                raise ValueError(
                    f"VGG weights file {weights_path}: features.{index}.weight takes "
                    f"{conv.in_channels} channels, the layer before gives {channels}"
                )
            channels = conv.out_channels
            self.convs.append(conv)
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 16 pre-ReLU convolution outputs of images in [-1, 1]."""
        x = (x - self.mean) / self.std
        outputs = []
        for position, conv in enumerate(self.convs):
            x = conv(x)
            outputs.append(x)
            x = F.relu(x)
            if position in VGG19_POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return outputs

    def forward(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses = [
            (a - b).pow(2).flatten(1).mean(1)
            for a, b in zip(
                self.features(image.float()), self.features(target.float()), strict=True
            )
        ]
        return torch.stack(losses, 0).mean(0)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A tensor dict from safetensors or a ``torch.save`` file (never unpickles objects)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"perceptual weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a state dict")
    return state


def perceptual_term(spec: str) -> PerceptualTerm:
    """``"ms-ssim"`` (default, no weights), ``"none"``, ``"vgg:PATH"`` (VGG16 weights file) or
    ``"vgg19:PATH"`` (the original release's VGG19 term, weights file)."""
    if spec == "ms-ssim":
        return ms_ssim_loss
    if spec == "none":
        return lambda image, target: torch.zeros(image.shape[0], device=image.device)
    if spec.startswith("vgg:"):
        return VGGFeatureLoss(spec[4:])
    if spec.startswith("vgg19:"):
        return VGG19PreReluLoss(spec[6:])
    raise ValueError(
        f"unknown perceptual term {spec!r} (use ms-ssim, none, vgg:PATH or vgg19:PATH)"
    )


@dataclass(frozen=True)
class LossWeights:
    """Weights of the reference loss: 0.8 MSE + 0.2 perceptual + 0.1 mean |c|."""

    mse: float = 0.8
    perceptual: float = 0.2
    context_l1: float = 0.1


class FitLoss:
    """Per-frame fitting loss ``mse * MSE + perceptual * P + context_l1 * mean|c|``.

    ``clamp``: score the image clamped to [-1, 1] (what a viewer sees); the original release
    scores the raw decoder output (``clamp=False``, the paper preset).
    """

    def __init__(
        self, perceptual: PerceptualTerm, weights: LossWeights, clamp: bool = True
    ) -> None:
        self.perceptual = perceptual
        self.weights = weights
        self.clamp = clamp

    def to(self, device: torch.device) -> FitLoss:
        if isinstance(self.perceptual, torch.nn.Module):
            self.perceptual.to(device)
        return self

    def __call__(
        self, image: torch.Tensor, target: torch.Tensor, context: torch.Tensor
    ) -> torch.Tensor:
        # Compare what a viewer sees: decoded frames are clamped to [-1, 1] before becoming
        # pixels, and a generator may overshoot that range (the tiny one does, a lot).
        image = image.float().clamp(-1.0, 1.0) if self.clamp else image.float()
        per_frame = self.weights.mse * (image - target).pow(2).flatten(1).mean(1)
        if self.weights.perceptual:
            per_frame = per_frame + self.weights.perceptual * self.perceptual(image, target)
        if self.weights.context_l1:
            per_frame = per_frame + self.weights.context_l1 * context.float().abs().flatten(1).mean(
                1
            )
        return per_frame

    def latent(self, x0: torch.Tensor, target: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Per-frame latent-phase loss: ``mse * MSE(x0, encoded target) + context_l1 * mean|c|``."""
        per_frame = self.weights.mse * (x0.float() - target).pow(2).flatten(1).mean(1)
        if self.weights.context_l1:
            per_frame = per_frame + self.weights.context_l1 * context.float().abs().flatten(1).mean(
                1
            )
        return per_frame


def psnr_from_mse(mse: float, peak_to_peak: float = 2.0) -> float:
    """PSNR in dB of an MSE measured on images of the given range (2 for [-1, 1])."""
    if mse <= 0:
        return math.inf
    return 10 * math.log10(peak_to_peak**2 / mse)


def mse_from_psnr(psnr: float, peak_to_peak: float = 2.0) -> float:
    """The MSE, on images of the given range (2 for [-1, 1]), that has this PSNR in dB."""
    return peak_to_peak**2 / 10 ** (psnr / 10)
