"""A frozen VGG-19 feature extractor (Simonyan & Zisserman 2015) for the style and content losses of MedGAN.

The layers and their indices are those of torchvision's ``vgg19().features``, so the ImageNet checkpoint
``vgg19-dcbb9e9d.pth`` loads as it is (torchvision itself is not needed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..data.files import sha256_of

__all__ = ["VGG19_LAYERS", "VGG19Features", "expected_state_dict_shapes"]

logger = logging.getLogger(__name__)

# output channels of the 16 convolutions, "M" a 2x2 max-pool: 5 blocks of 2, 2, 4, 4, 4 convolutions
_CFG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
    "M",
)
CHECKPOINT_NAME = "vgg19-dcbb9e9d.pth"
CHECKPOINT_URL = f"https://download.pytorch.org/models/{CHECKPOINT_NAME}"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> dict[str, int]:
    """``conv{block}_{k}``, ``relu{block}_{k}`` and ``pool{block}`` -> index in ``features``."""
    names, index, block, k = {}, 0, 1, 1
    for v in _CFG:
        if v == "M":
            names[f"pool{block}"] = index
            index, block, k = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{k}"], names[f"relu{block}_{k}"] = index, index + 1
            index, k = index + 2, k + 1
    return names


VGG19_LAYERS: dict[str, int] = _layer_names()


def expected_state_dict_shapes() -> dict[str, tuple[int, ...]]:
    """The keys and shapes of the checkpoint's ``features.*`` entries: ``features.0.weight`` (64, 3, 3, 3), ..."""
    shapes, in_ch, index = {}, 3, 0
    for v in _CFG:
        if v == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (int(v), in_ch, 3, 3)
        shapes[f"features.{index}.bias"] = (int(v),)
        in_ch, index = int(v), index + 2
    return shapes


