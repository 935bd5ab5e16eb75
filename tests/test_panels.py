"""Panels people can read: tiles of at least 256 pixels around the anatomy, three axial slices and a coronal one,
titled columns and labelled rows, in a stated orientation."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from common.panels import heat, panel_views, pick_slice, save_panel


def _volume() -> torch.Tensor:
    """(1, H=20, W=30, D=10) RAS: background -1, a block of anatomy at [5:15, 10:20, 2:8], and one bright voxel at
    its anterior-left corner (the lowest R-L index, the highest P-A index) on axial slice 5."""
    vol = -torch.ones(1, 20, 30, 10)
    vol[0, 5:15, 10:20, 2:8] = 0.0
    vol[0, 5, 19, 5] = 1.0
    return vol


def test_views_are_three_axial_slices_around_the_index_and_one_coronal():
    assert panel_views((1, 20, 30, 10), index=5) == [("axial", 3, 7), ("axial", 3, 5), ("axial", 3, 3), ("coronal", 2, 15)]
    assert panel_views((1, 20, 30, 10), index=0, coronal=4)[-2:] == [("axial", 3, 0), ("coronal", 2, 4)]  # clipped
    assert pick_slice(_volume()) in range(2, 8) and pick_slice(_volume(), axis=2) in range(10, 20)


def test_panel_grid_crops_to_the_anatomy_and_enlarges_each_tile(tmp_path):
    vol = _volume()
    error = (vol - 0.5).abs()
    path = save_panel(tmp_path / "p.png", [vol, vol, error], ["a", "b", "|a - b|"], index=5,
                      value_range=[(-1, 1), (-1, 1), (0, 1)], coronal=15)
    img = np.asarray(Image.open(path))
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()  # grey without a colour bar
    img = img[..., 0]
    # foreground box plus 2 voxels: R-L 3:17 (14), P-A 8:22 (14), I-S 0:10 (10); every tile enlarged 19x (the axial
    # 14x14 voxels to 266 px; the coronal row 10x14 voxels to 190 x 266 px, under the same columns); a 20-pixel title bar
    assert img.shape == (20 + 3 * 266 + 190, 3 * 266)
    axial_5 = img[20 + 266:20 + 2 * 266, :266]  # second row: axial slice 5, first column
    assert (axial_5[::19, ::19] == axial_5[18::19, 18::19]).all()  # nearest-neighbour blocks: no invented detail
    # the bright voxel: anterior at the top, the patient's left (R-L index 5, 2 voxels into the crop) on the left
    block = axial_5[2 * 19 + 9, 2 * 19 + 9]  # (P-A 19 -> row 21 - 19 = 2, R-L 5 -> column 5 - 3 = 2), mid-block
    assert block == 255 and axial_5[6 * 19 + 9, 6 * 19 + 9] == 127  # anatomy at 0 is mid-grey in (-1, 1)
    # the error map has its own range: |0 - 0.5| = 0.5 is mid-grey in (0, 1)
    assert img[20 + 266 + 6 * 19 + 9, 2 * 266 + 6 * 19 + 9] == 127


def test_every_row_lines_up_under_the_titles_and_the_error_map_has_a_colour_bar(tmp_path):
    """Column j of a volume whose anatomy is j / 4 shows that grey in every row, axial and coronal, between the
    title's column edges; the error column is in heat colours, with a bar labelled 0 / 25 / 50 beside the grid."""
    volumes = []
    for j in range(4):
        v = _volume()
        v[v > -1] = j / 4
        volumes.append(v)
    path = save_panel(tmp_path / "p.png", volumes, ["T1", "synthetic T2", "real T2", "|synthetic T2 - real T2|"], index=5,
                      value_range=[(-1, 1)] * 3 + [(0, 1)], coronal=15,
                      colour_bar=(3, "|synthetic T2 - real T2|, % of the intensity range", 50.0))
    img = np.asarray(Image.open(path)).astype(int)
    grid_width = 4 * 266
    assert img.shape[1] > grid_width + 60  # the colour bar and its labels beside the grid
    rows = [20 + 266 * r + 6 * 19 + 9 for r in range(3)] + [20 + 3 * 266 + 5 * 19 + 9]  # inside the anatomy, each row
    for y in rows:
        for j in range(3):
            expected = int((j / 4 + 1) / 2 * 255)  # as _to_uint8 maps it (truncating)
            assert (img[y, j * 266 + 6 * 19 + 9] == expected).all(), (y, j)  # grey, under its own title
        r, g, b = img[y, 3 * 266 + 6 * 19 + 9]
        assert r > g > b  # error 0.75 of its range: orange in heat colours, not grey
    legend = img[20:, grid_width:]
    colours = legend[(legend.max(axis=-1) - legend.min(axis=-1)) > 60]  # coloured pixels: the bar
    assert len(colours) > 16 * 200 and (colours[:, 0] >= colours[:, 2]).all()
    assert heat(np.array([[0, 255]], dtype=np.uint8)).tolist() == [[[0, 0, 0], [255, 255, 255]]]  # black to white
