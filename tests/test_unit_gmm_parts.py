"""The patch-based Gaussian-mixture UNIT's parts: the mixture prior and its KL, the shared-latent VAEs, the step's
losses by hand and its update order, the HU checks and window, the co-located patch sampler and the enhancement
figures, on tiny tensors and on the real CT."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from torch import nn

from common.baselines import HistogramMapping
from common.ct_evaluation import TOTALSEGMENTATOR_REGIONS, enhancement_figures, region_table
from common.data import CheckHUd, HUWindowd, RandColocatedPatchd
from common.engines import MultiNetworkTrainer, UNITGMMStep
from common.losses import GaussianMixturePrior, gaussian_mixture_kl
from common.networks import SharedLatentVAEs, TranslationWithCycle
from conftest import SHARED


def _prior(means, variances, weights=None) -> GaussianMixturePrior:
    means = torch.as_tensor(means, dtype=torch.float32)
    prior = GaussianMixturePrior(means.shape[1], means.shape[0])
    with torch.no_grad():
        prior.means.copy_(means)
        prior.log_vars.copy_(torch.log(torch.as_tensor(variances, dtype=torch.float32)))
        if weights is not None:
            prior.logits.copy_(torch.log(torch.as_tensor(weights, dtype=torch.float32)))
    return prior


def test_mixture_log_prob_by_hand():
    # two components in 2D with weights 0.25 / 0.75
    prior = _prior([[0.0, 0.0], [1.0, -1.0]], [[1.0, 1.0], [0.5, 2.0]], [0.25, 0.75])
    z = torch.tensor([[0.5, 0.5]])

    def normal(x, m, v):
        return math.exp(-0.5 * (x - m) ** 2 / v) / math.sqrt(2 * math.pi * v)

    expected = 0.25 * normal(0.5, 0, 1) * normal(0.5, 0, 1) + 0.75 * normal(0.5, 1, 0.5) * normal(0.5, -1, 2)
    assert prior.log_prob(z).item() == pytest.approx(math.log(expected), rel=1e-5)


def test_kl_with_one_component_is_the_gaussian_closed_form():
    torch.manual_seed(0)
    prior = _prior([[0.5, -1.0, 2.0]], [[2.0, 0.5, 1.5]])
    mu, log_var = torch.randn(2, 3, 4, 4), 0.3 * torch.randn(2, 3, 4, 4)  # (B, C, H, W): 32 latent vectors
    m, v = prior.means[0].view(1, 3, 1, 1), prior.log_vars[0].exp().view(1, 3, 1, 1)
    closed = 0.5 * (torch.log(v) - log_var + (log_var.exp() + (mu - m) ** 2) / v - 1).sum(1).mean() / 3
    estimate = gaussian_mixture_kl(mu, prior, log_var, num_samples=4000)
    assert estimate.item() == pytest.approx(closed.item(), rel=0.01)
    # unit-variance posterior (UNIT's encoders) and the unit prior: KL = |mu|^2 / 2 per vector
    unit = GaussianMixturePrior(3, 1, learnable=False)
    assert list(unit.parameters()) == [] and set(unit.state_dict()) == {"means", "log_vars", "logits"}  # fixed
    expected = 0.5 * (mu**2).sum(1).mean() / 3
    assert gaussian_mixture_kl(mu, unit, num_samples=4000).item() == pytest.approx(expected.item(), rel=0.02)


def test_kl_of_a_mixture_against_numpy_monte_carlo_and_its_gradients():
    torch.manual_seed(1)
    prior = _prior([[-2.0, 0.0], [2.0, 1.0]], [[0.5, 1.0], [1.0, 0.25]], [0.3, 0.7])
    mu = torch.tensor([[1.5, 0.5]]).view(1, 2, 1, 1).requires_grad_()
    estimate = gaussian_mixture_kl(mu, prior, num_samples=20000)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200000, 2)) + np.array([1.5, 0.5])
    log_q = -0.5 * (np.log(2 * np.pi) * 2 + ((z - [1.5, 0.5]) ** 2).sum(1))
    comps = [np.log(w) - 0.5 * (np.log(2 * np.pi * np.array(v)).sum() + ((z - m) ** 2 / np.array(v)).sum(1))
             for w, m, v in ((0.3, [-2.0, 0.0], [0.5, 1.0]), (0.7, [2.0, 1.0], [1.0, 0.25]))]
    log_p = np.logaddexp(*comps)
    assert estimate.item() == pytest.approx(float((log_q - log_p).mean()) / 2, rel=0.02)
    estimate.backward()  # reparameterised: the encoder's mean and every prior parameter get gradients
    assert mu.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (prior.means, prior.log_vars, prior.logits))


def test_shared_layers_are_the_same_parameters_in_both_vaes():
    torch.manual_seed(0)
    vaes = SharedLatentVAEs(2, num_filters=4, num_res_blocks=2, num_shared_blocks=1)
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    assert vaes.encode(x, 0).shape == (1, 16, 4, 4) and vaes(x).shape == x.shape
    # a loss through domain 0 only and one through domain 1 only both reach the shared blocks' very tensors
    shared = [*vaes.shared_encoder.parameters(), *vaes.shared_decoder.parameters()]
    for domain in (0, 1):
        vaes.zero_grad()
        vaes.decode(vaes.encode(x, domain), domain).sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in shared)
        other = [*vaes.encoders[1 - domain].parameters(), *vaes.decoders[1 - domain].parameters()]
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in other)
    # one copy in the state dict: the shared blocks are not duplicated per domain
    keys = list(vaes.state_dict())
    assert any(k.startswith("shared_encoder.") for k in keys) and not any(".shared" in k for k in keys)
    # the forward parts agree with the methods; the evaluation view adds the cycle as a second channel
    assert torch.equal(vaes(x, "encode", 1), vaes.encode(x, 1))
    both = TranslationWithCycle(vaes)(x)
    assert both.shape == (1, 2, 16, 16) and torch.equal(both[:, :1], vaes(x))
    with pytest.raises(ValueError, match="divisible by 4"):
        vaes(torch.zeros(1, 1, 18, 16))


def test_without_normalisation_the_signal_reaches_the_output():
    """No VAE norm (the CT demo's setting) takes He initialisation: the untrained translation still varies with its
    input (N(0, 0.02) weights through some twenty convolutions gave a constant, std 6e-6)."""
    torch.manual_seed(0)
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    for norm in ("none", "INSTANCE"):
        out = SharedLatentVAEs(2, num_filters=8, num_res_blocks=2, norm=norm)(x)
        assert out.std() > 0.01, norm


def test_a_decoder_driven_into_saturation_recovers_only_without_tanh():
    """The failure measured on the extended CT set: the non-contrast decoder's last pre-activation drifted to about
    -25, tanh gave -1 (air) everywhere and its derivative (~1e-21) stopped every gradient. With
    ``output_activation="none"`` the same decoder still gets the L1 gradient, and its translations stay in [-1, 1]."""
    torch.manual_seed(0)
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    grads = {}
    for activation in ("tanh", "none"):
        torch.manual_seed(1)
        vaes = SharedLatentVAEs(2, num_filters=4, num_res_blocks=2, norm="none", output_activation=activation)
        output_conv = [m for m in vaes.decoders[0].modules() if isinstance(m, nn.Conv2d)][-1]
        with torch.no_grad():
            output_conv.bias.fill_(-25.0)  # the saturated state
        decoded = vaes.decode(vaes.encode(x, 0), 0)
        assert (decoded < -0.999).all() if activation == "tanh" else (decoded < -20).all()
        nn.functional.l1_loss(decoded, x).backward()
        grads[activation] = output_conv.bias.grad.abs().item()
        translated = vaes(x)  # source 0 -> domain 1, the deployed path
        assert translated.min() >= -1.0 and translated.max() <= 1.0
    assert grads["tanh"] < 1e-15  # dead: Adam's eps (1e-8) swamps it
    assert grads["none"] == pytest.approx(1.0)  # d|y - x|/db summed over 256 outputs / 256 = 1: every y < x here
    vaes = SharedLatentVAEs(2, num_filters=4, num_res_blocks=2, norm="none", output_activation="none")
    with torch.no_grad():
        [m for m in vaes.decoders[1].modules() if isinstance(m, nn.Conv2d)][-1].bias.fill_(5.0)
    assert vaes.decode(vaes.encode(x, 0), 1).min() > 1.0 and torch.equal(vaes(x), torch.ones_like(x))  # clamped
    assert not any(isinstance(m, nn.Tanh) for m in vaes.modules())
    with pytest.raises(ValueError, match="output_activation"):
        SharedLatentVAEs(2, num_filters=4, num_res_blocks=2, output_activation="sigmoid")


def test_3d_vaes_shapes():
    vaes = SharedLatentVAEs(3, num_filters=2, num_res_blocks=1)
    assert vaes(torch.zeros(1, 1, 8, 8, 8)).shape == (1, 1, 8, 8, 8)
    assert vaes.encode(torch.zeros(1, 1, 8, 8, 8), 0).shape == (1, 8, 2, 2, 2)


class PatchConst(nn.Module):
    """A discriminator with one parameter: its logits are ``value`` everywhere (a 2x2 patch map)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, x):
        return [x[:, :, :2, :2] * 0 + self.value]


