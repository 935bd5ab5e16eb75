"""MedGAN's step: its generator loss against hand computation, the update order and counts, and VGG-19 skipped
when its two losses are off."""

import math

import pytest
import torch
from torch import nn

from common.engines import MedGANStep, MultiNetworkTrainer


class Taps(nn.Module):
    """A 'discriminator' with one hidden map (the input times 2) and constant logits, for arithmetic by hand."""

    def __init__(self, logit):
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(float(logit)))

    def forward(self, x):
        return [2 * x, x[:, :1] * 0 + self.logit]


class CountingVGG(nn.Module):
    """A 'feature extractor' returning the image itself, counting its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return [x]


def _trainer(step, logit=0.0):
    torch.manual_seed(0)
    nets = {"G": nn.Conv2d(1, 1, 1), "D": Taps(logit)}
    opts = {"G": torch.optim.SGD(nets["G"].parameters(), lr=0.1), "D": torch.optim.SGD(nets["D"].parameters(), lr=0.1)}
    return MultiNetworkTrainer(device="cpu", max_epochs=1, data_loader=[{}], networks=nets, optimizers=opts, step=step)


def test_generator_loss_by_hand():
    vgg = CountingVGG()
    step = MedGANStep(vgg, lambda_perceptual=20.0, lambda_style=0.5, lambda_content=0.25, lambda_pixel=3.0, generator_updates=1)
    trainer = _trainer(step)
    y, x = torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    with torch.no_grad():
        fake = trainer.networks["G"](y)
        l1 = (fake - x).abs().mean()
        # perceptual: the pixels (i = 0) and D's hidden map 2 * cat(image, y), whose y half is equal in both
        perceptual = 20.0 * (l1 + (2 * torch.cat([fake, y], 1) - 2 * torch.cat([x, y], 1)).abs().mean())
        gram = lambda f: (f.reshape(1, 1, 16) @ f.reshape(1, 16, 1)) / 16  # noqa: E731  1 channel x 16 positions
        style = 0.5 * ((gram(fake) - gram(x)) ** 2).sum() / 4
        content = 0.25 * ((fake - x) ** 2).mean()
    out = step(trainer, {"image": y, "label": x})
    assert out["loss_G_adv"] == pytest.approx(math.log(2))  # BCE of logit 0 against "real"
    assert out["loss_perceptual"] == pytest.approx(float(perceptual), rel=1e-5)
    assert out["loss_style"] == pytest.approx(float(style), rel=1e-5)
    assert out["loss_content"] == pytest.approx(float(content), rel=1e-5)
    assert out["loss_pixel"] == pytest.approx(3.0 * float(l1), rel=1e-5)
    assert out["loss_G"] == pytest.approx(math.log(2) + float(perceptual + style + content) + 3.0 * float(l1), rel=1e-5)
    assert vgg.calls == 2  # the target's features and the output's


def test_generator_updates_then_one_discriminator_update_and_vgg_skipped_when_unused():
    vgg = CountingVGG()
    trainer = _trainer(MedGANStep(vgg, lambda_style=0.0, lambda_content=0.0, generator_updates=3), logit=0.3)
    g_steps, d_steps = [], []
    trainer.optimizers["G"].register_step_post_hook(lambda *_: g_steps.append(trainer.networks["D"].logit.item()))
    trainer.optimizers["D"].register_step_post_hook(lambda *_: d_steps.append(trainer.networks["D"].logit.item()))
    out = trainer.step(trainer, {"image": torch.rand(1, 1, 4, 4), "label": torch.rand(1, 1, 4, 4)})
    assert len(g_steps) == 3 and len(d_steps) == 1
    assert g_steps == pytest.approx([0.3] * 3) and d_steps[0] < 0.3  # D frozen while G learns, then updated once
    assert vgg.calls == 0 and out["loss_style"] == out["loss_content"] == 0.0
    with pytest.raises(ValueError, match="generator_updates must be at least 1"):
        MedGANStep(vgg, generator_updates=0)
