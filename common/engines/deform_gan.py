"""One iteration of Deform-GAN: the discriminator D, then the generator G, then the transformation network T."""

from __future__ import annotations

import torch
from monai.losses import LocalNormalizedCrossCorrelationLoss, PatchAdversarialLoss
from monai.networks.blocks import Warp
from torch import nn

from ..losses.adversarial import discriminator_adversarial_loss, generator_adversarial_loss
from ..losses.local_gradient import LocalGradientLoss
from ..registration.ops import diffusion


class DeformGANStep:
    """``step(engine, batch)`` for ``MultiNetworkTrainer`` on ``{"fixed": R (B, 1, *S), "moving": F (B, 1, *S)}``
    (optionally ``"true_ddf"``, the known deformation, for monitoring only).

    Networks: ``T`` (``TransformationNetwork``: (R, F) -> phi), ``G`` (F(phi) -> F'(phi), into R's modality) and
    ``D`` (conditional: tells (F(phi), R) from (F(phi), F'(phi))). Optimisers ``"T"``, ``"G"``, ``"D"``. F(phi) is
    F warped by phi with MONAI's ``Warp``. In each iteration, each sub-step with the other two networks frozen:

    1. D: ``L_D = cGAN(D(F(phi), R), real) + cGAN(D(F(phi), F'(phi)), fake)`` (halved, as pix2pix);
    2. G: ``L_G = cGAN(D(F(phi), F'(phi)), real) - mu * L_LG(F'(phi), F(phi)) + lambda_pixel * |F'(phi) - R|_1``
       (the paper's lambda): look like R, keep F(phi)'s edges (so G translates contrast and does not move anatomy);
    3. T: ``L_T = -LCC(R, F'(phi)) - beta * L_LG(R, F(phi)) + alpha * mean |grad phi|^2``: a mono-modal similarity
       through the frozen G, the cross-modal local gradient similarity and the smoothness of phi.

    ``translator_pairs="registered"`` trains D and G on co-registered pairs instead (batches from
    ``InterSubjectPairs(..., registered_key=...)``): G maps the moving image M of a subject's own pair to that
    subject's fixed image before the synthetic deformation, R0, with the same three terms (D: (M, R0) real against
    (M, G(M)) fake; G: cGAN - mu * L_LG(G(M), M) + lambda_pixel * |G(M) - R0|_1), over the batch's same-subject pairs
    only (none in the batch: D and G skip the iteration; several processes need ``inter_subject_ratio`` 0, which
    always gives one). A translator trained on aligned images has no reason to move anatomy, so the LCC term of T's
    loss rewards alignment only; with the paper's pairs, G can learn to move structures towards R and T is then
    rewarded for what G does (measured in the model card). T's step is unchanged.

    ``t_similarity="counterpart"`` (ours, not the paper's) computes T's LCC term on the moving image's co-registered
    counterpart in the fixed modality instead of on G's translation: ``-LCC(R, C(phi))``, with C under
    ``counterpart_key`` in each batch (``InterSubjectPairs(..., counterpart_key=...)``: training subjects have both
    contrasts). T still sees only (R, F) and is deployed alone; D and G train as before. It asks what T learns when
    its mono-modal similarity does not depend on a translator's quality.

    LCC is MONAI's ``LocalNormalizedCrossCorrelationLoss`` (which returns -LCC), L_LG the local gradient similarity
    (``LocalGradientLoss`` returns -L_LG, its mean over voxels), the smoothness MONAI's ``DiffusionLoss`` (the mean
    squared gradient of phi; ``common.registration.ops.diffusion``, the test-time optimisation's too). The cGAN loss
    is pix2pix's (binary cross-entropy on D's patch logits).
    """

    required_networks = ("T", "G", "D")
    required_optimizers = ("T", "G", "D")

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 1.0,
        mu: float = 1.0,
        lambda_pixel: float = 100.0,
        lcc_kernel_size: int = 9,
        lg_kernel_size: int = 7,
        adversarial_loss: nn.Module | None = None,
        warp_padding: str = "border",
        translator_pairs: str = "warped",
        registered_key: str = "fixed_registered",
        t_similarity: str = "translated",
        counterpart_key: str = "moving_counterpart",
    ):
        if t_similarity not in ("translated", "counterpart"):
            raise ValueError(f"t_similarity must be 'translated' or 'counterpart', got {t_similarity!r}.")
        if translator_pairs not in ("warped", "registered"):
            raise ValueError(f"translator_pairs must be 'warped' or 'registered', got {translator_pairs!r}.")
        self.alpha, self.beta, self.mu, self.lambda_pixel = alpha, beta, mu, lambda_pixel
        self.translator_pairs, self.registered_key = translator_pairs, registered_key
        self.t_similarity, self.counterpart_key = t_similarity, counterpart_key
        self.warp = Warp(mode="bilinear", padding_mode=warp_padding)
        self.lcc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=lcc_kernel_size)
        self.local_gradient = LocalGradientLoss(kernel_size=lg_kernel_size)
        self.smoothness = diffusion  # MONAI's DiffusionLoss, the one the test-time optimisation uses too
        self.adversarial_loss = adversarial_loss or PatchAdversarialLoss(criterion="bce", reduction="mean")
        self.pixel_loss = nn.L1Loss()

    def __call__(self, engine, batch: dict) -> dict:
        fixed, moving = batch["fixed"], batch["moving"]
        if self.lcc.ndim != fixed.ndim - 2:
            self.lcc = LocalNormalizedCrossCorrelationLoss(
                spatial_dims=fixed.ndim - 2, kernel_size=self.lcc.kernel_size
            )

        translator = self._translator_pair(engine, batch)  # (G's input, G's target), or None: skip D and G
        g_values: dict = {}
        if translator is not None:
            source, target = translator
            with engine.updating("D") as nets, engine.autocast(), torch.no_grad():
                translated = nets["G"](source)
            with engine.updating("D") as nets, engine.autocast():
                loss_d = discriminator_adversarial_loss(
                    self.adversarial_loss,
                    nets["D"](torch.cat([source, target], 1)),
                    nets["D"](torch.cat([source, translated], 1)),
                )
            engine.optimise("D", loss_d)

            with engine.updating("G") as nets, engine.autocast():
                translated = nets["G"](source)
                g_terms = {
                    "loss_G_adv": generator_adversarial_loss(
                        self.adversarial_loss, nets["D"](torch.cat([source, translated], 1))
                    ),
                    "loss_G_lg": self.mu * self.local_gradient(translated, source),
                    "loss_G_l1": self.lambda_pixel * self.pixel_loss(translated, target),
                }
                loss_g = sum(g_terms.values())
            engine.optimise("G", loss_g)
            g_values = {"loss_G": loss_g, **g_terms, "loss_D": loss_d}

        with engine.updating("T") as nets, engine.autocast():
            ddf = nets["T"](torch.cat([fixed, moving], 1))
            warped = self.warp(moving, ddf)
            t_terms = {
                "loss_T_lcc": self.lcc(self._mono_modal(nets, batch, warped, ddf), fixed),
                "loss_T_lg": self.beta * self.local_gradient(fixed, warped),
                "loss_T_smooth": self.alpha * self.smoothness(ddf),
            }
            loss_t = sum(t_terms.values())
        engine.optimise("T", loss_t)

        values = {"loss_T": loss_t, **t_terms, **g_values}
        out = {k: float(v.detach()) for k, v in values.items()}
        if "true_ddf" in batch:  # training-pair endpoint error, voxels: is T learning the deformation?
            error = ddf.detach().float() - batch["true_ddf"].float()
            out["epe_vox"] = float(error.square().sum(1).sqrt().mean())  # not norm(dim=1): 100x slower on the CPU
        return out

    def _mono_modal(self, nets, batch: dict, warped: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
        """The warped moving image in the fixed modality: G's translation of it, or its warped counterpart."""
        if self.t_similarity == "translated":
            return nets["G"](warped)
        if self.counterpart_key not in batch:
            raise KeyError(
                f"t_similarity 'counterpart' needs '{self.counterpart_key}' in each batch (InterSubjectPairs with "
                "counterpart_key set)."
            )
        return self.warp(batch[self.counterpart_key], ddf)

    def _translator_pair(self, engine, batch: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
        """What D and G train on: the moving image warped by T's current field and the fixed image (the paper's), or
        the batch's same-subject moving images and their co-registered fixed images (``"registered"``)."""
        fixed, moving = batch["fixed"], batch["moving"]
        if self.translator_pairs == "warped":
            with engine.updating("D") as nets, engine.autocast(), torch.no_grad():
                return self.warp(moving, nets["T"](torch.cat([fixed, moving], 1))), fixed
        if self.registered_key not in batch or "same_subject" not in batch:
            raise KeyError(
                f"translator_pairs 'registered' needs '{self.registered_key}' and 'same_subject' in each batch "
                "(InterSubjectPairs with registered_key set)."
            )
        own = batch["same_subject"].reshape(-1) > 0.5  # (B,)
        if not bool(own.any()):
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                # the other processes would wait for this one's G and D gradients for ever
                raise RuntimeError(
                    "translator_pairs 'registered' skips D and G on a batch without a same-subject pair, which "
                    "distributed training cannot do: train several processes with inter_subject_ratio 0."
                )
            return None
        return moving[own], batch[self.registered_key][own]