def _check_state_dict(state: Mapping, path: Path) -> dict[str, torch.Tensor]:
    """Keep the ``features.*`` entries (a full ``vgg19`` state dict also has ``classifier.*``) and check them."""
    if any(not isinstance(k, str) for k in state):
        raise ValueError(f"{path}: not a state dict (a mapping of parameter names to tensors).")
    if not any(k.startswith("features.") for k in state) and all(k.split(".")[0].isdigit() for k in state):
        state = {f"features.{k}": v for k, v in state.items()}  # saved from ``vgg19().features`` itself
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    expected = expected_state_dict_shapes()
    missing = [k for k in expected if k not in features]
    unexpected = [k for k in features if k not in expected]
    wrong = [
        f"{k}: {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__} (expected {expected[k]})"
        for k, v in features.items()
        if k in expected and (not isinstance(v, torch.Tensor) or tuple(v.shape) != expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
    if wrong:
        problems.append(f"wrong shapes {wrong[:4]}{' ...' if len(wrong) > 4 else ''}")
    if problems:
        raise ValueError(
            f"{path} is not a torchvision VGG-19 state dict ({'; '.join(problems)}); "
            f"expected the ImageNet checkpoint {CHECKPOINT_NAME} ({CHECKPOINT_URL})."
        )
    return features


class VGG19Features(nn.Module):
    """Frozen VGG-19 convolutional part, returning the feature maps after the layers in ``layers``.

    The default taps are the last ReLU of each of the five convolution blocks, ``relu1_2``, ``relu2_2``,
    ``relu3_4``, ``relu4_4`` and ``relu5_4`` (torchvision indices 3, 8, 17, 26, 35), with 64, 128, 256, 512 and
    512 channels at 1, 1/2, 1/4, 1/8 and 1/16 of the input size: MedGAN computes its style and content losses on
    VGG-19 block outputs.

    The extractor is always frozen: no parameter requires grad and ``train()`` leaves it in eval mode.
    Gradients still flow to the input.

    Args:
        weights: path to a ``.pth`` state dict of torchvision's ``vgg19`` (``features.*`` and ``classifier.*``
            keys, or only ``features.*``), e.g. the ImageNet checkpoint ``vgg19-dcbb9e9d.pth``; or ``"random"``
            for a frozen, randomly initialised extractor (fixed seed; a deviation from the paper, which uses
            ImageNet weights).
        layers: names (``conv{b}_{k}``, ``relu{b}_{k}``, ``pool{b}``, see ``VGG19_LAYERS``) or indices into
            ``features`` of the layers whose outputs are returned, in this order.

    Raises:
        FileNotFoundError: ``weights`` is None or no such file.
        ValueError: the file is not a torch file, or its keys or shapes are not VGG-19's; a layer is unknown.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = "random",
        layers: Sequence[str | int] = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
    ):
        super().__init__()
        modules: list[nn.Module] = []
        in_ch = 3
        for v in _CFG:
            if v == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU()]
                in_ch = int(v)
        self.features = nn.Sequential(*modules)
        self.layers = [self._index(layer) for layer in layers]
        if not self.layers:
            raise ValueError("layers must name at least one layer.")
        # not persistent: the state dict keeps exactly the checkpoint's ``features.*`` keys
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        if isinstance(weights, str) and weights == "random":
            self._init_random()
        else:
            self._load(weights)
        self.requires_grad_(False)
        super().train(False)

    def _index(self, layer: str | int) -> int:
        if isinstance(layer, str):
            if layer not in VGG19_LAYERS:
                raise ValueError(f"unknown VGG-19 layer {layer!r}; expected one of {list(VGG19_LAYERS)}.")
            return VGG19_LAYERS[layer]
        if not 0 <= int(layer) < len(self.features):
            raise ValueError(f"VGG-19 layer index {layer} is outside 0..{len(self.features) - 1}.")
        return int(layer)

    def _init_random(self) -> None:
        """torchvision's VGG initialisation (He normal, fan-out; zero bias) from a fixed seed, so that
        the "random" extractor, and so the losses, are the same in every run."""
        gen = torch.Generator().manual_seed(0)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                nn.init.zeros_(m.bias)
        logger.info("VGG-19 feature extractor: frozen random weights (seed 0), not ImageNet")

    def _load(self, weights: str | os.PathLike | None) -> None:
        path = None if weights is None else Path(weights).expanduser()
        if path is None or not path.is_file():
            raise FileNotFoundError(
                f"VGG-19 weights not found ({'no path given' if path is None else path}). Download torchvision's "
                f"ImageNet VGG-19 checkpoint {CHECKPOINT_NAME} ({CHECKPOINT_URL}) and pass its path as "
                '`vgg_weights`, or set `vgg_weights: "random"` for a frozen randomly initialised extractor '
                "(a deviation from the paper)."
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # unpickling, zip and safe-load errors have various types
            raise ValueError(f"{path} could not be read as a torch state dict ({type(e).__name__}: {e}).") from e
        if not isinstance(state, Mapping):
            raise ValueError(f"{path}: not a state dict but a {type(state).__name__}.")
        self.load_state_dict(_check_state_dict(state, path))
        logger.info("VGG-19 feature extractor: loaded %s (sha256 %s)", path, sha256_of(path))

    def train(self, mode: bool = True) -> VGG19Features:
        """Stays in eval mode: the extractor is a fixed loss network."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """
        Args:
            x: (B, C, H, W) or (B, C, H, W, D) images in [-1, 1], C = 1 (grayscale, repeated) or 3.

        Returns:
            the feature maps of ``layers``, each (N, C_j, H_j, W_j) with N = B for 2D and N = B * D for 3D
            (slices along the last axis, batch-major: slice d of item b is at b * D + d).
        """
        if x.ndim == 5:
            b, c, h, w, d = x.shape
            x = x.permute(0, 4, 1, 2, 3).reshape(b * d, c, h, w)  # (B, C, H, W, D) -> (B*D, C, H, W)
        elif x.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) or (B, C, H, W, D) input, got shape {tuple(x.shape)}.")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # (N, 1, H, W) -> (N, 3, H, W)
        elif x.shape[1] != 3:
            raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}.")
        x = ((x + 1) / 2 - self.mean) / self.std  # [-1, 1] -> [0, 1] -> ImageNet normalised
        taps: dict[int, torch.Tensor] = {}
        last = max(self.layers)
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self.layers:
                taps[i] = x
            if i == last:
                break
        return [taps[i] for i in self.layers]
