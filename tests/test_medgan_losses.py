"""MedGAN's losses against values worked out by hand, and the VGG-19 feature extractor's layout and loading."""

from __future__ import annotations

import hashlib
import logging

import pytest
import torch

from common.losses import ContentLoss, FeatureMatchingLoss, StyleLoss, gram_matrix
from common.networks.vgg import VGG19Features, expected_state_dict_shapes

# a 1x2x2x2 feature map: channel 0 = [[1, 2], [3, 4]], channel 1 = [[0, 1], [0, 2]]
F2D = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 2.0]]]], dtype=torch.float64)
# a 1x2x2x2x2 feature map: channel 0 = 1..8, channel 1 = all ones
F3D = torch.stack([torch.arange(1.0, 9.0), torch.ones(8)]).reshape(1, 2, 2, 2, 2).double()


# ---------------------------------------------------------------- Gram matrix


def test_gram_matrix_2d_by_hand():
    # sums over the 4 positions: c0.c0 = 1+4+9+16 = 30, c0.c1 = 0+2+0+8 = 10, c1.c1 = 0+1+0+4 = 5;
    # divided by h*w*d = 2*2 positions * 2 channels = 8
    expected = torch.tensor([[[3.75, 1.25], [1.25, 0.625]]], dtype=torch.float64)
    assert torch.allclose(gram_matrix(F2D), expected)


def test_gram_matrix_3d_by_hand():
    # c0.c0 = 1^2+...+8^2 = 204, c0.c1 = 1+...+8 = 36, c1.c1 = 8; divided by 8 positions * 2 channels = 16
    expected = torch.tensor([[[12.75, 2.25], [2.25, 0.5]]], dtype=torch.float64)
    assert torch.allclose(gram_matrix(F3D), expected)


def test_gram_matrix_shape_and_batch():
    feats = torch.randn(3, 5, 4, 6)
    gram = gram_matrix(feats)
    assert gram.shape == (3, 5, 5)
    assert torch.allclose(gram[1], feats[1].reshape(5, -1) @ feats[1].reshape(5, -1).T / (24 * 5), atol=1e-5)
    assert torch.allclose(gram, gram.transpose(1, 2))
    with pytest.raises(ValueError, match="B, C, \\*spatial"):
        gram_matrix(torch.randn(3, 5))


# ---------------------------------------------------------------- style loss


def test_style_loss_2d_by_hand():
    # target: channel 0 as F2D, channel 1 zero -> Gram [[3.75, 0], [0, 0]]; difference [[0, 1.25], [1.25, 0.625]]
    target = F2D.clone()
    target[:, 1] = 0
    # ||diff||_F^2 = 2 * 1.5625 + 0.390625 = 3.515625; times 1 / (4 d^2) with d = 2 channels -> 3.515625 / 16
    assert StyleLoss()([F2D], [target]).item() == pytest.approx(3.515625 / 16)
    assert StyleLoss(weights=[2.0])([F2D], [target]).item() == pytest.approx(2 * 3.515625 / 16)
    # against zero features: ||Gram||_F^2 = 3.75^2 + 2 * 1.25^2 + 0.625^2 = 17.578125
    assert StyleLoss()(F2D, torch.zeros_like(F2D)).item() == pytest.approx(17.578125 / 16)


def test_style_loss_3d_by_hand_and_layers():
    # ||Gram(F3D)||_F^2 = 12.75^2 + 2 * 2.25^2 + 0.5^2 = 172.9375; 1 / (4 * 2^2) = 1/16
    assert StyleLoss()([F3D], [torch.zeros_like(F3D)]).item() == pytest.approx(172.9375 / 16)
    # a second layer of 1 channel: Gram = mean of squares = (1+4+9+16)/4 = 7.5; 1 / (4 * 1^2) * 7.5^2
    layer2 = F2D[:, :1]
    loss = StyleLoss(weights=[1.0, 0.5])([F3D, layer2], [torch.zeros_like(F3D), torch.zeros_like(layer2)])
    assert loss.item() == pytest.approx(172.9375 / 16 + 0.5 * 7.5**2 / 4)


def test_style_loss_batch_reduction():
    pred = torch.cat([F2D, F2D])
    target = torch.cat([torch.zeros_like(F2D), F2D])  # second item identical: loss 0
    per_item = StyleLoss(reduction="none")([pred], [target])
    assert per_item.shape == (2,)
    assert per_item.tolist() == pytest.approx([17.578125 / 16, 0.0])
    assert StyleLoss()([pred], [target]).item() == pytest.approx(17.578125 / 32)
    assert StyleLoss(reduction="sum")([pred], [target]).item() == pytest.approx(17.578125 / 16)


# ---------------------------------------------------------------- content loss


