"""Simulated k-space motion on a real slice: no motion or one position for every line changes nothing, a move
during the acquisition puts ghosts into empty space and leaves the anatomy where the clean image has it, and a seed
makes it repeatable."""

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


def _best_shift(corrupted, clean, reach=6):
    """The integer in-plane roll of ``corrupted`` that correlates best with ``clean``."""
    a = clean - clean.mean()
    scores = {(dy, dx): float((a * torch.roll(corrupted, (dy, dx), dims=(1, 2))).sum())
              for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)}
    return max(scores, key=scores.get)


def test_no_motion_and_one_position_throughout_change_nothing(volume):
    motion = RandKSpaceMotiond("image")
    motion.moves = []
    np.testing.assert_allclose(motion.corrupt(volume).numpy(), volume.numpy(), atol=1e-4)
    motion.moves = [(0.0, 3.0, -2.0)]  # moved before the first line and still: no artefact, nothing to correct
    np.testing.assert_allclose(motion.corrupt(volume).numpy(), volume.numpy(), atol=1e-4)


def test_a_move_before_the_centre_of_k_space_leaves_the_anatomy_in_place(volume):
    clean_slice = volume[..., 40]
    motion = RandKSpaceMotiond("image")
    motion.moves = [(0.3, 4.0, -3.0)]  # the centre of k-space (at 0.5) is acquired after the move
    corrupted = motion.corrupt(clean_slice)
    assert _best_shift(corrupted, clean_slice) == (0, 0)  # counted from the start it would be (-4, 3)
    assert _ghosts(corrupted, clean_slice) > 0.02
    # the same as the earlier lines (0 .. 0.3) carrying the opposite offset from a still position
    motion.moves = [(0.0, -4.0, 3.0), (0.3, 0.0, 0.0)]
    np.testing.assert_allclose(motion.corrupt(clean_slice).numpy(), corrupted.numpy(), atol=1e-5)


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


def test_the_lines_acquired_away_from_the_centre_position_carry_their_offset():
    """Sequential acquisition from -N/2 to N/2 - 1, positions counted from the one held at ky = 0."""
    motion = RandKSpaceMotiond("image")
    ky = torch.fft.fftfreq(8)
    motion.moves = [(0.625, 1.0, 0.0)]  # just after ky = 0 (line 4 of 8): the lines ky > 0 are 1 pixel off along y
    phase = motion.phase_map(8, 6)
    moved = (phase != 0).any(dim=1)
    assert torch.equal(moved, ky > 0)
    np.testing.assert_allclose(phase[moved].numpy(), (-2 * np.pi * ky[moved, None]).expand(-1, 6).numpy(), atol=1e-6)
    motion.moves = [(0.5, 1.0, 0.0)]  # at ky = 0: the position from there on is the reference, the lines ky < 0 are -1 off
    phase = motion.phase_map(8, 6)
    moved = (phase != 0).any(dim=1)
    assert torch.equal(moved, ky < 0)
    np.testing.assert_allclose(phase[moved].numpy(), (2 * np.pi * ky[moved, None]).expand(-1, 6).numpy(), atol=1e-6)
    motion.moves = [(0.25, 0.0, 1.0), (0.75, 0.0, 0.0)]  # moved at 1/4 and back at 3/4, ky = 0 in between
    kx = torch.fft.fftfreq(6)
    phase = motion.phase_map(8, 6)
    ky_rows = (phase != 0).any(dim=1)
    assert sorted(ky[ky_rows].tolist()) == [-0.5, -0.375, 0.25, 0.375]  # the first and the last quarter: -1 along x
    np.testing.assert_allclose(phase[ky_rows].numpy(), (2 * np.pi * kx[None, :]).expand(4, -1).numpy(), atol=1e-6)
    motion.phase_axis = 1  # along columns, with a move along y: columns kx of the first and last quarter, -2 along y
    motion.moves = [(0.25, 2.0, 0.0), (0.75, 0.0, 0.0)]
    phase = motion.phase_map(6, 8)
    kx_cols = (phase != 0).any(dim=0)
    assert sorted(ky[kx_cols].tolist()) == [-0.5, -0.375, 0.25, 0.375]  # fftfreq(8) is also the columns' kx
    ky6 = torch.fft.fftfreq(6)
    np.testing.assert_allclose(phase[:, kx_cols].numpy(), (4 * np.pi * ky6[:, None]).expand(-1, 4).numpy(), atol=1e-6)


def test_seeded_motion_is_the_same_whatever_else_drew_random_numbers(volume):
    """MONAI's DataLoader reseeds its dataset's random transforms; a seeded evaluation set must not change."""
    motion = RandKSpaceMotiond("image", seed=0)
    first = motion({"image": volume})["image"]
    motion.set_random_state(1234)  # what a DataLoader does
    np.random.rand(10)
    again = motion({"image": volume})["image"]
    assert torch.equal(first, again)
    assert first.applied_operations == volume.applied_operations  # the transform history survives (Invertd needs it)
