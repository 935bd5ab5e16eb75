"""AE-GAN's step: both updates against the losses written out by hand, the order A then S with the other network
untouched by each update, the input subsets S sees, and the decay of the self-representation weight."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from common.engines import AEGANStep, MultiNetworkTrainer
from common.networks import ContrastAutoencoder, MultiContrastSynthesisNet, missing_flags

LR = 0.01


def _nets():
    torch.manual_seed(0)
    return (MultiContrastSynthesisNet(num_inputs=3, num_filters=4, num_res_blocks=1, dropout=0.0),
            ContrastAutoencoder(num_filters=4, num_res_blocks=1, dropout=0.0))


def _batch():
    torch.manual_seed(1)
    stack = torch.cat([torch.rand(2, 3, 32, 32) * 2 - 1, torch.zeros(2, 3, 32, 32)], dim=1)
    stack[1, 1], stack[1, 4] = 0.0, 1.0  # the second item has no T1c
    return {"image": stack, "label": torch.rand(2, 1, 32, 32) * 2 - 1}


def _bce(logits, real):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


def _sgd_step(net, grads):
    stepped = copy.deepcopy(net)
    with torch.no_grad():
        for p, g in zip(stepped.parameters(), grads):
            p -= LR * g
    return stepped


def test_updates_match_the_losses_by_hand():
    """With SGD, each network's update is -lr times the gradient of its loss as the docstring writes it: A's on
    L_AD + L_rec with S's output detached, then S's on L_adv + L_1 + L_SR through the updated A, frozen."""
    s, a = _nets()
    s0, a0 = copy.deepcopy(s), copy.deepcopy(a)
    batch = _batch()
    step = AEGANStep(lambda_adv=1.0, lambda_l1=100.0, lambda_rec=100.0, lambda_sr=0.1, input_subsets="all")
    opts = {"S": torch.optim.SGD(s.parameters(), lr=LR), "A": torch.optim.SGD(a.parameters(), lr=LR)}
    trainer = MultiNetworkTrainer("cpu", 1, [batch], {"S": s, "A": a}, opts, step)
    trainer.run()

    x, y = batch["image"], batch["label"]
    fake, features_s = s0(x, return_features=True)
    recon, features_a, d_real = a0(y)
    loss_a = 0.5 * (_bce(d_real, 1) + 0.5 * (_bce(a0(fake.detach(), decode=False), 0) + _bce(a0(recon.detach(), decode=False), 0)))
    loss_a = loss_a + 100.0 * (recon - y).abs().mean()
    a1 = _sgd_step(a0, torch.autograd.grad(loss_a, list(a0.parameters())))
    for p, q in zip(a.parameters(), a1.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)

    kl = sum((F.softmax(t, 1) * (F.log_softmax(t, 1) - F.log_softmax(f, 1))).sum(1).mean()
             for f, t in zip(features_s, [t.detach() for t in features_a]))
    loss_s = _bce(a1(fake, decode=False), 1) + 100.0 * (fake - y).abs().mean() + 0.1 * kl
    s1 = _sgd_step(s0, torch.autograd.grad(loss_s, list(s0.parameters())))
    for p, q in zip(s.parameters(), s1.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    out = trainer.state.output
    assert out["loss_S"] == pytest.approx(loss_s.item(), rel=1e-5) and out["loss_A"] == pytest.approx(loss_a.item(), rel=1e-5)
    assert out["loss_sr"] == pytest.approx(0.1 * kl.item(), rel=1e-5)


def test_random_subsets_stay_within_the_given_contrasts():
    step = AEGANStep(input_subsets="random")
    batch = _batch()
    torch.manual_seed(0)
    seen = set()
    for _ in range(200):
        given = missing_flags(step.inputs(batch["image"]), 3) < 0.5
        assert given.any(dim=1).all() and not given[1, 1]  # never empty, never the absent T1c
        seen.add(tuple(given[0].tolist()))
    assert len(seen) == 7  # every non-empty subset of three inputs
    assert torch.equal(AEGANStep(input_subsets="all").inputs(batch["image"]), batch["image"])
    # 2.5D stacks (each channel with 3 slices): the subsets are of the same three contrasts, whole
    stack_2_5d = batch["image"].repeat_interleave(3, dim=1)  # (B, 18, H, W)
    step_2_5d = AEGANStep(input_subsets="random", context_slices=3)
    for _ in range(50):
        drawn = step_2_5d.inputs(stack_2_5d)
        given = missing_flags(drawn, 3) < 0.5
        assert given.any(dim=1).all() and not given[1, 1]
        kept = drawn[:, :9].reshape(2, 3, 3, 32, 32).flatten(2).abs().amax(2) > 0  # (B, N): any slice non-zero
        assert torch.equal(kept, given)
    with pytest.raises(ValueError, match="input_subsets must be one of"):
        AEGANStep(input_subsets="some")


def test_self_representation_weight_decays_as_the_authors_schedule():
    step = AEGANStep()  # lambda_sr 0.1, times 0.05 every 5000 iterations
    assert [step.sr_weight(i) for i in (1, 5000)] == [0.1, 0.1]
    assert step.sr_weight(5001) == pytest.approx(0.005) and step.sr_weight(10001) == pytest.approx(0.00025)
    assert AEGANStep(sr_decay=1.0).sr_weight(50_000) == 0.1
