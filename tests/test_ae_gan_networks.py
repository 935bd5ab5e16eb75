"""AE-GAN's networks and its self-representation loss: shapes in 2D and 3D, the discriminator as the autoencoder's
encoder, and the KL loss against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks.blocks import ChannelSELayer
from torch import nn

from common.losses import SelfRepresentationLoss
from common.networks import ContrastAutoencoder, MultiContrastSynthesisNet, missing_flags


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


def test_2_5d_branches_read_their_contrasts_slices_and_ignore_a_missing_one():
    """context_slices 3: the input is ``slice_context`` of a (2N, H, W, D) stack, channel c * 3 + j being channel c
    at slice offset j - 1; branch i reads channels 3i..3i+2, the flags the second half. A missing contrast's channels
    change nothing; a given contrast's neighbouring slice does; the first convolution of each branch reads 3."""
    from common.data.transforms import slice_context

    torch.manual_seed(0)
    net = MultiContrastSynthesisNet(2, num_inputs=3, num_filters=4, num_res_blocks=1, context_slices=3).eval()
    volume = torch.cat([torch.rand(3, 16, 16, 5) * 2 - 1, torch.zeros(3, 16, 16, 5)])  # (6, H, W, D)
    volume[1], volume[4] = 0.0, 1.0  # T1c missing
    x = slice_context(volume, 3, axis=-1, index=2)[None]  # (1, 18, 16, 16)
    assert x.shape == (1, 18, 16, 16) and torch.equal(x[0, 3 * 0 + 0], volume[0, ..., 1])
    assert torch.equal(missing_flags(x, 3), torch.tensor([[0.0, 1.0, 0.0]]))
    assert all(b[1].conv.weight.shape[1] == 3 for b in net.branches)
    out = net(x)
    assert out.shape == (1, 1, 16, 16)
    junk = x.clone()
    junk[:, 3:6] = 5.0  # the missing T1c's three slices
    assert torch.equal(net(junk), out)
    moved = x.clone()
    moved[:, 6] += 0.5  # FLAIR's slice below
    assert not torch.allclose(net(moved), out)
    with pytest.raises(ValueError, match=r"expects a \(B, 18, \*spatial\)"):
        net(x[:, :6])
    for bad in (2, 0):
        with pytest.raises(ValueError, match="context_slices must be odd"):
            MultiContrastSynthesisNet(2, num_inputs=3, context_slices=bad)
    with pytest.raises(ValueError, match="1 in 3D"):
        MultiContrastSynthesisNet(3, num_inputs=3, context_slices=3)
