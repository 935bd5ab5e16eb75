"""The raw clinical pairs' reference: an ITK transform read in the right direction and the right world axes
(checked against ITK's own resampling of a real raw scan), and the agreement measure on hand-made fields."""

from __future__ import annotations

import math

import itk
import nibabel as nib
import numpy as np
import pytest

from conftest import SHARED
from tools.clinical_pairs import agreement, clinical_pairs, map_ras_points, read_itk_affine, voxel_points

RAW = "brain_mri_raw/OpenMS-long-patient03-study2"


def _rigid(path, angle_deg=6.0, translation=(4.0, -3.0, 5.0), centre=(-8.0, 10.0, -30.0)):
    """A known rigid transform written as ITK writes a registration's result; returns its parameters."""
    transform = itk.Euler3DTransform[itk.D].New()
    transform.SetCenter([float(c) for c in centre])
    transform.SetRotation(0.0, 0.0, math.radians(angle_deg))
    transform.SetTranslation([float(t) for t in translation])
    itk.transformwrite([transform], str(path))
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]), np.array(translation), np.array(centre)


def test_itk_transform_is_read_back_as_written(tmp_path):
    rotation, translation, centre = _rigid(tmp_path / "rigid.txt")
    matrix, offset = read_itk_affine(tmp_path / "rigid.txt")
    np.testing.assert_allclose(matrix, rotation, atol=1e-12)
    points_lps = np.array([[0.0, 0.0, 0.0], [10.0, -20.0, 30.0], [-8.0, 10.0, -30.0]])
    by_hand = (points_lps - centre) @ rotation.T + centre + translation  # ITK: T(p) = R (p - c) + c + t
    np.testing.assert_allclose(points_lps @ matrix.T + offset, by_hand, atol=1e-9)
    # RAS in, RAS out: the first two axes are flipped around the LPS computation
    flip = np.array([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(map_ras_points(points_lps * flip, tmp_path / "rigid.txt"), by_hand * flip, atol=1e-9)


def test_authors_transform_kind_is_parsed_as_itk_reads_an_affine(tmp_path):
    """The database's files are ``MatrixOffsetTransformBase_double_3_3``, which ITK's Python wrapping cannot read: the
    same parameters written by ITK as an ``AffineTransform`` and renamed must map points as ITK's own reading does."""
    affine = itk.AffineTransform[itk.D, 3].New()
    affine.SetCenter([-8.2, 9.9, -31.7])
    matrix = itk.Matrix[itk.D, 3, 3]()
    for i, row in enumerate([[0.995, 0.037, -0.007], [-0.038, 0.998, -0.004], [0.008, 0.013, 0.997]]):
        for j, v in enumerate(row):
            matrix.GetVnlMatrix().put(i, j, v)
    affine.SetMatrix(matrix)
    affine.SetTranslation([-1.46, 0.78, -5.18])
    itk.transformwrite([affine], str(tmp_path / "affine.txt"))
    text = (tmp_path / "affine.txt").read_text()
    (tmp_path / "base.txt").write_text(text.replace("AffineTransform_double_3_3", "MatrixOffsetTransformBase_double_3_3"))
    point = [10.0, -20.0, 30.0]
    expected = np.array(affine.TransformPoint(point))
    for name in ("affine.txt", "base.txt"):
        m, offset = read_itk_affine(tmp_path / name)
        np.testing.assert_allclose(m @ np.array(point) + offset, expected, atol=1e-9)
    real = SHARED / RAW / "study2_T1W_intrastudy_to_FLAIR.txt"  # the authors' own: near a rigid transform
    m, _ = read_itk_affine(real)
    assert abs(np.linalg.det(m) - 1.0) < 0.02


def test_direction_matches_itk_resampling_of_a_real_scan(tmp_path):
    """ITK resamples a real raw T1W through the known transform (output(x) = input(T(x))): that output is a 'fixed'
    image whose every point x shows the T1W's anatomy at T(x). Sampling the T1W where ``map_ras_points`` sends the
    fixed image's voxels must reproduce the fixed image; the inverse mapping must not."""
    moving_path = SHARED / RAW / "study2_T1W.nii.gz"
    _rigid(tmp_path / "rigid.txt")
    moving = itk.imread(str(moving_path), itk.F)
    transform = itk.transformread(str(tmp_path / "rigid.txt"))[0]
    fixed = itk.resample_image_filter(moving, transform=transform, use_reference_image=True, reference_image=moving)
    itk.imwrite(fixed, str(tmp_path / "fixed.nii.gz"))

    fixed_nii, moving_nii = nib.load(tmp_path / "fixed.nii.gz"), nib.load(moving_path)
    fixed_array, moving_array = fixed_nii.get_fdata(), moving_nii.get_fdata()
    mask = fixed_array > np.percentile(fixed_array, 90)
    values = fixed_array[mask]

    def sampled(points_ras):  # nearest voxel of the T1W at world points (0 outside)
        index = np.rint(np.c_[points_ras, np.ones(len(points_ras))] @ np.linalg.inv(moving_nii.affine).T)[:, :3].astype(int)
        inside = np.all((index >= 0) & (index < moving_array.shape), axis=1)
        out = np.zeros(len(points_ras))
        out[inside] = moving_array[tuple(index[inside].T)]
        return out

    points = voxel_points(fixed_nii.affine, mask)
    forward = sampled(map_ras_points(points, tmp_path / "rigid.txt"))
    matrix, offset = read_itk_affine(tmp_path / "rigid.txt")
    flip = np.array([-1.0, -1.0, 1.0])
    inverse = sampled((((points * flip) - offset) @ np.linalg.inv(matrix).T) * flip)
    assert np.corrcoef(forward, values)[0, 1] > 0.9
    assert np.corrcoef(inverse, values)[0, 1] < np.corrcoef(forward, values)[0, 1] - 0.2


def test_agreement_measures_the_distance_between_mappings(tmp_path):
    _rigid(tmp_path / "rigid.txt", angle_deg=0.0, translation=(2.0, 0.0, 0.0))  # LPS +2 mm in x: RAS -2 mm
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    mask = np.zeros((4, 5, 6), bool)
    mask[1:3, 1:4, 2:5] = True
    zero = np.zeros((3, 4, 5, 6))
    np.testing.assert_allclose(agreement(zero, affine, mask, tmp_path / "rigid.txt"), 2.0)  # no registration: 2 mm off
    same = zero.copy()
    same[0] = -2.0  # the authors' mapping exactly, in RAS mm
    np.testing.assert_allclose(agreement(same, affine, mask, tmp_path / "rigid.txt"), 0.0, atol=1e-9)


def test_missing_raw_data_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="study2_FLAIR.nii.gz.*brain_mri_raw"):
        clinical_pairs(tmp_path)


def test_measure_clinical_scores_t_alone_and_t_with_optimisation(tmp_path):
    """The four raw pairs through the bundle's inference preprocessing (test-size T, untrained: the identity), T
    alone and T + 10 steps of test-time optimisation beside each other; no registration is a few mm from the
    authors' transforms, and the identity T is exactly there."""
    import shutil

    import torch

    from common.registration import TransformationNetwork
    from tools.clinical_pairs import measure_clinical

    from bundle_utils import BUNDLES, DEFORM_GAN_TEST_SIZE

    shutil.copytree(BUNDLES / "deform_gan" / "configs", tmp_path / "configs")
    (tmp_path / "models").mkdir()
    torch.manual_seed(0)
    torch.save(TransformationNetwork(channels=(8, 16, 16, 16), final_conv_channels=(8,)).state_dict(), tmp_path / "models/model.pt")
    report = measure_clinical(tmp_path, SHARED, {}, {**DEFORM_GAN_TEST_SIZE, "refine_steps": 10, "lg_kernel_size": 3})
    rows = report["rows"]
    assert list(rows) == ["T alone", "T"] and report["refine_steps"] == 10
    assert [r["pair"] for r in rows["T"]] == [f"{s} {c}->FLAIR" for s in ("OpenMS-long-patient03-study2", "OpenMS-long-patient04-study1") for c in ("T1W", "T2W")]
    for alone, refined in zip(rows["T alone"], rows["T"]):
        assert 0.2 < alone["epe_before_mm"] < 15.0  # the scanners' own alignment, as the authors' transforms see it
        assert alone["epe_mm"] == pytest.approx(alone["epe_before_mm"], abs=0.05)  # an untrained T is the identity
        assert np.isfinite(refined["epe_mm"]) and refined["epe_mm"] != alone["epe_mm"]
        assert refined["folding_percent"] < 1.0 and refined["seconds"] > alone["seconds"]
