"""Deform-GAN's parts against hand-computed values: warping, the identity, the local gradient loss, the Jacobian,
endpoint error and Dice, the synthetic deformations, and the D -> G -> T step with frozen networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.networks.blocks import Warp
from torch import nn

from common.data import CheckOverlapd, RandSmoothDeformationd, WarpToFixedd, smooth_deformation
from common.engines import DeformGANStep, MultiNetworkTrainer
from common.losses import LocalGradientLoss, local_gradient_directions
from common.registration import (
    TransformationNetwork, ddf_to_voxels, ddf_to_world, dice, endpoint_errors, folding_percent, jacobian_determinant,
    registration_figures,
)


def test_warping_by_an_integer_shift_moves_the_volume_by_exactly_that_shift():
    torch.manual_seed(0)
    image = torch.rand(1, 1, 10, 12, 9)
    ddf = torch.zeros(1, 3, 10, 12, 9)
    ddf[:, 0], ddf[:, 1], ddf[:, 2] = 2.0, -3.0, 1.0  # warped(x) = image(x + (2, -3, 1))
    warped = Warp(mode="bilinear", padding_mode="zeros")(image, ddf)
    torch.testing.assert_close(warped[0, 0, :8, 3:, :8], image[0, 0, 2:, :9, 1:], atol=1e-6, rtol=0)


def test_warp_to_fixed_applies_a_world_shift_on_an_lps_grid():
    """A +4 mm shift along R (world, RAS) on a 2 mm LPS grid is -2 voxels along the first axis."""
    torch.manual_seed(0)
    affine = torch.diag(torch.tensor([-2.0, -2.0, 2.0, 1.0]))
    moving = MetaTensor(torch.rand(1, 12, 10, 8), affine=affine, meta={"filename_or_obj": "moving.nii.gz"})
    field = torch.zeros(3, 12, 10, 8)
    field[0] = 4.0
    out = WarpToFixedd(keys="moving", ddf_key="ddf_world", output_keys=["pred"])({"moving": moving, "ddf_world": field})
    torch.testing.assert_close(out["pred"][0, 2:], moving[0, :-2].as_tensor(), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["ddf"].as_tensor(), field)
    assert np.allclose(out["pred"].affine, affine) and out["pred"].meta["filename_or_obj"] == "moving.nii.gz"
    # voxel <-> world vectors through the affine, both ways
    vox = ddf_to_voxels(field, affine)
    assert torch.allclose(vox[0], torch.full_like(vox[0], -2.0)) and torch.allclose(ddf_to_world(vox, affine), field)


def test_the_untrained_transformation_network_is_close_to_the_identity():
    torch.manual_seed(0)
    net = TransformationNetwork(channels=(4, 8, 8, 8), final_conv_channels=(4,))
    pair = torch.rand(1, 2, 16, 16, 16)
    ddf = net(pair)
    assert ddf.shape == (1, 3, 16, 16, 16) and ddf.abs().max() < 1e-3
    moving = pair[:, 1:]
    identity = Warp("bilinear", "zeros")(moving, torch.zeros_like(ddf))
    torch.testing.assert_close(identity, moving, atol=1e-6, rtol=0)  # the identity changes nothing (up to rounding)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 2, 16, 18, 16))
    with pytest.raises(ValueError, match="fixed and the moving image as two channels"):
        net(torch.rand(1, 1, 16, 16, 16))
    diffeomorphic = TransformationNetwork(channels=(4, 8, 8, 8), final_conv_channels=(4,), integration_steps=7)
    assert diffeomorphic(pair).shape == (1, 3, 16, 16, 16)


def test_local_gradient_similarity_of_ramps_by_hand():
    """Ramps have one gradient everywhere: |n(a) . n(b)| is |cos| of the angle between them."""
    x, y = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    ramp_x, ramp_y, diagonal = x[None, None], y[None, None], (x + y)[None, None]
    loss = LocalGradientLoss(kernel_size=7, eps=1e-5)
    assert loss.similarity(ramp_x, ramp_y).item() == pytest.approx(0.0, abs=1e-6)
    assert loss.similarity(ramp_x, -3 * ramp_x).item() == pytest.approx(1.0, abs=1e-5)  # contrast and sign do not matter
    assert loss.similarity(ramp_x, diagonal).item() == pytest.approx(2**-0.5, abs=1e-5)
    assert loss(ramp_x, diagonal).item() == pytest.approx(-(2**-0.5), abs=1e-5)  # the loss is minus the similarity
    # the directions of a fixed image computed once give the same similarity
    assert loss.similarity_to_directions(loss.directions(ramp_x), diagonal).item() == pytest.approx(2**-0.5, abs=1e-5)
    with pytest.raises(ValueError, match="do not match"):
        loss.similarity_to_directions(loss.directions(ramp_x), diagonal[..., :-1])


def test_local_gradient_directions_against_explicit_loops():
    rng = np.random.default_rng(0)
    image = rng.random((7, 8))
    n, eps = 3, 1e-3
    gx, gy = np.gradient(image)
    expected = np.zeros((2, 7, 8))
    for i in range(7):
        for j in range(8):
            sx = sum(gx[a, b] for a in range(i - 1, i + 2) for b in range(j - 1, j + 2) if 0 <= a < 7 and 0 <= b < 8)
            sy = sum(gy[a, b] for a in range(i - 1, i + 2) for b in range(j - 1, j + 2) if 0 <= a < 7 and 0 <= b < 8)
            norm = np.hypot(sx, sy) + eps
            expected[:, i, j] = sx / norm, sy / norm
    got = local_gradient_directions(torch.tensor(image)[None, None], kernel_size=n, eps=eps)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_local_gradient_loss_has_finite_gradients_on_a_flat_background():
    """A brain on a zero background: the neighbourhood gradient is exactly 0 far from the brain, where a plain
    square root's derivative is infinite; the loss's gradient stays finite and is 0 there."""
    image = torch.zeros(1, 1, 24, 24, 24)
    image[..., 8:16, 8:16, 8:16] = torch.rand(8, 8, 8)
    moving = torch.roll(image, 1, dims=2).requires_grad_(True)
    LocalGradientLoss(kernel_size=3)(image, moving).backward()
    assert torch.isfinite(moving.grad).all() and moving.grad.abs().sum() > 0
    assert moving.grad[..., :4, :, :].abs().max() == 0  # flat and far from any edge


def test_local_gradient_similarity_is_largest_for_identical_images():
    torch.manual_seed(0)
    image = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 20, 20, 20), 3, 1, 1)
    loss = LocalGradientLoss()
    same = loss.similarity(image, image).item()
    others = [loss.similarity(image, torch.roll(image, s, dims=2)).item() for s in (1, 2, 4)]
    others.append(loss.similarity(image, torch.rand_like(image)).item())
    assert same == pytest.approx(1.0, abs=1e-3) and all(o < same - 0.05 for o in others), (same, others)


def test_jacobian_determinant_of_an_affine_field():
    a = torch.tensor([[1.2, 0.1, 0.0], [0.0, 0.9, 0.2], [0.1, 0.0, 1.1]], dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(*[torch.arange(6.0, dtype=torch.float64)] * 3, indexing="ij"))  # (3, 6, 6, 6)
    ddf = (torch.einsum("ij,j...->i...", a - torch.eye(3, dtype=torch.float64), grid) + 0.5)[None]  # u(x) = (A - I) x + t
    det = jacobian_determinant(ddf)
    assert det.shape == (1, 6, 6, 6) and torch.allclose(det, torch.full_like(det, float(torch.det(a))))
    assert folding_percent(ddf) == 0.0
    mirror = ddf.clone()
    mirror[:, 0] = -2 * grid[0]  # x -> -x along axis 0: det = -1 everywhere
    assert folding_percent(mirror) == 100.0


def test_endpoint_error_and_dice_by_hand():
    true = torch.zeros(1, 3, 4, 4, 4)
    pred = torch.zeros(1, 3, 4, 4, 4)
    pred[:, 0] = 1.0
    pred[:, 1] = 1.0
    errors = endpoint_errors(pred, true, spacing=(3.0, 4.0, 1.0))  # |(3, 4, 0)| mm = 5 mm everywhere
    assert errors.shape == (64,) and torch.allclose(errors, torch.full_like(errors, 5.0))
    a = torch.tensor([0, 1, 1, 2, 2, 2])
    b = torch.tensor([0, 1, 2, 2, 2, 0])
    assert dice(a, b) == pytest.approx(np.mean([2 * 1 / 3, 2 * 2 / 6]))  # label 1: 2*1/(2+1); label 2: 2*2/(3+3)
    mask, moved = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 1, 1, 1, 1])
    assert dice(mask, moved) == pytest.approx(2 * 2 / 6)  # the brain alone; with the background (2*1/4) it would be 0.583


def test_smooth_deformation_bounds_and_seeded_pairs():
    rng = np.random.default_rng(0)
    ddf = smooth_deformation((30, 36, 30), (2.0, 2.0, 2.0), rng, max_displacement=6.0, rotate=0.0, scale=0.0, translate=0.0)
    magnitude_mm = (ddf * 2.0).norm(dim=0)
    assert ddf.shape == (3, 30, 36, 30) and 3.0 - 1e-4 <= magnitude_mm.max() <= 6.0 + 1e-4
    assert folding_percent(ddf[None]) == 0.0  # smooth and small: no folding
    image = MetaTensor(torch.rand(1, 30, 36, 30), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])),
                       meta={"filename_or_obj": "subject_t2.nii.gz"})
    seeded = RandSmoothDeformationd(keys="fixed", seed=3)
    one, two = seeded({"fixed": image}), seeded({"fixed": image})
    assert torch.equal(one["true_ddf"], two["true_ddf"])  # evaluation pairs do not change between runs
    expected = Warp("bilinear", "zeros")(image.as_tensor()[None], one["true_ddf"][None])[0]
    torch.testing.assert_close(one["fixed"].as_tensor(), expected)
    rand = RandSmoothDeformationd(keys="fixed")
    rand.set_random_state(0)
    assert not torch.equal(rand({"fixed": image})["true_ddf"], rand({"fixed": image})["true_ddf"])  # training: new each time


def test_a_moving_image_that_does_not_overlap_is_refused():
    fixed = MetaTensor(torch.rand(1, 8, 8, 8), meta={"filename_or_obj": "fixed.nii.gz"})
    outside = MetaTensor(torch.zeros(1, 8, 8, 8), meta={"filename_or_obj": "moving.nii.gz"})
    with pytest.raises(ValueError, match=r"'moving.nii.gz' \('moving'\) does not overlap the fixed image 'fixed.nii.gz'"):
        CheckOverlapd("moving")({"image": fixed, "moving": outside})


def test_registration_figures_of_a_perfect_and_an_identity_prediction():
    rng = np.random.default_rng(1)
    true = smooth_deformation((16, 16, 16), (2.0, 2.0, 2.0), rng)
    image = MetaTensor(torch.rand(2, 16, 16, 16) + 0.1, affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    label = torch.zeros(1, 16, 16, 16)
    label[:, 4:12, 4:12, 4:12] = 1
    label_fixed = Warp("nearest", "zeros")(label[None], true[None])[0]
    perfect = registration_figures({"image": image, "pred": true, "true_ddf": true, "label": label, "label_fixed": label_fixed})
    assert perfect["epe_mm"] == pytest.approx(0.0, abs=1e-6) and perfect["dice_after"] == pytest.approx(1.0)
    identity = registration_figures({"image": image, "pred": torch.zeros_like(true), "true_ddf": true, "label": label,
                                     "label_fixed": label_fixed, "seconds": 0.5})
    inside = label_fixed[0] > 0
    assert identity["epe_mm"] == pytest.approx(float((true * 2.0).norm(dim=0)[inside].mean()), rel=1e-5)
    assert identity["epe_mm"] == pytest.approx(identity["epe_before_mm"]) and identity["seconds"] == 0.5
    assert identity["dice_after"] == pytest.approx(identity["dice_before"]) and identity["dice_before"] < 1.0
    # folding counts inside the fixed labels: a field folded only outside them scores 0, folded inside it does not
    folded = torch.zeros_like(true)
    folded[0, :2] = -2 * torch.arange(2.0)[:, None, None]  # x -> -x along axis 0 over the first two slices
    outside = registration_figures({"image": image, "pred": folded, "label": label, "label_fixed": label})
    assert outside["folding_percent"] == 0.0 and folding_percent(folded[None]) > 0
    inside = registration_figures({"image": image, "pred": folded.roll(6, dims=1), "label": label, "label_fixed": label})
    assert inside["folding_percent"] > 0


class ConstantField(nn.Module):
    """T with one parameter: a constant displacement along the first axis."""

    def __init__(self, value: float):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, pair):
        ddf = torch.zeros(pair.shape[0], 3, *pair.shape[2:])
        ddf[:, 0] = 1.0
        return ddf * self.value


class PatchConst(nn.Module):
    """D with one parameter: its logits are ``value`` everywhere (a 2x2x2 patch map)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, x):
        return [x[:, :1, :2, :2, :2] * 0 + self.value]


