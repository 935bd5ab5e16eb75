"""One CycleGAN iteration (Zhu et al. 2017): update G_A and G_B together, then D_A and D_B."""

from __future__ import annotations

import torch
from torch import nn

from ..losses.adversarial import discriminator_adversarial_loss, generator_adversarial_loss, lsgan_loss
from .image_pool import ImagePool


class CycleGANStep:
    """``step(engine, batch)`` for ``MultiNetworkTrainer``, on a batch ``{"A": (B,C,*S), "B": (B,C,*S)}`` of
    unpaired images.

    Networks: ``G_A``: A -> B, ``G_B``: B -> A; ``D_A`` tells real A from G_B(B), ``D_B`` real B from G_A(A).
    Optimisers: ``"G"`` over both generators, ``"D"`` over both discriminators.
    Generator loss = LSGAN(D_B(G_A(A))) + LSGAN(D_A(G_B(B))) + lambda_cycle * (|G_B(G_A(A)) - A| + |G_A(G_B(B)) - B|)
    + lambda_cycle * lambda_identity * (|G_A(B) - B| + |G_B(A) - A|); each discriminator loss is the mean of the
    real and (pooled) fake terms, i.e. halved, as in the paper. LSGAN is the mean squared error of the raw patch
    logits (``lsgan_loss``).
    """

    required_networks = ("G_A", "G_B", "D_A", "D_B")
    required_optimizers = ("G", "D")

    def __init__(
        self,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        adversarial_loss: nn.Module | None = None,
        cycle_loss: nn.Module | None = None,
        seed: int | None = 0,
    ):
        self.lambda_cycle = lambda_cycle
        self.lambda_identity = lambda_identity
        self.adversarial_loss = adversarial_loss or lsgan_loss()
        self.cycle_loss = cycle_loss or nn.L1Loss()
        # the pools draw from their own generators (checkpointed with them), seeded so that two runs of one seed match
        pool_seeds = (None, None) if seed is None else (2 * int(seed), 2 * int(seed) + 1)
        self.pool_A = ImagePool(pool_size, seed=pool_seeds[0])  # history of G_B(B), shown to D_A
        self.pool_B = ImagePool(pool_size, seed=pool_seeds[1])  # history of G_A(A), shown to D_B

    def generator_loss(self, d_output) -> torch.Tensor:
        return generator_adversarial_loss(self.adversarial_loss, d_output)

    def discriminator_loss(self, d_real, d_fake) -> torch.Tensor:
        return discriminator_adversarial_loss(self.adversarial_loss, d_real, d_fake)

    def __call__(self, engine, batch: dict) -> dict:
        real_a, real_b = batch["A"], batch["B"]

        with engine.updating("G_A", "G_B") as nets, engine.autocast():
            fake_b = nets["G_A"](real_a)
            fake_a = nets["G_B"](real_b)
            loss_gan = self.generator_loss(nets["D_B"](fake_b)) + self.generator_loss(nets["D_A"](fake_a))
            loss_cycle = self.lambda_cycle * (
                self.cycle_loss(nets["G_B"](fake_b), real_a) + self.cycle_loss(nets["G_A"](fake_a), real_b)
            )
            loss_identity = torch.zeros((), device=real_a.device)
            if self.lambda_identity > 0:
                loss_identity = (self.lambda_cycle * self.lambda_identity) * (
                    self.cycle_loss(nets["G_A"](real_b), real_b) + self.cycle_loss(nets["G_B"](real_a), real_a)
                )
            loss_g = loss_gan + loss_cycle + loss_identity
        engine.optimise("G", loss_g)

        with engine.updating("D_A", "D_B") as nets, engine.autocast():
            loss_d_a = self.discriminator_loss(nets["D_A"](real_a), nets["D_A"](self.pool_A.query(fake_a)))
            loss_d_b = self.discriminator_loss(nets["D_B"](real_b), nets["D_B"](self.pool_B.query(fake_b)))
            loss_d = loss_d_a + loss_d_b
        engine.optimise("D", loss_d)

        return {
            "loss_G": loss_g.item(),
            "loss_G_adv": loss_gan.item(),
            "loss_cycle": loss_cycle.item(),
            "loss_identity": loss_identity.item(),
            "loss_D_A": loss_d_a.item(),
            "loss_D_B": loss_d_b.item(),
        }

    def state_dict(self) -> dict:
        """The image pools, so that a resumed run continues exactly."""
        return {"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.pool_A.load_state_dict(state["pool_A"])
        self.pool_B.load_state_dict(state["pool_B"])
