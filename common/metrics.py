"""PSNR, SSIM, MAE and correlation inside a mask (e.g. the brain), as functions and as ignite metrics for MONAI
evaluators.

Background dominates a head volume, so whole-image scores flatter any model; papers on MRI synthesis report
them inside the brain. Images are first mapped from ``value_range`` to 0..1, so PSNR uses a data range of 1
and MAE is in that unit. SSIM is MONAI's (Gaussian window 11, sigma 1.5) computed on axial slices and
averaged over the mask voxels. ``ncc`` is Pearson's correlation of the voxels inside the mask: unlike PSNR and
MAE it does not reward a flat image near the target's mean (0 for a constant prediction), so it tells an
output with the target's contrast from one without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.metrics.regression import KernelType, compute_ssim_and_cs

from .evaluation import FigureMean, decollated_items

METRICS = ("psnr", "ssim", "mae", "ncc")


def _prepare(pred, target, mask, value_range) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(C, *S) tensors scaled to 0..1 and a boolean mask of the same shape."""
    lo, hi = value_range
    pred = (torch.as_tensor(pred).float() - lo) / (hi - lo)
    target = (torch.as_tensor(target).float() - lo) / (hi - lo)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape.")
    mask = torch.ones_like(pred, dtype=torch.bool) if mask is None else torch.as_tensor(mask).to(pred.device) > 0
    if mask.shape != pred.shape:
        mask = mask.expand_as(pred) if mask.shape[0] == 1 else mask
        if mask.shape != pred.shape:
            raise ValueError(f"mask {tuple(mask.shape)} does not match the image {tuple(pred.shape)}.")
    if not mask.any():
        raise ValueError("the mask is empty: no voxel to compute metrics on.")
    return pred, target, mask


def masked_image_metrics(
    pred,
    target,
    mask=None,
    value_range: Sequence[float] = (0.0, 1.0),
    ssim_kernel: int = 11,
    names: Sequence[str] = METRICS,
) -> dict:
    """``names`` (default all of ``psnr``, ``ssim``, ``mae``, ``ncc``) of one (C, H, W[, D]) prediction against its
    target inside ``mask``."""
    pred, target, mask = _prepare(pred, target, mask, value_range)
    err = (pred - target)[mask]
    result = {}
    if "psnr" in names:
        mse = float((err**2).mean())
        result["psnr"] = float("inf") if mse == 0 else float(10 * torch.log10(torch.tensor(1.0 / mse)))
    if "ssim" in names:
        result["ssim"] = _masked_ssim(pred, target, mask, ssim_kernel)
    if "mae" in names:
        result["mae"] = float(err.abs().mean())
    if "ncc" in names:
        result["ncc"] = _correlation(pred[mask], target[mask])
    return result


def _masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, ssim_kernel: int) -> float:
    """MONAI's SSIM map on axial slices, averaged over the mask (cropped like the "valid" map)."""
    if pred.ndim == 4:  # (C, H, W, D) -> D axial slices (D, C, H, W)
        pred_2d, target_2d, mask_2d = (t.permute(3, 0, 1, 2) for t in (pred, target, mask))
    else:  # (C, H, W) -> (1, C, H, W)
        pred_2d, target_2d, mask_2d = pred[None], target[None], mask[None]
    ssim_map, _ = compute_ssim_and_cs(
        pred_2d,
        target_2d,
        spatial_dims=2,
        kernel_size=[ssim_kernel] * 2,
        kernel_sigma=[1.5, 1.5],
        data_range=1.0,
        kernel_type=KernelType.GAUSSIAN,
        k1=0.01,
        k2=0.03,
    )
    half = ssim_kernel // 2  # the SSIM map is "valid"-convolved: crop the mask to match
    mask_2d = mask_2d[..., half:-half, half:-half]
    return float(ssim_map[mask_2d].mean()) if mask_2d.any() else float("nan")


def _correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson's r of two voxel vectors; 0 where either is constant (no linear relation to measure)."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    norm = float(x.norm() * y.norm())
    return float((x * y).sum()) / norm if norm > 0 else 0.0


def pred_label_mask(output) -> list[dict]:
    """``output_transform`` for ``MaskedImageMetric`` on a decollated evaluator output: one ``{"pred", "label",
    "mask"}`` per image, the mask from ``eval_mask`` (copied there from the batch), ``None`` (whole image) if absent."""
    return [{"pred": i["pred"], "label": i["label"], "mask": i.get("eval_mask")} for i in decollated_items(output)]


class MaskedImageMetric(FigureMean):
    """Mean over images of one of ``psnr``, ``ssim``, ``mae``, ``ncc`` inside a mask, for ``key_val_metric`` of a MONAI
    evaluator. ``output_transform`` gives one ``{"pred", "label", "mask"}`` per image (default: ``pred_label_mask``)."""

    figures = METRICS
    counted = "image"

    def __init__(
        self,
        name: str,
        value_range: Sequence[float] = (-1.0, 1.0),
        output_transform: Callable = pred_label_mask,
    ):
        self.value_range = tuple(value_range)
        super().__init__(name, output_transform=output_transform)

    def figure(self, item) -> float:
        return masked_image_metrics(item["pred"], item["label"], item["mask"], self.value_range, names=(self.name,))[
            self.name
        ]
