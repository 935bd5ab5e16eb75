"""Masked PSNR / SSIM / MAE against hand computation."""

import math

import pytest
import torch

from common.metrics import MaskedImageMetric, masked_image_metrics


def test_masked_metrics_by_hand():
    target = torch.zeros(1, 32, 32, 3)
    pred = target.clone()
    mask = torch.zeros_like(target)
    mask[:, 8:24, 8:24, :] = 1
    pred[:, 8:24, 8:24, :] = 0.1  # error 0.1 inside the mask
    pred[:, :4, :4, :] = 1.0  # large error outside the mask must not count
    m = masked_image_metrics(pred, target, mask)
    assert m["mae"] == pytest.approx(0.1, rel=1e-5)
    assert m["psnr"] == pytest.approx(10 * math.log10(1 / 0.01), rel=1e-4)  # 20 dB
    whole = masked_image_metrics(pred, target, None)
    assert whole["mae"] == pytest.approx((16 * 16 * 0.1 + 16 * 1.0) / (32 * 32), rel=1e-5)


def test_ssim_identical_and_value_range():
    torch.manual_seed(0)
    img = torch.rand(1, 24, 24, 2) * 2 - 1
    m = masked_image_metrics(img, img, value_range=(-1, 1))
    assert m["ssim"] == pytest.approx(1.0) and m["mae"] == 0 and m["psnr"] == math.inf
    noisy = masked_image_metrics(img, (img + 0.5 * torch.randn_like(img)).clamp(-1, 1), value_range=(-1, 1))
    assert 0 < noisy["ssim"] < 0.9


def test_metric_errors_and_ignite_wrapper():
    with pytest.raises(ValueError, match="mask is empty"):
        masked_image_metrics(torch.zeros(1, 16, 16), torch.zeros(1, 16, 16), torch.zeros(1, 16, 16))
    with pytest.raises(ValueError, match="unknown metric"):
        MaskedImageMetric("dice")
    metric = MaskedImageMetric("mae", value_range=(0, 1))
    metric.reset()
    metric.update(([torch.zeros(1, 16, 16), torch.ones(1, 16, 16)], [torch.zeros(1, 16, 16)] * 2, [None, None]))
    assert metric.compute() == pytest.approx(0.5)
