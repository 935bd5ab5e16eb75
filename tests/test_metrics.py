"""Masked PSNR / SSIM / MAE / correlation against hand computation."""

import math

import pytest
import torch

from common.metrics import MaskedImageMetric, masked_image_metrics, pred_label_mask


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
    with pytest.raises(ValueError, match="unknown figure 'dice'"):
        MaskedImageMetric("dice")
    metric = MaskedImageMetric("mae", value_range=(0, 1))
    metric.reset()
    with pytest.raises(RuntimeError, match="mae: no image was evaluated"):
        metric.compute()
    # two decollated evaluator items, each 0 or 1 away from its target: the mean 0.5
    output = [{"pred": torch.full((1, 16, 16), v), "label": torch.zeros(1, 16, 16)} for v in (0.0, 1.0)]
    metric.update(pred_label_mask(output))
    assert metric.compute() == pytest.approx(0.5)


def test_correlation_by_hand_and_for_flat_or_inverted_predictions():
    def tiled(values):  # a 2x2 pattern repeated to 22x22 (SSIM needs 11x11): the same correlation as the pattern
        return torch.tensor(values).reshape(1, 2, 2).tile(1, 11, 11)

    target, pred = tiled([1.0, 2.0, 3.0, 4.0]) / 4, tiled([1.0, 3.0, 2.0, 4.0]) / 4
    # deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5): covariance sum 4, variance sums 5 and 5
    assert masked_image_metrics(pred, target)["ncc"] == pytest.approx(0.8)
    assert masked_image_metrics(0.5 * target + 0.1, target)["ncc"] == pytest.approx(1.0)
    assert masked_image_metrics(1 - target, target)["ncc"] == pytest.approx(-1.0)
    # a flat image at the target's mean: small MAE, yet no correlation
    flat = masked_image_metrics(torch.full_like(target, 2.5 / 4), target)
    assert flat["ncc"] == 0.0 and flat["mae"] == pytest.approx(0.25)
    # only the first three voxels of each pattern: (1, 2, 3) against (1, 3, 2), r = 0.5
    assert masked_image_metrics(pred, target, tiled([1.0, 1.0, 1.0, 0.0]))["ncc"] == pytest.approx(0.5)
