"""MedGAN's networks: CasNet (shapes, range, U-block count, paper size, gradients, tracing) and the spectrally
normalised conditional PatchGAN (outputs, spectral norm present and effective, state-dict round trip)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import PatchDiscriminator
from torch import nn
from torch.nn.utils import parametrize

from common.networks import CasNet, SpectralPatchDiscriminator, UBlock, spectral_norms

# ------------------------------------------------------------------------------------------------ CasNet


def test_casnet_2d_shape_range_and_blocks():
    torch.manual_seed(0)
    net = CasNet(spatial_dims=2, in_channels=1, out_channels=1, num_ublocks=3, channels=(4, 8, 16, 32))
    assert net.num_ublocks == 3 and net.divisor == 16
    assert len(net.blocks) == 3 and sum(isinstance(m, UBlock) for m in net.modules()) == 3
    block_outputs = []
    for block in net.blocks:
        block.register_forward_hook(lambda mod, inp, out: block_outputs.append(out))
    x = torch.randn(1, 1, 64, 64) * 3
    with torch.no_grad():
        out = net(x)
    assert out.shape == (1, 1, 64, 64)
    assert len(block_outputs) == 3 and block_outputs[-1] is out
    for y in block_outputs:  # every block hands the next one an image in [-1, 1]
        assert y.shape == (1, 1, 64, 64) and y.min() >= -1 and y.max() <= 1


def test_casnet_3d_and_channels():
    net = CasNet(spatial_dims=3, in_channels=2, out_channels=1, num_ublocks=2, channels=(2, 4, 8), norm="INSTANCE")
    with torch.no_grad():
        out = net(torch.randn(1, 2, 32, 32, 32))
    assert out.shape == (1, 1, 32, 32, 32) and out.abs().max() <= 1
    # the first block maps 2 -> 1 channels, the later ones 1 -> 1
    first_convs = [next(m for m in b.modules() if isinstance(m, nn.Conv3d)) for b in net.blocks]
    assert [c.in_channels for c in first_convs] == [2, 1]


def test_residual_casnet_starts_at_the_identity_and_adds_its_correction():
    torch.manual_seed(0)
    net = CasNet(spatial_dims=2, num_ublocks=2, channels=(4, 8, 16), residual=True)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), x)  # the last convolution starts at zero: tanh(0) = 0 is added
    target = x.flip(-1)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = (net(x) - target).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    last_block = []
    net.blocks[-1].register_forward_hook(lambda mod, inp, out: last_block.append(out))
    with torch.no_grad():
        out = net(x)
    correction = last_block[0]  # (2, 1, 32, 32) in [-1, 1], no longer zero
    assert correction.abs().max() > 1e-3 and correction.abs().max() <= 1
    torch.testing.assert_close(out, x + correction)
    first_conv = next(m for m in net.blocks[0].modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad.abs().sum() > 0  # after the first step the whole cascade learns
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        CasNet(in_channels=2, out_channels=1, residual=True)


def test_input_skip_starts_as_the_cascade_and_passes_voxel_detail_a_u_block_loses():
    """``input_skip``: untrained, the output is the cascade's own (the 1x1 map starts at zero); "local" multiplies
    that map by the last block's second channel; on a target that is a linear function of a noise input (detail at
    the voxel scale, which a pix2pix U-block rebuilds through a transposed convolution), both fit far better than
    the plain cascade in the same steps."""
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    target = -0.7 * x[:, 1:2] + 0.2  # the centre slice of a 2.5D input, on a line with negative slope
    losses = {}
    for mode in (None, "global", "local"):
        torch.manual_seed(0)
        net = CasNet(spatial_dims=2, in_channels=3, num_ublocks=2, channels=(8, 16, 16), input_skip=mode)
        torch.manual_seed(0)
        plain = CasNet(spatial_dims=2, in_channels=3, num_ublocks=2, channels=(8, 16, 16))
        with torch.no_grad():
            if mode != "local":  # the same draws build the same cascade: untrained, the skip adds exactly zero
                torch.testing.assert_close(net(x), plain(x), atol=0, rtol=0)
            else:  # the last block's second channel, the gain, starts at zero; P starts as the centre slice
                last_block = []
                hook = net.blocks[-1].register_forward_hook(lambda mod, inp, out: last_block.append(out))
                torch.testing.assert_close(net(x), last_block[0][:, :1], atol=0, rtol=0)
                hook.remove()
                assert float(last_block[0][:, 1:].abs().max()) == 0.0
                torch.testing.assert_close(net.skip(x), x[:, 1:2], atol=0, rtol=0)
        optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(60):
            loss = (net(x) - target).abs().mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        losses[mode] = float(loss)
        if mode == "local":
            last_block = []
            hook = net.blocks[-1].register_forward_hook(lambda mod, inp, out: last_block.append(out))
            with torch.no_grad():
                out = net(x)
            hook.remove()
            image, gain = last_block[0][:, :1], last_block[0][:, 1:]  # (2, 1, 32, 32) each, in [-1, 1]
            torch.testing.assert_close(out, image + gain * net.skip(x))
            assert float(gain.abs().max()) > 0.1  # the gain learned to pass the input's detail
    assert losses["global"] < 0.5 * losses[None] and losses["local"] < 0.5 * losses[None], losses
    with pytest.raises(ValueError, match="input_skip"):
        CasNet(input_skip="linear")
    assert CasNet(num_ublocks=1, channels=(4, 8), input_skip="null").input_skip == ""  # the command line's "off"
    with pytest.raises(ValueError, match="choose one"):
        CasNet(input_skip="global", residual=True)
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


def test_casnet_input_checks():
    net = CasNet(spatial_dims=2, num_ublocks=1, channels=(2, 4, 8, 8))
    with pytest.raises(ValueError, match="divisible by 16"):
        net(torch.randn(1, 1, 64, 60))
    with pytest.raises(ValueError, match="H, W"):
        net(torch.randn(1, 1, 32, 32, 32))
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        CasNet(spatial_dims=1)
    with pytest.raises(ValueError, match="kernel_size - stride"):
        CasNet(channels=(4, 8), strides=(2, 1))


def test_casnet_paper_size():
    # the paper's default (6 pix2pix 256x256 U-blocks), built on the meta device: no memory, no initialisation
    with torch.device("meta"):
        net = CasNet()
    assert net.divisor == 256 and net.num_ublocks == 6
    k = 16  # 4x4 kernels; biases only where no batch norm follows, batch norm = 2 parameters a channel
    encoder = (1 * 64 * k + 64) + (64 * 128 * k + 2 * 128) + (128 * 256 * k + 2 * 256) + (256 * 512 * k + 2 * 512) \
        + 3 * (512 * 512 * k + 2 * 512) + (512 * 512 * k + 512)
    decoder = (512 * 512 * k + 2 * 512) + 3 * (1024 * 512 * k + 2 * 512) + (1024 * 256 * k + 2 * 256) \
        + (512 * 128 * k + 2 * 128) + (256 * 64 * k + 2 * 64) + (128 * 1 * k + 1)
    assert sum(p.numel() for p in net.parameters()) == 6 * (encoder + decoder)


def test_casnet_gradient_reaches_first_block():
    torch.manual_seed(0)
    net = CasNet(spatial_dims=2, num_ublocks=3, channels=(4, 8, 16))
    net(torch.randn(2, 1, 16, 16)).square().mean().backward()
    first_conv = next(m for m in net.blocks[0].modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


def test_casnet_trace_equals_eager():
    torch.manual_seed(0)
    net = CasNet(spatial_dims=2, num_ublocks=2, channels=(4, 8, 16), dropout=0.5).eval()
    with torch.no_grad():
        traced = torch.jit.trace(net, torch.randn(1, 1, 32, 32))
        for shape in [(1, 1, 32, 32), (2, 1, 48, 24)]:  # another batch and spatial size than the traced one
            x = torch.randn(*shape)
            torch.testing.assert_close(traced(x), net(x))


# ------------------------------------------------------------------------------------------------ discriminator


def _convs(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_discriminator_outputs_and_spectral_norm(spatial_dims):
    d = SpectralPatchDiscriminator(spatial_dims=spatial_dims, in_channels=2, channels=4, num_layers_d=3)
    size = (32,) * spatial_dims
    with torch.no_grad():
        out = d(torch.randn(2, 2, *size))
    # initial conv, num_layers_d convs (the last of stride 1), final conv: hidden features first, logits last
    assert isinstance(out, list) and len(out) == 5
    assert [tuple(o.shape) for o in out] == [
        (2, 4, *(16,) * spatial_dims), (2, 8, *(8,) * spatial_dims), (2, 16, *(4,) * spatial_dims),
        (2, 32, *(3,) * spatial_dims), (2, 1, *(2,) * spatial_dims),
    ]
    convs = _convs(d)
    assert len(convs) == 5
    for conv in convs:
        assert parametrize.is_parametrized(conv, "weight")
        assert any("SpectralNorm" in type(p).__name__ for p in conv.parametrizations.weight)
    assert not any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)) for m in d.modules())
    # conditional use: (image, condition) is the concatenated pair (eval: no power iteration between the two calls)
    d.eval()
    image, condition = torch.randn(1, 1, *size), torch.randn(1, 1, *size)
    with torch.no_grad():
        torch.testing.assert_close(d(image, condition)[-1], d(torch.cat([image, condition], 1))[-1])
    with pytest.raises(ValueError, match="image and condition concatenated"):
        d(image)


def test_discriminator_spectral_norm_stays_one_while_training():
    torch.manual_seed(0)
    d = SpectralPatchDiscriminator(spatial_dims=2, in_channels=2, channels=8, num_layers_d=3)
    opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    for _ in range(4):
        real, fake = torch.randn(2, 2, 32, 32), 0.5 * torch.randn(2, 2, 32, 32)
        loss = F.softplus(-d(real)[-1]).mean() + F.softplus(d(fake)[-1]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    buffers = [b.clone() for b in d.buffers()]
    norms = spectral_norms(d)
    assert all(torch.equal(a, b) for a, b in zip(buffers, d.buffers()))  # reading the norms runs no power iteration
    # the power iteration under-estimates sigma, so the normalised norm is >= 1; 15 iterations at construction and
    # one per training forward leave it within a few percent (close top singular values converge slowly)
    assert len(norms) == 5 and all(0.999 <= s <= 1.1 for s in norms), norms

    # the same weights without spectral normalisation are far from 1, and grow with the weights; the normalised
    # ones do not (W / sigma is invariant to the scale of W)
    plain = PatchDiscriminator(spatial_dims=2, channels=8, in_channels=2, num_layers_d=3, norm=None, bias=True, padding=1)
    with torch.no_grad():
        for p_conv, s_conv in zip(_convs(plain), _convs(d)):
            s_conv.parametrizations.weight.original.mul_(10)
            p_conv.weight.copy_(s_conv.parametrizations.weight.original)
            p_conv.bias.copy_(s_conv.bias)
        d(torch.randn(1, 2, 32, 32))  # one training-mode forward after the jump
    assert all(s > 1.5 for s in spectral_norms(plain)), spectral_norms(plain)
    assert all(0.999 <= s <= 1.1 for s in spectral_norms(d)), spectral_norms(d)


def test_discriminator_state_dict_round_trip():
    torch.manual_seed(0)
    d = SpectralPatchDiscriminator(spatial_dims=2, in_channels=2, channels=4, num_layers_d=2)
    d(torch.randn(1, 2, 32, 32))  # a training forward moves the power-iteration vectors
    state = d.state_dict()
    assert any(k.endswith("._u") for k in state) and any(k.endswith("._v") for k in state)
    assert any(k.endswith("parametrizations.weight.original") for k in state)
    fresh = SpectralPatchDiscriminator(spatial_dims=2, in_channels=2, channels=4, num_layers_d=2)
    fresh.load_state_dict(state)
    d.eval()
    fresh.eval()
    x = torch.randn(1, 2, 32, 32)
    with torch.no_grad():
        for a, b in zip(d(x), fresh(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert spectral_norms(d) == spectral_norms(fresh)