def test_step_order_d_then_g_then_t_with_the_others_frozen():
    torch.manual_seed(0)
    nets = {"T": ConstantField(0.5), "G": nn.Conv3d(1, 1, 3, padding=1), "D": PatchConst(0.2)}
    opts = {k: torch.optim.SGD(v.parameters(), lr=0.1) for k, v in nets.items()}
    step = DeformGANStep(alpha=1.0, beta=1.0, mu=1.0, lambda_pixel=100.0, lcc_kernel_size=3, lg_kernel_size=3)
    trainer = MultiNetworkTrainer(device="cpu", max_epochs=1, data_loader=[{}], networks=nets, optimizers=opts, step=step)
    fixed = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 12, 12, 12), 3, 1, 1)
    moving = torch.roll(fixed, 1, dims=2)
    snapshots = []
    for name in ("D", "G"):
        trainer.optimizers[name].step = (lambda orig: lambda *a, **k: (orig(*a, **k), snapshots.append(
            {n: [p.detach().clone() for p in m.parameters()] for n, m in nets.items()})))(trainer.optimizers[name].step)
    g_before = [p.detach().clone() for p in nets["G"].parameters()]
    out = trainer.step(trainer, {"fixed": fixed, "moving": moving, "true_ddf": torch.zeros(1, 3, 12, 12, 12)})

    # after D's update: only D changed (BCE on constant logits: d/dv of 0.5 * (softplus(-v) + softplus(v)) = 0.5 * (2 sigmoid(v) - 1))
    after_d, after_g = snapshots
    d = 0.2 - 0.1 * 0.5 * (2 * torch.sigmoid(torch.tensor(0.2)).item() - 1)
    assert after_d["D"][0].item() == pytest.approx(d, rel=1e-5)
    assert after_d["T"][0].item() == 0.5 and all(torch.equal(a, b) for a, b in zip(after_d["G"], g_before))
    # after G's update: G changed, D and T kept their values
    assert any(not torch.equal(a, b) for a, b in zip(after_g["G"], g_before))
    assert after_g["D"][0].item() == pytest.approx(d, rel=1e-5) and after_g["T"][0].item() == 0.5
    # T last: it moved, D kept its value
    assert nets["T"].value.item() != 0.5 and nets["D"].value.item() == pytest.approx(d, rel=1e-5)
    # the losses as the step defines them, recomputed with the networks as each sub-step saw them
    assert out["loss_D"] == pytest.approx(0.5 * (np.logaddexp(0, -0.2) + np.logaddexp(0, 0.2)), rel=1e-5)
    assert out["loss_G_adv"] == pytest.approx(np.logaddexp(0, -d), rel=1e-5)
    assert out["loss_T"] == pytest.approx(out["loss_T_lcc"] + out["loss_T_lg"] + out["loss_T_smooth"], rel=1e-6)
    assert out["loss_T_smooth"] == 0.0  # a constant field is perfectly smooth
    assert out["epe_vox"] == pytest.approx(0.5, rel=1e-6)  # |0.5 voxel| against the zero true field


