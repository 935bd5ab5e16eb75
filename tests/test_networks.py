"""Shapes, ranges and sizes of the networks the CycleGAN bundle uses."""

import pytest
import torch
from monai.networks.nets import PatchDiscriminator

from common.networks import ResnetGenerator
from common.networks.resnet_generator import upsampling


def test_resnet_generator_2d_shape_range_and_paper_size():
    net = ResnetGenerator(spatial_dims=2, in_channels=1, out_channels=1, num_filters=64, num_res_blocks=9)
    # hand count: c7s1-64 (1*64*49+64), d128 (64*128*9+128), d256 (128*256*9+256),
    # 9 blocks * 2 * (256*256*9+256), u128 (256*128*9+128), u64 (128*64*9+64), c7s1-1 (64*49+1)
    expected = (49 * 64 + 64) + (64 * 128 * 9 + 128) + (128 * 256 * 9 + 256) + 18 * (256 * 256 * 9 + 256) \
        + (256 * 128 * 9 + 128) + (128 * 64 * 9 + 64) + (64 * 49 + 1)
    assert sum(p.numel() for p in net.parameters()) == expected
    with torch.no_grad():
        out = net(torch.randn(2, 1, 64, 48))
    assert out.shape == (2, 1, 64, 48)
    assert out.min() >= -1 and out.max() <= 1


def test_resnet_generator_3d_and_input_checks():
    net = ResnetGenerator(spatial_dims=3, num_filters=4, num_res_blocks=1)
    with torch.no_grad():
        assert net(torch.randn(1, 1, 16, 8, 12)).shape == (1, 1, 16, 8, 12)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 1, 16, 8, 10))
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        ResnetGenerator(spatial_dims=1)


def test_resnet_generator_init_matches_reference():
    torch.manual_seed(0)
    net = ResnetGenerator(spatial_dims=2, num_filters=64, num_res_blocks=9)
    weights = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    assert abs(weights.std().item() - 0.02) < 0.001
    assert abs(weights.mean().item()) < 0.001


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_resize_upsampling_has_no_checkerboard(spatial_dims):
    # a flat feature map: the transposed convolution's kernel overlaps the output unevenly, so even and odd output
    # positions get different sums of weights (the checkerboard); nearest upsampling + 3x3 convolution stays flat
    torch.manual_seed(0)
    flat = torch.ones((1, 8) + (6,) * spatial_dims)
    with torch.no_grad():
        transposed = upsampling(spatial_dims, 8, norm=None, mode="transposed")(flat)
        resize = upsampling(spatial_dims, 8, norm=None, mode="resize")(flat)
    assert transposed.shape == resize.shape == (1, 4) + (12,) * spatial_dims
    inner = (slice(None), slice(None)) + (slice(2, 10),) * spatial_dims
    even_odd = transposed[inner][(Ellipsis,) + (slice(0, None, 2),) * spatial_dims] \
        - transposed[inner][(Ellipsis,) + (slice(1, None, 2),) * spatial_dims]
    assert even_odd.abs().max() > 1e-3
    assert torch.allclose(resize, resize.flatten(2)[..., :1].reshape((1, 4) + (1,) * spatial_dims).expand_as(resize))
    with pytest.raises(ValueError, match="upsample_mode must be one of"):
        upsampling(spatial_dims, 8, mode="bilinear")


def test_resnet_generator_resize_upsampling_same_weights_and_shape():
    nets = {m: ResnetGenerator(2, num_filters=8, num_res_blocks=2, upsample_mode=m) for m in ("transposed", "resize")}
    assert len({sum(p.numel() for p in net.parameters()) for net in nets.values()}) == 1
    with torch.no_grad():
        assert nets["resize"](torch.randn(1, 1, 84, 84)).shape == (1, 1, 84, 84)


def test_patch_discriminator_is_the_70x70_patchgan():
    # the CycleGAN reference's 70x70 PatchGAN maps a 256x256 image to 30x30 logits
    d = PatchDiscriminator(spatial_dims=2, channels=64, in_channels=1, num_layers_d=3, norm="INSTANCE", bias=True)
    with torch.no_grad():
        out = d(torch.randn(1, 1, 256, 256))
    assert out[-1].shape == (1, 1, 30, 30)
    assert [o.shape[1] for o in out[:-1]] == [64, 128, 256, 512]
