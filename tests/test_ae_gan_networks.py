"""AE-GAN's networks and its self-representation loss: shapes in 2D and 3D, the discriminator as the autoencoder's
encoder, and the KL loss against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks.blocks import ChannelSELayer
from torch import nn

from common.losses import SelfRepresentationLoss
from common.networks import ContrastAutoencoder, MultiContrastSynthesisNet


def test_kl_self_representation_by_hand():
    # one voxel, two channels: the teacher's softmax is (1/4, 3/4), the student's (1/2, 1/2)
    teacher = torch.tensor([0.0, math.log(3.0)]).reshape(1, 2, 1, 1)
    student = torch.zeros(1, 2, 1, 1)
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)  # 0.1308
    assert SelfRepresentationLoss()(student, teacher).item() == pytest.approx(kl, rel=1e-6)
    # KL is not symmetric: the teacher's distribution weights the log-ratio
    reverse = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert SelfRepresentationLoss()(teacher, student).item() == pytest.approx(reverse, rel=1e-6)
    # levels weighted and summed; voxels averaged (a second, identical voxel changes nothing); 3D maps too
    two_voxels_t, two_voxels_s = teacher.expand(1, 2, 1, 2), student.expand(1, 2, 1, 2)
    loss = SelfRepresentationLoss(weights=[1.0, 0.5])([student, two_voxels_s], [teacher, two_voxels_t])
    assert loss.item() == pytest.approx(1.5 * kl, rel=1e-6)
    assert SelfRepresentationLoss()(student[..., None], teacher[..., None]).item() == pytest.approx(kl, rel=1e-6)
    assert SelfRepresentationLoss()(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)
    per_item = SelfRepresentationLoss(reduction="none")(torch.cat([student, teacher]), torch.cat([teacher, teacher]))
    assert per_item.shape == (2,) and per_item[0].item() == pytest.approx(kl, rel=1e-6)


def test_self_representation_gradient_reaches_only_the_student():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 8, 4, 4, requires_grad=True), torch.randn(2, 8, 4, 4, requires_grad=True)
    SelfRepresentationLoss()(student, teacher.detach()).backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None
    with pytest.raises(ValueError, match="differ"):
        SelfRepresentationLoss()(student, teacher[:, :4])


@pytest.mark.parametrize("spatial_dims, size", [(2, (64, 64)), (3, (16, 16, 16))])
def test_shapes_and_features(spatial_dims, size):
    torch.manual_seed(0)
    s = MultiContrastSynthesisNet(spatial_dims, num_inputs=3, num_filters=8, num_res_blocks=2)
    a = ContrastAutoencoder(spatial_dims, num_filters=8, num_res_blocks=2)
    x = torch.rand(2, 6, *size) * 2 - 1
    out, features = s(x, return_features=True)
    assert out.shape == (2, 1, *size) and out.abs().max() <= 1
    half, full = tuple(n // 2 for n in size), size
    assert [f.shape for f in features] == [(2, 16, *half), (2, 8, *full)]
    recon, features_a, logits = a(x[:, :1])
    assert recon.shape == (2, 1, *size) and [f.shape for f in features_a] == [f.shape for f in features]
    quarter = size[0] // 4
    assert logits.shape == (2, 1, *([(quarter - 4) // 2 + 1] * spatial_dims))
    assert not torch.equal(a(x[:, :1], decode=False), logits)  # dropout in A's residual blocks while training
    a.eval()
    assert torch.equal(a(x[:, :1], decode=False), a(x[:, :1])[2])
    with pytest.raises(ValueError, match=r"expects a \(B, 6, \*spatial\) input .* divisible by 4"):
        s(torch.zeros(1, 6, *(n + 2 for n in size)))


def test_paper_default_sizes():
    s, a = MultiContrastSynthesisNet(), ContrastAutoencoder()
    assert len(s.branches) == 3 and len(s.res_blocks) == 6 and len(a.encoder) == 2 + 2 + 6  # pad, c7s1, 2 down, 6 res
    # as the authors' code: SE attention after S's two upsamplings and none in A's; dropout 0.5 in both's residual blocks
    assert sum(isinstance(m, ChannelSELayer) for m in s.decoder.modules()) == 2
    assert not any(isinstance(m, ChannelSELayer) for m in a.modules())
    for blocks in (s.res_blocks, a.encoder[4:]):
        assert [m.p for b in blocks for m in b.modules() if isinstance(m, nn.Dropout)] == [0.5] * 6
    with torch.no_grad():
        out, features = s(torch.zeros(1, 6, 256, 256), return_features=True)
        assert [f.shape[1:] for f in features] == [(128, 128, 128), (64, 256, 256)]
        assert a(torch.zeros(1, 1, 256, 256), decode=False).shape == (1, 1, 31, 31)  # the authors' 31x31 patch map


def test_discriminator_is_the_autoencoders_encoder():
    """D(x) = head(A_E(x)): the same parameter tensors as the autoencoder's encoder, not a copy."""
    torch.manual_seed(0)
    a = ContrastAutoencoder(num_filters=4, num_res_blocks=1, dropout=0.0)
    x = torch.randn(1, 1, 32, 32)
    a(x, decode=False).sum().backward()
    encoder = {id(p) for p in a.encoder.parameters()}
    with_grad = {id(p) for p in a.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert encoder <= with_grad and not {id(p) for p in a.decoder.parameters()} & with_grad
    before = a(x, decode=False).detach()
    with torch.no_grad():
        a.encoder[1].conv.weight.mul_(2.0)  # change the autoencoder's encoder: the discriminator changes with it
    assert not torch.allclose(a(x, decode=False), before)
    _, _, logits = a(x)
    assert torch.equal(logits, a(x, decode=False))