def test_content_loss_by_hand():
    # 2D: squares 1+4+9+16 + 0+1+0+4 = 35 over h*w*d = 2*2*2 = 8 values
    assert ContentLoss()([F2D], [torch.zeros_like(F2D)]).item() == pytest.approx(35 / 8)
    # 3D: squares 204 + 8 = 212 over 2*2*2*2 = 16 values
    assert ContentLoss()([F3D], [torch.zeros_like(F3D)]).item() == pytest.approx(212 / 16)
    # two layers with weights, and the batch mean
    loss = ContentLoss(weights=[1.0, 0.25])([F2D, F3D], [torch.zeros_like(F2D), torch.zeros_like(F3D)])
    assert loss.item() == pytest.approx(35 / 8 + 0.25 * 212 / 16)
    pred, target = torch.cat([F2D, F2D]), torch.cat([torch.zeros_like(F2D), F2D])
    assert ContentLoss()(pred, target).item() == pytest.approx(35 / 16)
    assert ContentLoss(reduction="none")(pred, target).tolist() == pytest.approx([35 / 8, 0.0])


# ---------------------------------------------------------------- perceptual (feature-matching) loss


def test_feature_matching_loss_by_hand():
    # 2D: |.| sums 1+2+3+4 + 0+1+0+2 = 13 over 8 values; 3D: 36 + 8 = 44 over 16 values
    assert FeatureMatchingLoss()([F2D], [torch.zeros_like(F2D)]).item() == pytest.approx(13 / 8)
    assert FeatureMatchingLoss()([F3D], [torch.zeros_like(F3D)]).item() == pytest.approx(44 / 16)
    loss = FeatureMatchingLoss(weights=[2.0, 1.0])([F2D, F3D], [torch.zeros_like(F2D), -F3D])
    assert loss.item() == pytest.approx(2 * 13 / 8 + 2 * 44 / 16)
    pred, target = torch.cat([F2D, F2D]), torch.cat([torch.zeros_like(F2D), F2D])
    assert FeatureMatchingLoss()([pred], [target]).item() == pytest.approx(13 / 16)


@pytest.mark.parametrize("loss_cls", [StyleLoss, ContentLoss, FeatureMatchingLoss])
def test_losses_zero_for_identical_and_gradients(loss_cls):
    torch.manual_seed(0)
    feats = [torch.randn(2, 4, 6, 5), torch.randn(2, 8, 3, 3, 2)]
    assert loss_cls()(feats, [f.clone() for f in feats]).item() == 0.0
    pred = [f.clone().requires_grad_(True) for f in feats]
    target = [torch.randn_like(f) for f in feats]
    loss = loss_cls()(pred, target)
    assert loss.ndim == 0 and loss.item() > 0
    loss.backward()
    for p in pred:
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("loss_cls", [StyleLoss, ContentLoss, FeatureMatchingLoss])
def test_losses_reject_mismatched_inputs(loss_cls):
    a, b = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 2, 2)
    with pytest.raises(ValueError, match="1 prediction feature maps but 2 target"):
        loss_cls()([a], [a, b])
    with pytest.raises(ValueError, match="layer 1: prediction features \\(1, 2, 2, 2\\) and target features"):
        loss_cls()([a, b], [a, a])
    with pytest.raises(ValueError, match="2 layer weights for 1 layers"):
        loss_cls(weights=[1.0, 1.0])([a], [a])
    with pytest.raises(ValueError):
        loss_cls(reduction="max")


# ---------------------------------------------------------------- VGG-19 features

# torchvision's vgg19().features: (index, out channels, in channels) of its 16 3x3 convolutions
VGG19_CONVS = [
    (0, 64, 3), (2, 64, 64),
    (5, 128, 64), (7, 128, 128),
    (10, 256, 128), (12, 256, 256), (14, 256, 256), (16, 256, 256),
    (19, 512, 256), (21, 512, 512), (23, 512, 512), (25, 512, 512),
    (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512),
]
PUBLISHED_SHAPES = {}
for _i, _out, _in in VGG19_CONVS:
    PUBLISHED_SHAPES[f"features.{_i}.weight"] = (_out, _in, 3, 3)
    PUBLISHED_SHAPES[f"features.{_i}.bias"] = (_out,)


@pytest.fixture(scope="module")
def vgg() -> VGG19Features:
    return VGG19Features("random")


@pytest.fixture(scope="module")
def other_state() -> dict[str, torch.Tensor]:
    """A VGG-19 state dict unlike the "random" one, with the classifier keys a full torchvision file has."""
    gen = torch.Generator().manual_seed(1)
    state = {k: torch.randn(shape, generator=gen) * 0.05 for k, shape in PUBLISHED_SHAPES.items()}
    state["classifier.0.weight"] = torch.zeros(4, 3)
    return state


def test_vgg_state_dict_layout(vgg):
    state = vgg.state_dict()
    assert list(state) == list(PUBLISHED_SHAPES)
    assert {k: tuple(v.shape) for k, v in state.items()} == PUBLISHED_SHAPES
    assert expected_state_dict_shapes() == PUBLISHED_SHAPES
    assert sum(v.numel() for v in state.values()) == 20_024_384  # VGG-19's convolutional parameters


