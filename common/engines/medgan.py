"""One MedGAN iteration (Armanious et al. 2020): ``generator_updates`` updates of G, then one of D."""

from __future__ import annotations

import torch
from monai.losses import PatchAdversarialLoss
from torch import nn

from ..losses import ContentLoss, FeatureMatchingLoss, StyleLoss
from ..losses.adversarial import discriminator_adversarial_loss, generator_adversarial_loss


class MedGANStep:
    """``step(engine, batch)`` for ``MultiNetworkTrainer``, on a batch ``{"image": y (B,C,*S), "label": x (B,C,*S)}``
    of paired images (source contrast y, target x of the same subject on the same grid).

    Networks: ``G`` (CasNet) maps y to x_hat; ``D`` is a conditional discriminator on the pair (image, y) that
    returns its hidden feature maps D_i and, last, its patch logits. Optimisers ``"G"`` and ``"D"``. The VGG-19
    ``feature_extractor`` V is frozen and held here, not among the trained networks (``None`` when the style and
    content weights are 0: VGG-19 is then neither built nor run). D learns from the output of G's last update
    before that update was applied, as pix2pix does, which saves a forward pass of G.

    Generator loss = L_cGAN(D(x_hat, y)) + lambda_perceptual * sum_i lambda_pi |D_i(x_hat, y) - D_i(x, y)|_1 (means)
    + lambda_style * style(V(x_hat), V(x)) + lambda_content * content(V(x_hat), V(x)) + lambda_pixel * |x_hat - x|_1.
    The perceptual sum starts at i = 0, the pixels themselves (D_0 = the image D reads), so that it penalises the
    discrepancy "in the pixel and perceptual sense" as the paper puts it; ``lambda_pixel`` is an extra pixel L1
    (0 in the paper) for schedules too short for the adversarial features to become informative.
    discriminator loss = the mean of the real (x, y) and fake (x_hat, y) terms. MedGAN's Algorithm 1 updates G
    ``generator_updates`` times (its k_G) per update of D, each on the same batch.
    """

    required_networks = ("G", "D")
    required_optimizers = ("G", "D")

    def __init__(
        self,
        feature_extractor: nn.Module | None,
        lambda_perceptual: float = 20.0,
        lambda_style: float = 1e-4,
        lambda_content: float = 1e-4,
        lambda_pixel: float = 0.0,
        generator_updates: int = 3,
        adversarial_loss: nn.Module | None = None,
        perceptual_loss: nn.Module | None = None,
        style_loss: nn.Module | None = None,
        content_loss: nn.Module | None = None,
    ):
        if generator_updates < 1:
            raise ValueError(f"generator_updates must be at least 1, got {generator_updates}.")
        if feature_extractor is None and (lambda_style or lambda_content):
            raise ValueError("the style and content losses need a feature_extractor (VGG-19); none was given.")
        self.feature_extractor = feature_extractor
        self.lambda_perceptual, self.lambda_style = lambda_perceptual, lambda_style
        self.lambda_content, self.lambda_pixel = lambda_content, lambda_pixel
        self.generator_updates = generator_updates
        self.adversarial_loss = adversarial_loss or PatchAdversarialLoss(criterion="bce", reduction="mean")
        self.perceptual_loss = perceptual_loss or FeatureMatchingLoss()
        self.style_loss = style_loss or StyleLoss()
        self.content_loss = content_loss or ContentLoss()
        self.pixel_loss = nn.L1Loss()

    def generator_losses(self, nets: dict, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(total, terms) of G's loss for one batch, and the synthesised image under ``"fake"`` in the terms."""
        fake = nets["G"](source)
        d_fake = nets["D"](torch.cat([fake, source], dim=1))  # (B, 2C, *S): the pair the discriminator judges
        with torch.no_grad():
            d_real = nets["D"](torch.cat([target, source], dim=1))
        terms = {
            "loss_G_adv": generator_adversarial_loss(self.adversarial_loss, d_fake),
            "loss_perceptual": self.lambda_perceptual
            * self.perceptual_loss([fake, *d_fake[:-1]], [target, *d_real[:-1]]),
            "loss_style": fake.new_zeros(()),
            "loss_content": fake.new_zeros(()),
            "loss_pixel": self.lambda_pixel * self.pixel_loss(fake, target),
        }
        if self.lambda_style or self.lambda_content:  # VGG-19 is most of an iteration's cost: skip it when unused
            with torch.no_grad():
                v_real = self.feature_extractor(target)
            v_fake = self.feature_extractor(fake)
            terms["loss_style"] = self.lambda_style * self.style_loss(v_fake, v_real)
            terms["loss_content"] = self.lambda_content * self.content_loss(v_fake, v_real)
        return sum(terms.values()), {**terms, "fake": fake}

    def __call__(self, engine, batch: dict) -> dict:
        source, target = batch["image"], batch["label"]

        for _ in range(self.generator_updates):
            with engine.updating("G") as nets, engine.autocast():
                loss_g, terms = self.generator_losses(nets, source, target)
            engine.optimise("G", loss_g)
        fake = terms.pop("fake").detach()

        with engine.updating("D") as nets, engine.autocast():
            loss_d = discriminator_adversarial_loss(
                self.adversarial_loss,
                nets["D"](torch.cat([target, source], dim=1)),
                nets["D"](torch.cat([fake, source], dim=1)),
            )
        engine.optimise("D", loss_d)

        return {
            "loss_G": loss_g.item(),
            **{k: v.item() for k, v in terms.items()},
            "loss_D": loss_d.item(),
            "l1": float((fake - target).abs().mean()),
        }