def _unit_trainer(seed=0):
    torch.manual_seed(seed)
    nets = {"G": SharedLatentVAEs(2, num_filters=2, num_res_blocks=1), "prior": GaussianMixturePrior(8, 2),
            "D1": PatchConst(0.3), "D2": PatchConst(0.6)}
    opts = {"G": torch.optim.SGD([*nets["G"].parameters(), *nets["prior"].parameters()], lr=0.01),
            "D": torch.optim.SGD([*nets["D1"].parameters(), *nets["D2"].parameters()], lr=0.1)}
    return MultiNetworkTrainer(device="cpu", max_epochs=1, data_loader=[{}], networks=nets, optimizers=opts,
                               step=UNITGMMStep(lambda_adversarial=10.0, lambda_kl=0.1, lambda_reconstruction=100.0, lambda_cycle_kl=0.1, lambda_cycle=100.0))


def test_step_losses_by_hand_and_update_order():
    trainer = _unit_trainer()
    g, prior = trainer.networks["G"], trainer.networks["prior"]
    x1, x2 = torch.rand(2, 1, 1, 8, 8) * 2 - 1
    g_before = {k: v.clone() for k, v in g.state_dict().items()}

    # the same draws in the step's order: D's translations, then G's z1, z2, z12, z21, then the four KL estimates
    torch.manual_seed(123)
    with torch.no_grad():
        g.encode(x2, 1), g.encode(x1, 0)
        torch.randn(1, 8, 2, 2), torch.randn(1, 8, 2, 2)  # the D phase's two samples
        mu1, mu2 = g.encode(x1, 0), g.encode(x2, 1)
        z1, z2 = mu1 + torch.randn_like(mu1), mu2 + torch.randn_like(mu2)
        x11, x22, x12, x21 = g.decode(z1, 0), g.decode(z2, 1), g.decode(z1, 1), g.decode(z2, 0)
        mu12, mu21 = g.encode(x12, 1), g.encode(x21, 0)
        x121, x212 = g.decode(mu12 + torch.randn_like(mu12), 0), g.decode(mu21 + torch.randn_like(mu21), 1)
        kl = [gaussian_mixture_kl(m, prior) for m in (mu1, mu2, mu12, mu21)]
    l1 = lambda a, b: (a - b).abs().mean().item()  # noqa: E731
    recon, cycle = l1(x11, x1) + l1(x22, x2), l1(x121, x1) + l1(x212, x2)
    torch.manual_seed(123)
    out = trainer.step(trainer, {"A": x1, "B": x2})

    # D phase: 10 * 0.5 * ((D(real) - 1)^2 + D(fake)^2) with the constant logits
    assert out["loss_D1"] == pytest.approx(10 * 0.5 * ((0.3 - 1) ** 2 + 0.3**2), rel=1e-5)
    assert out["loss_D2"] == pytest.approx(10 * 0.5 * ((0.6 - 1) ** 2 + 0.6**2), rel=1e-5)
    # G phase after D's SGD step: the constants moved by -0.1 * dL/dvalue = -0.1 * 10 * (2 * value - 1)
    d1, d2 = 0.3 - 0.1 * 10 * (2 * 0.3 - 1), 0.6 - 0.1 * 10 * (2 * 0.6 - 1)
    assert trainer.networks["D1"].value.item() == pytest.approx(d1) and trainer.networks["D2"].value.item() == pytest.approx(d2)
    assert out["loss_G_adv"] == pytest.approx(10 * ((d1 - 1) ** 2 + (d2 - 1) ** 2), rel=1e-5)
    assert out["loss_vae"] == pytest.approx(0.1 * (kl[0] + kl[1]).item() + 100 * recon, rel=1e-4)
    assert out["loss_cc"] == pytest.approx(0.1 * sum(kl).item() + 100 * cycle, rel=1e-4)
    assert out["loss_G"] == pytest.approx(out["loss_G_adv"] + out["loss_vae"] + out["loss_cc"], rel=1e-6)
    assert out["recon_l1"] == pytest.approx(recon / 2, rel=1e-5)
    # G's update changed G, and the frozen discriminators kept the values of their own update
    assert any(not torch.equal(v, g.state_dict()[k]) for k, v in g_before.items())
    assert trainer.networks["D1"].value.item() == pytest.approx(d1)


