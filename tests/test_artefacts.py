"""Simulated k-space motion on a real slice: no motion changes nothing, moving every line shifts the image
exactly, a move during the acquisition puts ghosts into empty space, and a seed makes it repeatable."""

import numpy as np
import pytest
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Spacingd

from common.data import RandKSpaceMotiond, ScalePercentiled

TCGA_T1 = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz"


@pytest.fixture(scope="module")
def volume(data_dir):
    t = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image"), Spacingd("image", [2.0] * 3),
                 ScalePercentiled("image")])
    return t({"image": str(data_dir / TCGA_T1)})["image"]  # (1, 120, 120, 78), background -1


def _ghosts(corrupted, clean):
    """Share of the signal (above the -1 background) that lies where the clean image is empty."""
    signal = (corrupted + 1).clamp(min=0)
    return float(signal[clean <= -1 + 1e-6].sum() / signal.sum())


def test_no_motion_and_whole_acquisition_shift_by_hand(volume):
    motion = RandKSpaceMotiond("image")
    motion.moves = []
    np.testing.assert_allclose(motion.corrupt(volume).numpy(), volume.numpy(), atol=1e-4)
    motion.moves = [(0.0, 3.0, -2.0)]  # moved before the first line: the whole image translated by (3, -2) pixels
    shifted = motion.corrupt(volume)
    expected = torch.roll(volume.as_tensor(), shifts=(3, -2), dims=(1, 2))  # circular, as the discrete Fourier shift
    np.testing.assert_allclose(shifted.numpy(), expected.numpy(), atol=1e-4)


def test_a_move_during_the_acquisition_makes_ghosts(volume):
    clean_slice = volume[..., 40]
    motion = RandKSpaceMotiond("image")
    motion.moves = [(0.6, 4.0, 0.0)]  # the last 40 % of the lines see the head 4 pixels further along the phase axis
    corrupted = motion.corrupt(clean_slice)
    assert corrupted.shape == clean_slice.shape
    assert _ghosts(clean_slice, clean_slice) == 0.0 and _ghosts(corrupted, clean_slice) > 0.05
    err = (corrupted - clean_slice).abs()
    rows_outside = err[0][(clean_slice[0] <= -1 + 1e-6).all(dim=1)]  # rows with no head: ghosts along the phase axis
    assert float(rows_outside.max()) > 0.05


def test_seeded_draws_repeat_and_volumes_move_slice_by_slice(volume):
    a = RandKSpaceMotiond("image", seed=7)({"image": volume})["image"]
    b = RandKSpaceMotiond("image", seed=7)({"image": volume})["image"]
    c = RandKSpaceMotiond("image", seed=8)({"image": volume})["image"]
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == volume.shape
    assert a.meta["filename_or_obj"] == volume.meta["filename_or_obj"]
    motion = RandKSpaceMotiond("image", seed=7)
    motion.randomize()
    np.testing.assert_allclose(motion.corrupt(volume)[..., 40].numpy(), motion.corrupt(volume[..., 40]).numpy(), atol=1e-5)
    assert 1 <= len(motion.moves) <= 2 and all(0.1 <= t <= 0.9 and abs(dy) <= 4 and abs(dx) <= 4 for t, dy, dx in motion.moves)
    with pytest.raises(ValueError, match="start < stop"):
        RandKSpaceMotiond("image", start=0.9, stop=0.1)


def test_the_lines_acquired_after_a_move_carry_its_phase():
    """Sequential acquisition from -N/2 to N/2 - 1: a move half-way shifts exactly the lines with ky >= 0."""
    motion = RandKSpaceMotiond("image")
    motion.moves = [(0.5, 1.0, 0.0)]
    phase = motion.phase_map(8, 6)
    ky = torch.fft.fftfreq(8)
    moved = (phase != 0).any(dim=1)
    assert torch.equal(moved, ky > 0)  # the lines ky >= 0; the ky = 0 line has no phase for a shift along y
    np.testing.assert_allclose(phase[ky > 0, 0].numpy(), (-2 * np.pi * ky[ky > 0]).numpy(), atol=1e-6)
    motion.moves = [(0.25, 0.0, 1.0), (0.75, 0.0, 0.0)]  # moved at 1/4 and back at 3/4: the middle half of the lines
    ky_rows = (motion.phase_map(8, 6) != 0).any(dim=1)
    assert sorted(ky[ky_rows].tolist()) == [-0.25, -0.125, 0.0, 0.125]  # kx ramp on rows -N/4 .. N/4 - 1 (ky = 0 too)


def test_seeded_motion_is_the_same_whatever_else_drew_random_numbers(volume):
    """MONAI's DataLoader reseeds its dataset's random transforms; a seeded evaluation set must not change."""
    motion = RandKSpaceMotiond("image", seed=0)
    first = motion({"image": volume})["image"]
    motion.set_random_state(1234)  # what a DataLoader does
    np.random.rand(10)
    again = motion({"image": volume})["image"]
    assert torch.equal(first, again)
    assert first.applied_operations == volume.applied_operations  # the transform history survives (Invertd needs it)
