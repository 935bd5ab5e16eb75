"""Deform-GAN's inter-subject training pairs on the real sample brains: the affine stage recovers a known affine,
pairs come from training subjects only at the configured rate, are aligned after the affine stage and are drawn
again the same way from the same seed."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.data import InterSubjectPairs
from common.registration import apply_affine, mask_affine
from common.registration.affine import foreground_mask

from bundle_utils import DEFORM_GAN_TRAIN_TEST_SIZE, workflow

HELD_OUT = ("TCGA-DU-7294", "OpenMS-patient26")


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = foreground_mask(a), foreground_mask(b)
    return float(2 * (a * b).sum() / (a.sum() + b.sum()))


def _homogeneous(theta: torch.Tensor) -> torch.Tensor:
    return torch.cat([theta, torch.tensor([[0.0, 0.0, 0.0, 1.0]])])


def test_mask_affine_recovers_a_known_affine(data_dir):
    """A real brain (TCGA-DU-7294's T1 at 3 mm, 64^3) moved by a known affine (8 degrees, 6 % and 5 % scaling, a few
    voxels' shift) and aligned back: the composed mapping is the identity to a third of a voxel inside the brain."""
    path = data_dir / "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz"
    image = F.avg_pool3d(torch.tensor(nib.load(path).get_fdata(), dtype=torch.float32)[None, None], 3)[0]
    pads = [64 - n for n in image.shape[1:]]
    image = F.pad(image, [p for n in pads[::-1] for p in (n // 2, n - n // 2)])  # (1, 64, 64, 64)
    c, s = math.cos(math.radians(8)), math.sin(math.radians(8))
    known = torch.tensor([[1.06 * c, -s, 0.0, 0.08], [s, c, 0.0, -0.05], [0.0, 0.0, 0.95, 0.03]])
    moved = apply_affine(image, known)
    assert _dice(moved, image) < 0.9  # the known affine really misaligns the brain

    theta = mask_affine(moved, image)
    # aligned(x) = moved(theta x) = image(known theta x): known after theta must be the identity inside the brain
    residual = _homogeneous(known) @ _homogeneous(theta) - torch.eye(4)
    axes = torch.meshgrid(*[torch.linspace(-1, 1, 64)] * 3, indexing="ij")
    points = torch.stack([axes[2], axes[1], axes[0], torch.ones_like(axes[0])], -1)[foreground_mask(image)[0] > 0]
    error_voxels = (points @ residual.T)[:, :3].norm(dim=1) * 31.5  # normalised units -> voxels (63 / 2)
    assert float(error_voxels.max()) < 0.6 and float(error_voxels.mean()) < 0.3
    assert _dice(apply_affine(moved, theta), image) > 0.97


@pytest.fixture(scope="module")
def subjects(data_dir):
    """The bundle's own training-subject cache (test size, 4 mm, 48^3) and the files it was read from."""
    wf = workflow("deform_gan", ("train",), dataset_dir=str(data_dir), bundle_root=str(data_dir / "unused"),
                  **DEFORM_GAN_TRAIN_TEST_SIZE)
    datalist = wf.parser.get_parsed_content("train#datalist")
    return wf.parser.get_parsed_content("train#subjects"), datalist


def test_pairs_come_from_training_subjects_at_the_configured_rate(subjects):
    cache, datalist = subjects
    files = [str(v) for item in datalist for v in item.values()]
    assert len(datalist) == 3 and not any(h in f for f in files for h in HELD_OUT)  # the held-out pair never enters
    for ratio in (0.0, 0.3, 1.0):
        pairs = InterSubjectPairs(cache, inter_subject_ratio=ratio, align_steps=20).set_random_state(7)
        draws = [(i, pairs[i]["moving_subject"]) for i in np.random.default_rng(0).integers(0, 3, 200)]
        inter = [source != index for index, source in draws]
        assert all(0 <= source < 3 for _, source in draws)
        if ratio == 0.0:
            assert not any(inter)
        elif ratio == 1.0:
            assert all(inter)
        else:  # 200 draws at 0.3: 60 expected, a binomial standard deviation of 6.5
            assert 40 <= sum(inter) <= 80, sum(inter)
    with pytest.raises(ValueError, match="inter_subject_ratio"):
        InterSubjectPairs(cache, inter_subject_ratio=1.5)


def test_inter_subject_pair_is_aligned_and_redrawn_from_the_seed(subjects):
    cache, _ = subjects
    pairs = InterSubjectPairs(cache, inter_subject_ratio=1.0)
    for target in range(3):
        pair = pairs.set_random_state(target)[target]
        source = pair["moving_subject"]
        unaligned = cache[source]["moving"]
        # each subject was cropped to its own brain and centred on its own grid; the affine stage matches the brains
        assert _dice(pair["moving"], pair["fixed"]) > _dice(unaligned, pair["fixed"]) + 0.01
        assert _dice(pair["moving"], pair["fixed"]) > 0.9
        assert pair["moving"].shape == pair["fixed"].shape == cache[target]["fixed"].shape

    # the bundle's dataset: its synthetic deformation runs on top, and the same seed draws the same pairs again
    first = InterSubjectPairs(cache, 0.5, transform=_deformation()).set_random_state(3)
    second = InterSubjectPairs(cache, 0.5, transform=_deformation()).set_random_state(3)
    for index in (0, 1, 2, 0, 2):
        a, b = first[index], second[index]
        assert a["moving_subject"] == b["moving_subject"]
        assert torch.equal(a["true_ddf"], b["true_ddf"]) and torch.equal(a["fixed"], b["fixed"])
        assert float(a["true_ddf"].abs().max()) > 0.1  # deformed, not the cached fixed image


def test_registered_key_keeps_the_fixed_image_before_the_synthetic_deformation(subjects):
    """What a translator trained on co-registered pairs sees: the subject's own fixed image as cached, while
    ``fixed`` is deformed; ``same_subject`` flags which pairs those are."""
    cache, _ = subjects
    pairs = InterSubjectPairs(cache, 0.5, transform=_deformation(), registered_key="fixed_registered").set_random_state(5)
    flags = []
    for index in (0, 1, 2, 1, 0, 2, 2, 1):
        pair = pairs[index]
        assert torch.equal(torch.as_tensor(pair["fixed_registered"]), torch.as_tensor(cache[index]["fixed"]))
        assert not torch.equal(torch.as_tensor(pair["fixed"]), torch.as_tensor(pair["fixed_registered"]))
        assert float(pair["same_subject"]) == float(pair["moving_subject"] == index)
        flags.append(float(pair["same_subject"]))
    assert 0.0 in flags and 1.0 in flags
    assert "fixed_registered" not in InterSubjectPairs(cache, 0.5, transform=_deformation())[0]


def test_counterpart_key_keeps_the_moving_subjects_fixed_modality_where_its_moving_image_lies(subjects):
    """The moving image's co-registered counterpart in the fixed contrast: a subject's own fixed image for its own
    pair (undeformed, while ``fixed`` is deformed), for another subject's the source's fixed image resampled by the
    very affine that placed its moving image."""
    cache, _ = subjects
    pairs = InterSubjectPairs(cache, 0.5, transform=_deformation(), counterpart_key="moving_counterpart",
                              align_steps=20).set_random_state(2)
    seen = set()
    for index in (0, 1, 2, 1, 0, 2, 2, 1, 0):
        pair = pairs[index]
        source = pair["moving_subject"]
        counterpart = torch.as_tensor(pair["moving_counterpart"])
        if source == index:
            assert torch.equal(counterpart, torch.as_tensor(cache[index]["fixed"]))
            assert not torch.equal(counterpart, torch.as_tensor(pair["fixed"]))
        else:
            theta = pairs._affines[(source, index)]
            torch.testing.assert_close(torch.as_tensor(pair["moving"]), apply_affine(cache[source]["moving"], theta))
            torch.testing.assert_close(counterpart, apply_affine(cache[source]["fixed"], theta))
            assert _dice(counterpart, torch.as_tensor(pair["moving"])) > 0.95  # one brain, two contrasts
        seen.add(source == index)
    assert seen == {True, False}
    assert "moving_counterpart" not in InterSubjectPairs(cache, 0.5, transform=_deformation())[0]


def _deformation():
    from common.data import RandSmoothDeformationd

    return RandSmoothDeformationd(keys="fixed", max_displacement=6.0, control_spacing=40.0)