def test_hu_window_round_trip_and_unit_check():
    img = MetaTensor(torch.tensor([[[[-1024.0, -500.0], [0.0, 40.0]], [[300.0, 2048.0], [1500.0, -1000.0]]]]))
    window = HUWindowd(keys="image", hu_min=-1024.0, hu_max=2048.0)
    out = window({"image": img})
    assert torch.allclose(out["image"].as_tensor().flatten()[:4], torch.tensor([-1.0, -1 + 2 * 524 / 3072, -1 + 2 * 1024 / 3072, -1 + 2 * 1064 / 3072]))
    back = window.inverse(out)["image"]
    torch.testing.assert_close(back.as_tensor(), img.as_tensor(), atol=1e-3, rtol=0)
    # a value beyond the window is clipped and comes back at the window's edge
    clipped = window({"image": MetaTensor(torch.tensor([[[[3000.0]]]]))})
    assert window.inverse(clipped)["image"].item() == pytest.approx(2048.0)

    check = CheckHUd(keys="image")
    check({"image": img})  # CT in HU: passes
    mri = MetaTensor(torch.rand(1, 4, 4, 4), meta={"filename_or_obj": "t1.nii.gz"})
    with pytest.raises(ValueError, match=r"'t1.nii.gz' \('image'\): intensities 0.*not CT in Hounsfield units"):
        check({"image": mri})


