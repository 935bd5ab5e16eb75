"""One AE-GAN iteration (Cao et al., IJCV 2023): the autoencoder-discriminator A, then the synthesis network S."""

from __future__ import annotations

import torch
from monai.losses import PatchAdversarialLoss
from torch import nn

from ..data.contrasts import random_input_subsets, with_inputs
from ..losses import SelfRepresentationLoss
from ..losses.adversarial import generator_adversarial_loss
from ..networks.ae_gan import missing_flags

INPUT_SUBSETS = ("all", "random")


class AEGANStep:
    """``step(engine, batch)`` for ``MultiNetworkTrainer`` on ``{"image": stack (B, 2N, *S), "label": y (B, 1, *S)}``:
    the N input contrasts with their missing flags (``common.data.StackContrastsd``) and the target contrast.

    Networks: ``S`` (``MultiContrastSynthesisNet``) and ``A`` (``ContrastAutoencoder``: ``A(y)`` gives the
    reconstruction y', its decoder features and D(y); ``A(x, decode=False)`` gives D(x) alone, D being A's encoder
    with a patch head). Optimisers ``"S"`` and ``"A"``. Each iteration, as the authors' code does:

    1. the inputs S sees: ``input_subsets="all"`` gives S every contrast the subject has (the paper's setting: only
       the target is missing); ``"random"`` draws, per item, a subset uniformly among the non-empty subsets of them,
       so that one model learns every combination. S synthesises y_hat and its decoder features.
    2. A (autoencoder and discriminator) is updated on
       ``lambda_adv * 0.5 * [BCE(D(y), 1) + 0.5 * (BCE(D(y_hat), 0) + BCE(D(y'), 0))] + lambda_rec * |y' - y|_1``
       (L_AD: real targets against both synthesised and reconstructed ones; y_hat and y' detached).
    3. S is updated, A frozen, on ``lambda_adv * BCE(D(y_hat), 1) + lambda_l1 * |y_hat - y|_1 + lambda_sr * L_SR``,
       L_SR the KL between A's decoder features of y (from step 2, detached: the teacher) and S's.
    ``lambda_sr`` is multiplied by ``sr_decay`` every ``sr_decay_interval`` iterations (the authors: 0.05 every 5000;
    ``sr_decay=1`` keeps it constant).

    ``context_slices`` k: the stacks are 2.5D, (B, 2N * k, H, W), each channel with its k - 1 neighbouring slices
    (``common.data.RandForegroundSliced(context_slices=k)``); the target stays one slice.
    """

    required_networks = ("S", "A")
    required_optimizers = ("S", "A")

    def __init__(
        self,
        lambda_adv: float = 1.0,
        lambda_l1: float = 100.0,
        lambda_rec: float = 100.0,
        lambda_sr: float = 0.1,
        sr_decay: float = 0.05,
        sr_decay_interval: int = 5000,
        input_subsets: str = "all",
        context_slices: int = 1,
        adversarial_loss: nn.Module | None = None,
        self_representation_loss: nn.Module | None = None,
    ):
        if input_subsets not in INPUT_SUBSETS:
            raise ValueError(f"input_subsets must be one of {INPUT_SUBSETS}, got '{input_subsets}'.")
        if sr_decay_interval < 1:
            raise ValueError(f"sr_decay_interval must be at least 1, got {sr_decay_interval}.")
        self.lambda_adv, self.lambda_l1, self.lambda_rec, self.lambda_sr = lambda_adv, lambda_l1, lambda_rec, lambda_sr
        self.sr_decay, self.sr_decay_interval, self.input_subsets = sr_decay, sr_decay_interval, input_subsets
        self.context_slices = context_slices
        self.adversarial_loss = adversarial_loss or PatchAdversarialLoss(criterion="bce", reduction="mean")
        self.self_representation_loss = self_representation_loss or SelfRepresentationLoss()
        self.pixel_loss = nn.L1Loss()

    def sr_weight(self, iteration: int) -> float:
        """lambda_sr at a (1-based) iteration."""
        return self.lambda_sr * self.sr_decay ** ((iteration - 1) // self.sr_decay_interval)

    def inputs(self, stack: torch.Tensor) -> torch.Tensor:
        """The stack S sees this iteration (all the given contrasts, or a random non-empty subset of them)."""
        if self.input_subsets == "all":
            return stack
        num_inputs = stack.shape[1] // (2 * self.context_slices)
        available = missing_flags(stack, num_inputs) < 0.5  # (B, N)
        return with_inputs(stack, random_input_subsets(available))

    def _bce(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        return self.adversarial_loss(logits, target_is_real=real, for_discriminator=True)

    def __call__(self, engine, batch: dict) -> dict:
        stack, target = self.inputs(batch["image"]), batch["label"]

        with engine.updating("S") as nets, engine.autocast():
            fake, features_s = nets["S"](stack, return_features=True)  # S's graph is kept for its update below

        with engine.updating("A") as nets, engine.autocast():
            recon, features_a, d_real = nets["A"](target)
            d_fake = nets["A"](fake.detach(), decode=False)
            d_recon = nets["A"](recon.detach(), decode=False)
            loss_ad = 0.5 * (self._bce(d_real, True) + 0.5 * (self._bce(d_fake, False) + self._bce(d_recon, False)))
            loss_rec = self.pixel_loss(recon, target)
            loss_a = self.lambda_adv * loss_ad + self.lambda_rec * loss_rec
        engine.optimise("A", loss_a)

        lambda_sr = self.sr_weight(engine.state.iteration)
        with engine.updating("S") as nets, engine.autocast():
            terms = {
                "loss_S_adv": self.lambda_adv
                * generator_adversarial_loss(self.adversarial_loss, nets["A"](fake, decode=False)),
                "loss_l1": self.lambda_l1 * self.pixel_loss(fake, target),
                "loss_sr": lambda_sr * self.self_representation_loss(features_s, [f.detach() for f in features_a]),
            }
            loss_s = sum(terms.values())
        engine.optimise("S", loss_s)

        return {
            "loss_S": loss_s.item(),
            **{k: v.item() for k, v in terms.items()},
            "loss_A": loss_a.item(),
            "loss_AD": loss_ad.item(),
            "loss_rec": loss_rec.item(),
            "lambda_sr": lambda_sr,
            "l1": float((fake.detach() - target).abs().mean()),
        }
