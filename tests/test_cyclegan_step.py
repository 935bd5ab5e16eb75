"""The CycleGAN step's losses against hand computation, the image pool, and the trainer's freezing."""

import pytest
import torch
from torch import nn

from common.engines import CycleGANStep, ImagePool, MultiNetworkTrainer


class Const(nn.Module):
    """A 'discriminator' that outputs a fixed value per image, to check loss arithmetic by hand."""

    def __init__(self, value):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x):
        return [x * 0 + self.value]


def test_lsgan_losses_by_hand():
    step = CycleGANStep()
    d_out = Const(0.25)(torch.zeros(1, 1, 4, 4))
    # generator wants D(fake) = 1: mean((0.25 - 1)^2)
    assert step.generator_loss(d_out).item() == pytest.approx(0.5625)
    # discriminator: 0.5 * (mean((0.8 - 1)^2) + mean(0.3^2))
    real, fake = Const(0.8)(torch.zeros(1, 1, 4, 4)), Const(0.3)(torch.zeros(1, 1, 4, 4))
    assert step.discriminator_loss(real, fake).item() == pytest.approx(0.5 * (0.04 + 0.09))
    # negative logits count in full: the squared error of the raw logits (MONAI's default LeakyReLU(0.05) before the
    # MSE would give 0.5 * ((0.05 * -0.5 - 1)^2 + (0.05 * -0.5)^2) instead)
    negative = Const(-0.5)(torch.zeros(1, 1, 4, 4))
    assert step.discriminator_loss(negative, negative).item() == pytest.approx(0.5 * (1.5**2 + 0.5**2))
    assert step.generator_loss(negative).item() == pytest.approx(1.5**2)


def _tiny_trainer(step, lr=0.1):
    torch.manual_seed(0)
    nets = {"G_A": nn.Conv2d(1, 1, 1), "G_B": nn.Conv2d(1, 1, 1), "D_A": Const(0.5), "D_B": Const(0.5)}
    opts = {
        "G": torch.optim.SGD(list(nets["G_A"].parameters()) + list(nets["G_B"].parameters()), lr=lr),
        "D": torch.optim.SGD(list(nets["D_A"].parameters()) + list(nets["D_B"].parameters()), lr=lr),
    }
    return MultiNetworkTrainer(device="cpu", max_epochs=1, data_loader=[{}], networks=nets, optimizers=opts, step=step)


def test_cyclegan_step_total_loss_by_hand():
    trainer = _tiny_trainer(CycleGANStep(lambda_cycle=10.0, lambda_identity=0.5, pool_size=0))
    g_a, g_b = trainer.networks["G_A"], trainer.networks["G_B"]
    a, b = torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    with torch.no_grad():
        fake_b, fake_a = g_a(a), g_b(b)
        cycle = 10 * ((g_b(fake_b) - a).abs().mean() + (g_a(fake_a) - b).abs().mean())
        identity = 5 * ((g_a(b) - b).abs().mean() + (g_b(a) - a).abs().mean())
    out = trainer.step(trainer, {"A": a, "B": b})
    assert out["loss_G_adv"] == pytest.approx(2 * 0.25)  # both D's output 0.5 before their update
    assert out["loss_cycle"] == pytest.approx(cycle.item(), rel=1e-5)
    assert out["loss_identity"] == pytest.approx(identity.item(), rel=1e-5)
    assert out["loss_G"] == pytest.approx(0.5 + cycle.item() + identity.item(), rel=1e-5)
    assert out["loss_D_A"] == pytest.approx(0.5 * (0.25 + 0.25))
    # D moved towards separating real (1) and fake (0): its gradient vanishes at 0.5 for a constant D, so
    # only G's parameters must have changed
    assert trainer.networks["D_A"].value.item() == pytest.approx(0.5)
    assert not torch.equal(g_a.weight.detach(), _tiny_trainer(CycleGANStep()).networks["G_A"].weight.detach())


def test_updating_freezes_others_and_restores():
    trainer = _tiny_trainer(CycleGANStep())
    trainer.networks["D_B"].value.requires_grad_(False)  # a user-frozen parameter stays frozen afterwards
    with trainer.updating("G_A", "G_B") as nets:
        assert all(p.requires_grad for p in nets["G_A"].parameters())
        assert not any(p.requires_grad for p in nets["D_A"].parameters())
    assert trainer.networks["D_A"].value.requires_grad
    assert not trainer.networks["D_B"].value.requires_grad
    with pytest.raises(KeyError, match="unknown networks"):
        with trainer.updating("T"):
            pass


def test_trainer_checks_the_step_needs():
    nets = {"G_A": nn.Conv2d(1, 1, 1)}
    with pytest.raises(KeyError, match=r"CycleGANStep needs networks \['G_B', 'D_A', 'D_B'\]"):
        MultiNetworkTrainer(device="cpu", max_epochs=1, data_loader=[{}], networks=nets, optimizers={}, step=CycleGANStep())


def test_image_pool():
    pool = ImagePool(pool_size=3, seed=0)
    first = torch.arange(3.0).reshape(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as given
    seen_old = False
    for i in range(20):
        new = torch.full((1, 1, 1, 1), 10.0 + i)
        out = pool.query(new)
        assert out.shape == new.shape
        history = {float(x) for x in torch.cat(pool.images).flatten()}
        if out.item() != new.item():  # swapped: an older image comes back and the new one is stored
            seen_old = True
            assert new.item() in history
        assert len(pool.images) == 3
    assert seen_old
    twins = [CycleGANStep(pool_size=2, seed=5) for _ in range(2)]  # two runs of one seed show D the same history
    stream = [torch.full((1, 1, 2, 2), float(i)) for i in range(12)]
    assert [float(twins[0].pool_A.query(x)[0, 0, 0, 0]) for x in stream] == \
        [float(twins[1].pool_A.query(x)[0, 0, 0, 0]) for x in stream]
    assert twins[0].pool_A._random.random() != twins[0].pool_B._random.random()  # A and B draw independently
    clone = ImagePool(pool_size=3)
    clone.load_state_dict(pool.state_dict())
    probe = torch.full((1, 1, 1, 1), -1.0)
    assert torch.equal(clone.query(probe), pool.query(probe))  # same history and same random state
    assert torch.equal(ImagePool(0).query(first), first)