@pytest.fixture(scope="module")
def real_ct():
    image = nib.load(SHARED / "ct" / "example_ct.nii.gz")
    return torch.as_tensor(np.asarray(image.dataobj, dtype=np.float32))[None], image.header.get_zooms()


def test_colocated_patches_centred_alike_share_the_offset_and_the_content(real_ct):
    """alignment="center": B is A cropped symmetrically (the same centre voxel), so co-located patches must hold the
    same voxels."""
    volume, zooms = real_ct  # (1, 122, 101, 112)
    affine = np.diag([*map(float, zooms), 1.0])
    a = MetaTensor(volume, affine=affine)
    b = MetaTensor(volume[:, 11:-11, 10:-10, 20:-20].clone(), affine=affine)  # sizes 100, 81, 72 keep shape // 2 in place
    assert (np.array(a.shape[1:]) // 2 - [11, 10, 20] == np.array(b.shape[1:]) // 2).all()
    for roi in ([32, 32], [16, 16, 16]):
        sampler = RandColocatedPatchd(keys=["A", "B"], roi_size=roi, alignment="center", threshold=-600,
                                      min_fraction=0.3, background_probability=0)
        for seed in range(5):
            sampler.set_random_state(seed)
            out = sampler({"A": a, "B": b})
            assert out["A"].shape == out["B"].shape == (1, *roi)
            ca, cb = (np.array(out[k].meta["patch_center"]) for k in "AB")
            assert (ca - np.array(a.shape[1:]) // 2 == cb - np.array(b.shape[1:]) // 2).all()  # one offset
            torch.testing.assert_close(out["A"].as_tensor(), out["B"].as_tensor())  # same voxels: no padding needed
            assert float((out["A"] > -600).float().mean()) >= 0.3  # drawn on the body, not in the air
    with pytest.raises(ValueError, match="spacings"):
        RandColocatedPatchd(keys=["A", "B"], roi_size=[8, 8])({"A": a, "B": MetaTensor(volume, affine=np.diag([1.0, 1, 1, 1]))})


def test_colocated_patches_at_the_same_relative_position(real_ct):
    """alignment="relative" (the default): both patches at the same fraction of their volume's extent, inside each
    volume, and the whole of the larger volume is reached (not only the part overlapping the smaller one)."""
    volume, zooms = real_ct
    affine = np.diag([*map(float, zooms), 1.0])
    a, b = MetaTensor(volume, affine=affine), MetaTensor(volume[:, 30:70, 20:60, 40:60].clone(), affine=affine)
    sampler = RandColocatedPatchd(keys=["A", "B"], roi_size=[32, 32], threshold=-600, background_probability=0)
    slices = []
    for seed in range(40):
        sampler.set_random_state(seed)
        out = sampler({"A": a, "B": b})
        ca, cb = (np.array(out[k].meta["patch_center"]) for k in "AB")
        for c, shape in ((ca, a.shape[1:]), (cb, b.shape[1:])):
            assert (c[:2] - 16 >= 0).all() and (c[:2] + 16 <= np.array(shape[:2])).all()  # the patch inside its volume
        assert abs(ca[2] / 111 - cb[2] / 19) <= 0.5 / 19 + 1e-9  # the same relative slice
        slices.append(ca[2])
    assert min(slices) < 40 and max(slices) > 60  # beyond B's overlap with A's centre (slices 46..65)
    # B = A: co-located patches are the same voxels
    out = sampler({"A": a, "B": MetaTensor(volume.clone(), affine=affine)})
    torch.testing.assert_close(out["A"].as_tensor(), out["B"].as_tensor())
    # a share of the samples is taken wherever it falls, air included (inference tiles the air too)
    anywhere = RandColocatedPatchd(keys=["A"], roi_size=[32, 32], threshold=-600, min_fraction=0.3, background_probability=1)
    fractions = []
    for seed in range(30):
        anywhere.set_random_state(seed)
        fractions.append(float((anywhere({"A": a})["A"] > -600).float().mean()))
    assert min(fractions) < 0.3


def test_colocated_patches_matched_by_lung_ratio(real_ct):
    """alignment="lung": each patch pair comes from slices of the same body region (lung ratios within the
    tolerance), so a chest scan's lung slices are never paired with an abdomen's; two copies of one volume give
    patches of the same slice; scans of no common region are refused by name."""
    abdomen, zooms = real_ct  # example_ct: abdomen, lung bases in its top slices only
    chest = torch.as_tensor(np.asarray(nib.load(SHARED / "ct" / "pulmonary_report_models_ct_cropped.nii.gz").dataobj,
                                       dtype=np.float32))[None]
    affine = np.diag([*map(float, zooms), 1.0])  # one grid for both: the sampler works in voxels
    a, b = MetaTensor(abdomen, affine=affine), MetaTensor(chest, affine=affine)
    hu_lung = (-950.0, -500.0)
    ra, rb = (RandColocatedPatchd.lung_ratios(v, hu_lung) for v in (a, b))
    by_hand = ((abdomen[..., 5] > -950) & (abdomen[..., 5] <= -500)).sum() / (abdomen[..., 5] > -500).sum()
    assert ra[5] == pytest.approx(float(by_hand))
    assert ra[:100].max() < 0.2 and rb.max() > 0.8  # the abdomen has almost no lung, the chest crop a lot
    lung = RandColocatedPatchd(keys=["A", "B"], roi_size=[32, 32], alignment="lung", threshold=-600,
                               background_probability=0, lung_range=hu_lung, lung_tolerance=0.1)
    relative = RandColocatedPatchd(keys=["A", "B"], roi_size=[32, 32], threshold=-600, background_probability=0)
    gaps = {"lung": [], "relative": []}
    for seed in range(40):
        for name, sampler in (("lung", lung), ("relative", relative)):
            sampler.set_random_state(seed)
            out = sampler({"A": a, "B": b})
            za, zb = (out[k].meta["patch_center"][2] for k in "AB")
            gaps[name].append(abs(ra[za] - rb[zb]))
    assert max(gaps["lung"]) <= 0.1 + 1e-9
    assert max(gaps["relative"]) > 0.3  # the position alone pairs abdomen with lung
    same = {"A": a, "B": MetaTensor(abdomen.clone(), affine=affine)}
    for roi in ([32, 32], [16, 16, 16]):  # 3D patches stay inside the volume, at the same slice in both
        sampler = RandColocatedPatchd(keys=["A", "B"], roi_size=roi, alignment="lung", lung_range=hu_lung)
        sampler.set_random_state(0)
        for _ in range(20):
            out = sampler(same)
            assert out["A"].meta["patch_center"] == out["B"].meta["patch_center"]
            assert 8 <= out["A"].meta["patch_center"][2] <= abdomen.shape[-1] - 8 or len(roi) == 2
            torch.testing.assert_close(out["A"].as_tensor(), out["B"].as_tensor())
    with pytest.raises(ValueError, match="share no body region"):
        RandColocatedPatchd(keys=["A", "B"], roi_size=[32, 32], alignment="lung", lung_range=hu_lung,
                            lung_tolerance=0.01)({"A": a, "B": MetaTensor(torch.full_like(chest, -700.0), affine=affine)})


def test_enhancement_figures_by_hand():
    before = torch.tensor([40.0, 50.0, 30.0, 10.0, -800.0, 200.0, -1000.0, 35.0, -100.0, -20.0])
    after = torch.tensor([240.0, 150.0, 90.0, 20.0, -790.0, 180.0, -1000.0, 205.0, -60.0, 0.0])
    cycle = torch.tensor([30.0, 60.0, 30.0, 10.0, -800.0, 200.0, -1000.0, 35.0, -100.0, -20.0])
    # aorta, IVC, liver, muscle, lung, vertebra, air, portal vein, unlabelled at fat HU, unlabelled above fat HU
    label = torch.tensor([52, 63, 5, 86, 10, 30, 0, 64, 0, 0])
    figures = enhancement_figures(before, after, label, cycle)
    assert figures["vessel_hu"] == pytest.approx((240 + 150 + 205) / 3)
    assert figures["vessel_gain_hu"] == pytest.approx((200 + 100 + 170) / 3)
    assert figures["organ_gain_hu"] == pytest.approx(60.0)
    assert figures["stable_change_hu"] == pytest.approx((10 + 10 + 20) / 3)
    assert figures["cycle_mae_hu"] == pytest.approx((10 + 10) / 8)  # the body: above -500 HU
    table = region_table(before, after, label)
    assert set(table) == {"aorta", "portal vein", "other vessels", "liver", "muscle", "lung", "bone", "fat"}
    assert table["aorta"] == {"voxels": 1, "before": 40.0, "after": 240.0, "gain": 200.0, "abs_change": 200.0}
    assert table["portal vein"]["gain"] == pytest.approx(170.0)
    assert table["fat"] == {"voxels": 1, "before": -100.0, "after": -60.0, "gain": 40.0, "abs_change": 40.0}
    assert set(TOTALSEGMENTATOR_REGIONS["kidneys"]) == {2, 3}


def test_real_contrast_scans_own_hu_per_region_beside_the_translation(tmp_path):
    """contrast_reference_hu: the mean HU of a scan inside each of its masks (hand-made volumes), a mask off the
    scan's grid refused by name; the comparison table gets one column per reference scan, blank where it has no mask."""
    import json

    from common.ct_evaluation import comparison_markdown, contrast_reference_hu

    scan = np.full((8, 8, 4), -1000.0, dtype=np.float32)
    scan[2:4, 2:4, :] = 170.0  # "portal vein"
    scan[4:8, 4:8, :] = 100.0  # "liver"
    scan[4, 4, 0] = 140.0
    masks = {"portal vein": scan == 170.0, "liver": scan >= 100.0}
    masks["liver"][2:4, 2:4, :] = False
    for name, volume in {"scan": scan, **{k: m.astype(np.uint8) * 255 for k, m in masks.items()}}.items():
        nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3), np.uint8), np.eye(4)), tmp_path / "bad.nii.gz")
    entry = {"subject": "p17", "B": "scan.nii.gz", "labels": {k: f"{k}.nii.gz" for k in masks}}
    (tmp_path / "dl.json").write_text(json.dumps({"contrast_reference": [entry]}), encoding="utf-8")
    (reference,) = contrast_reference_hu(tmp_path / "dl.json", tmp_path)
    assert reference["subject"] == "p17" and reference["regions"]["portal vein"] == pytest.approx(170.0)
    assert reference["regions"]["liver"] == pytest.approx((63 * 100.0 + 140.0) / 64)  # 4x4x4 voxels, one at 140
    (tmp_path / "none.json").write_text(json.dumps({"training": []}), encoding="utf-8")
    assert contrast_reference_hu(tmp_path / "none.json", tmp_path) == []
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])  # the same shape, mirrored: not the scan's grid either
    nib.save(nib.Nifti1Image(masks["liver"].astype(np.uint8), flipped), tmp_path / "flipped.nii.gz")
    for bad in ("bad.nii.gz", "flipped.nii.gz"):
        entry["labels"]["liver"] = bad
        (tmp_path / "dl.json").write_text(json.dumps({"contrast_reference": [entry]}), encoding="utf-8")
        with pytest.raises(ValueError, match=f"'p17': the mask '{bad}' .* does not lie on the grid of the scan"):
            contrast_reference_hu(tmp_path / "dl.json", tmp_path)
    stats = {"voxels": 1, "before": 36.0, "after": 36.0, "gain": 0.0, "abs_change": 0.0}
    volume = {"volume": "v", "regions": {"input": {"portal vein": stats, "fat": stats}},
              "figures": {"input": dict.fromkeys(("vessel_hu", "vessel_gain_hu", "organ_gain_hu", "stable_change_hu",
                                                  "cycle_mae_hu"), 0.0)},
              "contrast_reference": [reference]}
    table = comparison_markdown(volume)
    assert "| real contrast scan p17 (another patient) |" in table
    assert "| portal vein | 1 | 36 | 170 |" in table and "| fat | 1 | 36 |  |" in table


def test_unpaired_histogram_mapping_keeps_the_background():
    mapping = HistogramMapping(b_min=-0.5, keep_background=True).fit_unpaired(
        [(torch.linspace(-1, 1, 2001), torch.linspace(-1, 1, 2001) * 0.5 + 0.5)])  # foreground -0.5..1 -> 0..1
    out = mapping(torch.tensor([-0.9, -0.5, -0.2, 0.25, 1.0]))
    # quantile q of the source's -0.5..1 goes to quantile q of the target's 0..1; air and the like stay as they are
    torch.testing.assert_close(out, torch.tensor([-0.9, -0.5, 0.2, 0.5, 1.0]), atol=2e-3, rtol=0)