def test_vgg_load_round_trip_and_sha256_logged(vgg, other_state, tmp_path, caplog):
    path = tmp_path / "vgg19.pth"
    torch.save(other_state, path)
    with caplog.at_level(logging.INFO, logger="common.networks.vgg"):
        loaded = VGG19Features(str(path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() in caplog.text
    state = loaded.state_dict()
    assert list(state) == list(PUBLISHED_SHAPES)  # the classifier keys are dropped
    assert all(torch.equal(state[k], other_state[k]) for k in state)
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(loaded(x)[0], vgg(x)[0])
        # only the features' keys, as saved from vgg19().features itself, also load
        features_only = tmp_path / "features_only.pth"
        torch.save({k.removeprefix("features."): v for k, v in state.items()}, features_only)
        again = VGG19Features(features_only)
        assert all(torch.equal(a, b) for a, b in zip(again(x), loaded(x)))


def test_vgg_refuses_wrong_files(other_state, tmp_path):
    wrong_key = dict(other_state)
    wrong_key["features.1.weight"] = wrong_key.pop("features.0.weight")
    torch.save(wrong_key, tmp_path / "wrong_key.pth")
    with pytest.raises(ValueError, match="wrong_key.pth.*missing keys \\['features.0.weight'\\].*unexpected keys"):
        VGG19Features(tmp_path / "wrong_key.pth")

    wrong_shape = dict(other_state)
    wrong_shape["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(wrong_shape, tmp_path / "wrong_shape.pth")
    shape_message = "wrong_shape.pth.*features.0.weight: \\(64, 1, 3, 3\\) \\(expected \\(64, 3, 3, 3\\)\\)"
    with pytest.raises(ValueError, match=shape_message):
        VGG19Features(tmp_path / "wrong_shape.pth")

    (tmp_path / "notes.pth").write_text("not a checkpoint", encoding="utf-8")
    with pytest.raises(ValueError, match="notes.pth could not be read"):
        VGG19Features(tmp_path / "notes.pth")

    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="list.pth: not a state dict"):
        VGG19Features(tmp_path / "list.pth")


def test_vgg_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth.*`vgg_weights`.*\"random\""):
        VGG19Features(tmp_path / "absent.pth")
    with pytest.raises(FileNotFoundError, match="vgg_weights"):
        VGG19Features(None)


def test_vgg_output_shapes_2d(vgg):
    with torch.no_grad():
        out = vgg(torch.rand(2, 1, 32, 32) * 2 - 1)
    assert [tuple(f.shape) for f in out] == [
        (2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8), (2, 512, 4, 4), (2, 512, 2, 2)
    ]
    assert all((f >= 0).all() for f in out)  # ReLU outputs


def test_vgg_3d_is_slice_wise(vgg):
    x = torch.rand(2, 1, 32, 32, 3) * 2 - 1
    with torch.no_grad():
        out = vgg(x)
        assert [tuple(f.shape) for f in out] == [
            (6, 64, 32, 32), (6, 128, 16, 16), (6, 256, 8, 8), (6, 512, 4, 4), (6, 512, 2, 2)
        ]
        for d in range(3):
            per_slice = vgg(x[..., d])  # slice d of both items
            for f3d, f2d in zip(out, per_slice):
                assert torch.allclose(f3d[d::3], f2d, atol=1e-5)  # batch-major: item b, slice d at b * 3 + d


def test_vgg_input_scaling_and_channels(vgg):
    gray = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(vgg(gray)[0], vgg(gray.expand(-1, 3, -1, -1))[0])
        # [-1, 1] is mapped to [0, 1] and ImageNet-normalised before the first convolution
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        normalised = ((gray + 1) / 2).expand(-1, 3, -1, -1)
        normalised = (normalised - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        assert torch.allclose(vgg(gray)[0], vgg.features[:4](normalised), atol=1e-5)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        vgg(torch.zeros(1, 2, 32, 32))
    with pytest.raises(ValueError, match="\\(B, C, H, W\\) or \\(B, C, H, W, D\\)"):
        vgg(torch.zeros(1, 32, 32))


def test_vgg_frozen_eval_and_layers(vgg):
    assert all(not p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training and not any(m.training for m in vgg.modules())
    x = (torch.rand(1, 1, 32, 32) * 2 - 1).requires_grad_(True)
    vgg(x)[1].sum().backward()  # gradients reach the input, not the frozen weights
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())

    taps = VGG19Features("random", layers=("conv1_1", 8, "pool1"))
    with torch.no_grad():
        out = taps(torch.zeros(1, 1, 32, 32))
    assert [tuple(f.shape) for f in out] == [(1, 64, 32, 32), (1, 128, 16, 16), (1, 64, 16, 16)]
    assert torch.equal(taps.features[0].weight, vgg.features[0].weight)  # "random" is the same in every run
    with pytest.raises(ValueError, match="unknown VGG-19 layer 'relu6_1'"):
        VGG19Features("random", layers=("relu6_1",))