def test_registered_translator_pairs_train_g_on_the_co_registered_images_and_skip_other_subjects():
    """translator_pairs "registered": D and G see (moving, fixed before the synthetic deformation) of the batch's
    same-subject pairs; T's step is unchanged; a batch without a same-subject pair leaves D and G as they were."""
    torch.manual_seed(0)
    fixed0 = torch.nn.functional.avg_pool3d(torch.rand(2, 1, 12, 12, 12), 3, 1, 1)
    moving, deformed = fixed0 * 0.5 + 0.1, torch.roll(fixed0, 1, dims=2)  # moving: fixed0's other contrast
    batch = {"fixed": deformed, "moving": moving, "fixed_registered": fixed0, "same_subject": torch.tensor([1.0, 0.0])}
    nets = {"T": ConstantField(0.5), "G": nn.Conv3d(1, 1, 1), "D": PatchConst(0.2)}
    opts = {k: torch.optim.SGD(v.parameters(), lr=0.1) for k, v in nets.items()}
    step = DeformGANStep(lambda_pixel=100.0, lcc_kernel_size=3, lg_kernel_size=3, translator_pairs="registered")
    trainer = MultiNetworkTrainer(device="cpu", max_epochs=1, data_loader=[{}], networks=nets, optimizers=opts, step=step)
    with torch.no_grad():
        expected_l1 = 100.0 * (nets["G"](moving[:1]) - fixed0[:1]).abs().mean().item()  # subject 0's own pair only
    g_before = [p.detach().clone() for p in nets["G"].parameters()]
    out = trainer.step(trainer, batch)
    assert out["loss_G_l1"] == pytest.approx(expected_l1, rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(nets["G"].parameters(), g_before))
    assert nets["T"].value.item() != 0.5 and "loss_T_lcc" in out

    # only other subjects' pairs: T trains, D and G do not, and the step reports no G or D loss
    nets["T"].value.data.fill_(0.5)
    g_before, d_before = [p.detach().clone() for p in nets["G"].parameters()], nets["D"].value.item()
    out = trainer.step(trainer, {**batch, "same_subject": torch.tensor([0.0, 0.0])})
    assert all(torch.equal(a, b) for a, b in zip(nets["G"].parameters(), g_before)) and nets["D"].value.item() == d_before
    assert nets["T"].value.item() != 0.5 and not {"loss_G", "loss_D"} & set(out)
    with pytest.raises(KeyError, match="fixed_registered"):
        trainer.step(trainer, {"fixed": deformed, "moving": moving})
    with pytest.raises(ValueError, match="translator_pairs"):
        DeformGANStep(translator_pairs="aligned")


