"""One iteration of patch-based UNIT with a Gaussian-mixture prior: the discriminators D1 and D2, then the encoders,
generators and the prior."""

from __future__ import annotations

import torch
from torch import nn

from ..losses.adversarial import discriminator_adversarial_loss, generator_adversarial_loss, lsgan_loss


class UNITGMMStep:
    """``step(engine, batch)`` for ``MultiNetworkTrainer`` on ``{"A": x1 (B, 1, *S), "B": x2 (B, 1, *S)}``: co-located
    patches of the two domains (``common.data.RandColocatedPatchd``).

    Networks: ``G`` (``SharedLatentVAEs``: E1, E2, G1, G2 with shared layers), ``prior``
    (``GaussianMixturePrior``), ``D1`` (real x1 against G1(z2)) and ``D2`` (real x2 against G2(z1)). Optimisers:
    ``"G"`` over G and the prior, ``"D"`` over D1 and D2. With z_d = mu_d + noise (q(z|x) = N(mu(x), I), UNIT's
    posterior), translations x12 = G2(z1), x21 = G1(z2) and their re-encodings z12 = E2(x12) + noise,
    z21 = E1(x21) + noise, and KL the Gaussian-mixture KL (``gaussian_mixture_kl``, Monte Carlo):

    1. D1 and D2 (G frozen): ``lambda_adversarial * (L_D(D1(x1), D1(x21)) + L_D(D2(x2), D2(x12)))``, L_D the mean of the real
       and fake LSGAN terms (squared error of the raw patch logits, as UNIT's code).
    2. E1, E2, G1, G2 and the prior (D frozen), the UNIT objective with the mixture prior:
       - L_VAE1 + L_VAE2 = ``lambda_kl * (KL(q1(z|x1)) + KL(q2(z|x2))) + lambda_reconstruction * (|G1(z1) - x1| + |G2(z2) - x2|)``
         (the reconstruction log-likelihood as L1: a Laplacian decoder);
       - L_GAN1 + L_GAN2 = ``lambda_adversarial * (L_G(D1(x21)) + L_G(D2(x12)))``;
       - L_CC1 + L_CC2 = ``lambda_cycle_kl * (KL(q1(z|x1)) + KL(q2(z|x12)) + KL(q2(z|x2)) + KL(q1(z|x21)))
         + lambda_cycle * (|G1(z12) - x1| + |G2(z21) - x2|)``.
       The UNIT paper weighs both KL terms of L_CC by lambda_cycle_kl (its eq. 5), which this follows; the first of them
       repeats L_VAE's KL, so KL(q(z|x)) of the real patches carries lambda_kl + lambda_cycle_kl in all.

    The weights are UNIT's lambda_0..lambda_4 (defaults its values): ``lambda_adversarial`` (lambda_0 = 10),
    ``lambda_kl`` (lambda_1 = 0.1), ``lambda_reconstruction`` (lambda_2 = 100), ``lambda_cycle_kl`` (lambda_3 = 0.1),
    ``lambda_cycle`` (lambda_4 = 100).
    """

    required_networks = ("G", "prior", "D1", "D2")
    required_optimizers = ("G", "D")

    def __init__(
        self,
        lambda_adversarial: float = 10.0,
        lambda_kl: float = 0.1,
        lambda_reconstruction: float = 100.0,
        lambda_cycle_kl: float = 0.1,
        lambda_cycle: float = 100.0,
        kl_samples: int = 1,
        adversarial_loss: nn.Module | None = None,
    ):
        self.lambda_adversarial, self.lambda_kl, self.lambda_reconstruction, self.lambda_cycle_kl, self.lambda_cycle = (
            lambda_adversarial,
            lambda_kl,
            lambda_reconstruction,
            lambda_cycle_kl,
            lambda_cycle,
        )
        self.kl_samples = kl_samples
        self.adversarial_loss = adversarial_loss or lsgan_loss()
        self.pixel_loss = nn.L1Loss()

    @staticmethod
    def sample(mu: torch.Tensor) -> torch.Tensor:
        """z ~ q(z|x) = N(mu, I), reparameterised."""
        return mu + torch.randn_like(mu)

    def __call__(self, engine, batch: dict) -> dict:
        x1, x2 = batch["A"], batch["B"]

        with engine.updating("D1", "D2") as nets, engine.autocast(), torch.no_grad():
            g = nets["G"]
            x21 = g(self.sample(g(x2, "encode", 1)), "decode", 0)
            x12 = g(self.sample(g(x1, "encode", 0)), "decode", 1)
        with engine.updating("D1", "D2") as nets, engine.autocast():
            loss_d1 = self.lambda_adversarial * discriminator_adversarial_loss(
                self.adversarial_loss, nets["D1"](x1), nets["D1"](x21)
            )
            loss_d2 = self.lambda_adversarial * discriminator_adversarial_loss(
                self.adversarial_loss, nets["D2"](x2), nets["D2"](x12)
            )
            loss_d = loss_d1 + loss_d2
        engine.optimise("D", loss_d)

        with engine.updating("G", "prior") as nets, engine.autocast():
            g, prior = nets["G"], nets["prior"]
            mu1, mu2 = g(x1, "encode", 0), g(x2, "encode", 1)
            z1, z2 = self.sample(mu1), self.sample(mu2)
            x11, x22 = g(z1, "decode", 0), g(z2, "decode", 1)
            x12, x21 = g(z1, "decode", 1), g(z2, "decode", 0)
            mu12, mu21 = g(x12, "encode", 1), g(x21, "encode", 0)
            x121, x212 = g(self.sample(mu12), "decode", 0), g(self.sample(mu21), "decode", 1)

            kl_real = self._kl(mu1, prior) + self._kl(mu2, prior)
            kl_translated = self._kl(mu12, prior) + self._kl(mu21, prior)
            recon = self.pixel_loss(x11, x1) + self.pixel_loss(x22, x2)
            cycle = self.pixel_loss(x121, x1) + self.pixel_loss(x212, x2)
            terms = {
                "loss_G_adv": self.lambda_adversarial
                * (
                    generator_adversarial_loss(self.adversarial_loss, nets["D1"](x21))
                    + generator_adversarial_loss(self.adversarial_loss, nets["D2"](x12))
                ),
                "loss_vae": self.lambda_kl * kl_real + self.lambda_reconstruction * recon,
                "loss_cc": self.lambda_cycle_kl * (kl_real + kl_translated) + self.lambda_cycle * cycle,
            }
            loss_g = sum(terms.values())
        engine.optimise("G", loss_g)

        values = {
            "loss_G": loss_g,
            **terms,
            "loss_D1": loss_d1,
            "loss_D2": loss_d2,
            "recon_l1": recon / 2,
            "cycle_l1": cycle / 2,
            "kl": kl_real / 2,
        }  # the last three: means over the two domains, unweighted
        return {k: float(v.detach()) for k, v in values.items()}

    def _kl(self, mu: torch.Tensor, prior: nn.Module) -> torch.Tensor:
        return prior(mu.float(), num_samples=self.kl_samples)  # GaussianMixturePrior.forward: the KL