def test_counterpart_similarity_scores_t_on_the_warped_counterpart_not_on_g():
    """t_similarity "counterpart": T's LCC term is -LCC(fixed, counterpart warped by T's field), whatever G does;
    the local gradient and smoothness terms are unchanged."""
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    from common.losses import LocalGradientLoss

    torch.manual_seed(0)
    fixed = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 12, 12, 12), 3, 1, 1)
    counterpart = torch.roll(fixed, 1, dims=2) * 0.9 + 0.05
    moving = 1.0 - counterpart  # the other contrast of the counterpart
    batch = {"fixed": fixed, "moving": moving, "moving_counterpart": counterpart}
    nets = {"T": ConstantField(0.5), "G": nn.Conv3d(1, 1, 1), "D": PatchConst(0.2)}
    opts = {k: torch.optim.SGD(v.parameters(), lr=0.1) for k, v in nets.items()}
    step = DeformGANStep(lcc_kernel_size=3, lg_kernel_size=3, t_similarity="counterpart")
    trainer = MultiNetworkTrainer(device="cpu", max_epochs=1, data_loader=[{}], networks=nets, optimizers=opts, step=step)
    ddf = nets["T"](torch.cat([fixed, moving], 1)).detach()
    warp = Warp(mode="bilinear", padding_mode="border")
    with torch.no_grad():
        expected_lcc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=3)(warp(counterpart, ddf), fixed)
        expected_lg = LocalGradientLoss(kernel_size=3)(fixed, warp(moving, ddf))
    out = trainer.step(trainer, batch)
    assert out["loss_T_lcc"] == pytest.approx(float(expected_lcc), rel=1e-5)
    assert out["loss_T_lg"] == pytest.approx(float(expected_lg), rel=1e-5)
    assert nets["T"].value.item() != 0.5 and "loss_G" in out  # T trained; D and G train as before
    with pytest.raises(KeyError, match="moving_counterpart"):
        trainer.step(trainer, {"fixed": fixed, "moving": moving})
    with pytest.raises(ValueError, match="t_similarity"):
        DeformGANStep(t_similarity="oracle")


def test_instance_optimisation_moves_the_field_towards_a_known_shift():
    """moving = fixed rolled by +1 voxel along axis 0: moving(x + 1) = fixed(x), the true field is (1, 0, 0)."""
    from common.registration import InstanceOptimisation

    torch.manual_seed(0)
    fixed = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 24, 24, 24), 5, 1, 2)
    pair = torch.cat([fixed, torch.roll(fixed, 1, dims=2)], 1)
    identity = TransformationNetwork(channels=(4, 8, 8, 8), final_conv_channels=(4,))
    as_is = InstanceOptimisation(steps=0)(pair, identity)
    torch.testing.assert_close(as_is, identity(pair))  # no steps: the network alone
    refined = InstanceOptimisation(steps=60, lr=0.05, lg_kernel_size=3, grid_factor=4)(pair, identity)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4), slice(4, -4))
    error_before = (as_is[inner] - torch.tensor([1.0, 0, 0]).reshape(1, 3, 1, 1, 1)).norm(dim=1).mean()
    error_after = (refined[inner] - torch.tensor([1.0, 0, 0]).reshape(1, 3, 1, 1, 1)).norm(dim=1).mean()
    assert error_after < 0.5 * error_before, (float(error_before), float(error_after))
    assert not refined.requires_grad


def test_instance_optimisation_downsampled_runs_the_network_on_the_coarse_grid_and_rescales_its_vectors():
    """downsample=3 on a 24x30x20 pair: the network sees ceil(s / 3) = 8x10x7 padded to multiples of 4 (8x12x8); a
    field of 1 coarse voxel along each axis comes back as (s - 1) / (c - 1) input voxels: 23/7, 29/9, 19/6."""
    from common.registration import InstanceOptimisation
    from common.registration.refinement import coarser_kernel_size

    seen = []

    class OneCoarseVoxel(torch.nn.Module):
        def forward(self, pair):
            seen.append(tuple(pair.shape))
            return torch.ones(pair.shape[0], 3, *pair.shape[2:])

    pair = torch.rand(1, 2, 24, 30, 20)
    ddf = InstanceOptimisation(steps=0, downsample=3, size_divisible=4)(pair, OneCoarseVoxel())
    assert seen == [(1, 2, 8, 12, 8)] and ddf.shape == (1, 3, 24, 30, 20)
    for axis, expected in enumerate((23 / 7, 29 / 9, 19 / 6)):
        torch.testing.assert_close(ddf[0, axis], torch.full((24, 30, 20), expected))
    # a second pyramid level without steps hands the same field on: down to 12x15x10, back, rescaled both ways
    seen.clear()
    two_levels = InstanceOptimisation(steps=(0, 0), downsample=(3, 2), size_divisible=4)(pair, OneCoarseVoxel())
    assert len(seen) == 1  # the network runs once, on the first level
    torch.testing.assert_close(two_levels, ddf)
    assert [coarser_kernel_size(7, f) for f in (1, 2, 3)] == [7, 3, 3] and coarser_kernel_size(15, 3) == 5
    for bad in ({"downsample": 0}, {"downsample": (3, 2), "steps": 10}):
        with pytest.raises(ValueError, match="downsample"):
            InstanceOptimisation(**bad)


def test_instance_optimisation_downsampled_recovers_a_known_shift_in_input_voxels():
    """moving = fixed rolled by +3 voxels along axis 0 (the true field is (3, 0, 0) input voxels, 1 coarse voxel at
    downsample 3): optimising on the coarse grid brings the full-resolution field near it."""
    from common.registration import InstanceOptimisation

    torch.manual_seed(0)
    fixed = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 48, 48, 48), 9, 1, 4)
    fixed = torch.nn.functional.avg_pool3d(fixed, 9, 1, 4)
    pair = torch.cat([fixed, torch.roll(fixed, 3, dims=2)], 1)
    identity = TransformationNetwork(channels=(4, 8, 8, 8), final_conv_channels=(4,))
    inner = (slice(None), slice(None), slice(9, -9), slice(9, -9), slice(9, -9))
    true = torch.tensor([3.0, 0, 0]).reshape(1, 3, 1, 1, 1)
    error_before = (identity(pair)[inner] - true).norm(dim=1).mean()
    for steps, downsample in ((60, 3), ((60, 10), (3, 1))):  # one level, then coarse to fine
        refine = InstanceOptimisation(steps=steps, lr=0.05, lg_kernel_size=9, grid_factor=4, downsample=downsample,
                                      size_divisible=4)
        error_after = (refine(pair, identity)[inner] - true).norm(dim=1).mean()
        assert error_after < 0.5 * error_before, (downsample, float(error_before), float(error_after))


def test_the_optimisation_loops_own_warp_and_smoothness_equal_monais_values_and_gradients():
    """BorderWarp and diffusion replace MONAI's Warp(bilinear, border) and DiffusionLoss for speed (diffusion in
    training too): the same values and gradients, 2D and 3D, batch 2, displacements reaching past the border, an axis
    of one voxel, a 1 mm field in half precision; the same refusals of shapes they cannot handle."""
    from monai.losses import DiffusionLoss

    from common.registration.ops import BorderWarp, diffusion

    torch.manual_seed(0)
    for size in ((7, 9, 11), (12, 10), (5, 1, 6)):
        image = torch.rand(2, 1, *size, dtype=torch.float64)
        ddf = (3 * torch.randn(2, len(size), *size, dtype=torch.float64)).requires_grad_(True)
        ours, monais = BorderWarp(size, dtype=torch.float64)(image, ddf), Warp("bilinear", "border")(image, ddf)
        torch.testing.assert_close(ours, monais)
        torch.testing.assert_close(torch.autograd.grad(ours.square().sum(), ddf)[0],
                                   torch.autograd.grad(monais.square().sum(), ddf)[0])
        if min(size) >= 3:
            ours, monais = diffusion(ddf), DiffusionLoss()(ddf)
            torch.testing.assert_close(ours, monais)
            torch.testing.assert_close(torch.autograd.grad(3 * ours, ddf)[0], torch.autograd.grad(3 * monais, ddf)[0])
    # half precision (training under amp): a 1 mm brain's field of squared differences sums far past float16's
    # largest value (65504); the term must stay the mean, not overflow
    field = (2 * torch.randn(1, 3, 100, 120, 100)).half()
    assert torch.isfinite(diffusion(field)) and float(diffusion(field)) == pytest.approx(
        float(DiffusionLoss()(field.float())), rel=1e-2)
    with pytest.raises(ValueError, match="expected an image"):
        BorderWarp((7, 9, 11))(torch.rand(1, 1, 7, 9, 10), torch.zeros(1, 3, 7, 9, 10))
    for shape in ((1, 3, 5, 2, 6), (1, 2, 5, 5, 5)):  # an axis too short for central differences; D != len(S)
        with pytest.raises(ValueError, match="displacement field"):
            diffusion(torch.zeros(shape))


def test_box_sum_and_gaussian_blur_against_convolutions():
    """The in-place shifted-slice loops against zero-padded convolutions with the same kernels; the box sum's own
    backward (it is self-adjoint) against autograd's numerical check."""
    from common.losses.local_gradient import _BoxSum, box_sum
    from common.registration.ops import gaussian_blur

    torch.manual_seed(0)
    image = torch.rand(2, 3, 9, 11, 4, dtype=torch.float64)  # an axis shorter than the kernels
    flat = image.reshape(6, 1, 9, 11, 4)
    for n in (1, 3, 7):
        expected = torch.nn.functional.conv3d(flat, torch.ones(1, 1, n, n, n, dtype=torch.float64), padding=n // 2)
        torch.testing.assert_close(box_sum(image, n), expected.reshape(image.shape))
    for sigma in (0.5, 1.0):
        radius = int(np.ceil(4 * sigma))
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
        kernel = taps[:, None, None] * taps[None, :, None] * taps[None, None, :] / taps.sum() ** 3
        expected = torch.nn.functional.conv3d(flat, kernel[None, None], padding=radius)
        torch.testing.assert_close(gaussian_blur(image, sigma), expected.reshape(image.shape))
    assert torch.autograd.gradcheck(lambda x: _BoxSum.apply(x, 5), (image[:1, :1].clone().requires_grad_(True),))
    for bad in (lambda: box_sum(image, 4), lambda: gaussian_blur(image, 0.0)):  # even: not centred; no width
        with pytest.raises(ValueError):
            bad()
