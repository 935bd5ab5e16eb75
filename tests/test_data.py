"""Datalists and transforms on the real sample volumes: errors that name the file, invertible scaling."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from common.data import CheckImaged, RandForegroundSliced, ScalePercentiled, input_files, load_datalist, slice_context
from common.engines import ContextSliceInferer

BRATS_T1 = "brain_mri/BraTS-MET-00110-000/BraTS-MET-00110-000-t1n.nii.gz"
TCGA_T1 = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz"


def _load(path):
    return Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image")])({"image": str(path)})


def test_load_datalist_maps_contrasts(data_dir):
    items = load_datalist(data_dir / "datalists/brain_mri_test.json", "validation", {"A": "t1", "B": "t2"},
                          base_dir=data_dir, optional_keys={"mask": "mask"})
    assert len(items) == 1 and items[0]["subject"] == "TCGA-DU-7294"
    assert items[0]["A"].endswith("_t1_bet_normalized.nii.gz") and items[0]["B"].endswith("_t2_bet_normalized.nii.gz")
    assert items[0]["mask"].endswith("atlas_bet_t1c_mask.nii.gz")


def test_datalist_errors_name_the_problem(data_dir, tmp_path):
    datalist = data_dir / "datalists/brain_mri_test.json"
    with pytest.raises(KeyError, match=r"TCGA-DU-7294.*has no contrast \['pd'\]; it has \['flair', 'mask', 't1', 't1c', 't2'\]"):
        load_datalist(datalist, "validation", {"A": "t1", "B": "pd"}, base_dir=data_dir)
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_datalist(tmp_path / "nowhere.json", "training", {"A": "t1"})
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"training": [], "validation": [{"t1": "x"}]}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty.json' has no entries in section 'training' \(non-empty sections: \['validation'\]\)"):
        load_datalist(empty, "training", {"A": "t1"})
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"training": [{"subject": "s1", "t1": "s1/t1.nii.gz"}]}), encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"entry 0 \(s1\).*file for 't1' not found: '.*s1/t1.nii.gz'"):
        load_datalist(missing, "training", {"A": "t1"})


def test_input_files(data_dir, tmp_path):
    assert input_files(data_dir / TCGA_T1) == [str(data_dir / TCGA_T1)]
    assert len(input_files(data_dir / "brain_mri/TCGA-DU-7294")) == 5
    assert input_files(str(data_dir / "brain_mri/BraTS-MET*/*t1n*")) == [str(data_dir / BRATS_T1)]
    with pytest.raises(FileNotFoundError, match="no input image found at"):
        input_files(tmp_path / "nothing_here")


@pytest.mark.parametrize("path", [BRATS_T1, TCGA_T1])
def test_scale_percentiled_matches_numpy_and_inverts(data_dir, path):
    data = _load(data_dir / path)
    raw = data["image"].numpy().copy()
    lo, hi = np.percentile(raw[raw != 0], [0.5, 99.5])
    scale = ScalePercentiled("image", clip=False)
    scaled = scale(data)
    expected = (raw - lo) / (hi - lo) * 2 - 1
    np.testing.assert_allclose(scaled["image"].numpy(), expected, rtol=1e-4, atol=1e-4)
    restored = scale.inverse(scaled)
    np.testing.assert_allclose(restored["image"].numpy(), raw, rtol=1e-4, atol=1e-3 * hi)
    # clipped (the bundles' setting): in range, and the inverse is exact inside the percentile range
    scale_clipped = ScalePercentiled("image")
    clipped = scale_clipped(_load(data_dir / path))
    assert clipped["image"].min() == -1 and clipped["image"].max() == 1
    back = scale_clipped.inverse(clipped)["image"].numpy()
    inside = (raw >= lo) & (raw <= hi)
    np.testing.assert_allclose(back[inside], raw[inside], rtol=1e-4, atol=1e-3 * hi)


def test_check_imaged_rejects_bad_volumes(data_dir, tmp_path):
    img = nib.load(data_dir / TCGA_T1)
    flat = tmp_path / "slice_2d.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:, :, 70].astype(np.float32), img.affine), flat)
    with pytest.raises(ValueError, match=r"slice_2d.nii.gz' \('image'\): expected a 3D image.*got shape \(1, 240, 240\)"):
        CheckImaged("image")(_load(flat))
    vol = np.asarray(img.dataobj).astype(np.float32)
    vol[100, 100, 70] = np.nan
    nan_file = tmp_path / "with_nan.nii.gz"
    nib.save(nib.Nifti1Image(vol, img.affine), nan_file)
    with pytest.raises(ValueError, match=r"with_nan.nii.gz' \('image'\): 1 voxels are NaN or infinite"):
        CheckImaged("image")(_load(nan_file))
    constant = tmp_path / "constant.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), img.affine), constant)
    with pytest.raises(ValueError, match="constant.nii.gz.*constant"):
        CheckImaged("image")(_load(constant))


def test_rand_foreground_slice(data_dir):
    t1 = ScalePercentiled("image")(_load(data_dir / BRATS_T1))["image"]
    t2 = ScalePercentiled("image")(_load(data_dir / BRATS_T1.replace("t1n", "t2w")))["image"]
    sampler = RandForegroundSliced(["A", "B"], independent=True)
    sampler.set_random_state(0)
    indices = set()
    for _ in range(20):
        out = sampler({"A": t1, "B": t2})
        assert out["A"].shape == (1, 240, 240) and out["B"].shape == (1, 240, 240)
        assert (out["A"] > -0.95).float().mean() >= 0.05  # a slice with brain in it
        indices.add((out["A"].meta["slice_index"], out["B"].meta["slice_index"]))
    assert any(a != b for a, b in indices)  # unpaired: the two domains' slices are drawn independently
    paired = RandForegroundSliced(["A", "B"], independent=False)
    paired.set_random_state(0)
    out = paired({"A": t1, "B": t2})
    assert out["A"].meta["slice_index"] == out["B"].meta["slice_index"]
    with pytest.raises(ValueError, match="no slice along axis -1"):
        RandForegroundSliced(["A"])({"A": torch.full((1, 4, 4, 4), -1.0)})


def test_slice_context_stacks_each_slice_with_its_neighbours():
    volume = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 2, 3, 4)  # (C=2, H, W, D=4)
    stacked = slice_context(volume, 3, axis=-1)
    assert stacked.shape == (6, 2, 3, 4)
    for c in range(2):
        for d in range(4):  # channel c*3 + j holds slice d + j - 1, the end slices repeated beyond the volume
            for j, neighbour in enumerate((max(d - 1, 0), d, min(d + 1, 3))):
                assert torch.equal(stacked[c * 3 + j, ..., d], volume[c, ..., neighbour])
    assert torch.equal(slice_context(volume, 3, axis=-1, index=2), stacked[..., 2])
    assert torch.equal(slice_context(volume, 1, axis=-1), volume)
    five = slice_context(volume, 5, axis=1, index=0)  # along H (2 slices): -2, -1, 0 -> slice 0; +1, +2 -> slice 1
    assert five.shape == (10, 3, 4) and torch.equal(five[4], volume[0, 1]) and torch.equal(five[1], volume[0, 0])
    for bad in (2, 0):
        with pytest.raises(ValueError, match="odd number"):
            slice_context(volume, bad)


def test_context_sampler_and_inferer_give_the_network_the_same_input(data_dir):
    """2.5D: training's slice (RandForegroundSliced) and inference's (ContextSliceInferer) reach the network alike."""
    t1 = ScalePercentiled("image")(_load(data_dir / BRATS_T1))["image"]
    t2 = ScalePercentiled("image")(_load(data_dir / BRATS_T1.replace("t1n", "t2w")))["image"]
    sampler = RandForegroundSliced(["image", "label"], independent=False, context_slices=3, context_keys="image")
    sampler.set_random_state(1)
    out = sampler({"image": t1, "label": t2})
    index = out["image"].meta["slice_index"]
    assert out["image"].shape == (3, 240, 240) and out["label"].shape == (1, 240, 240)
    assert torch.equal(out["image"][1], t1[0, ..., index]) and torch.equal(out["image"][0], t1[0, ..., index - 1])
    seen = {}

    def network(x):  # (B, 3, H, W): record what slice `index` was given, return its centre channel
        for b in range(x.shape[0]):
            seen[len(seen)] = x[b]
        return x[:, 1:2]

    inferer = ContextSliceInferer(3, spatial_dim=2, roi_size=(240, 240), sw_batch_size=1)
    pred = inferer(t1[None], network)
    assert pred.shape == (1, 1, 240, 240, 155) and torch.equal(pred[0], t1)
    assert torch.equal(seen[index], out["image"].as_tensor())


def test_scale_percentiled_ignores_interpolation_residue_around_the_brain(data_dir):
    """After resampling, the background holds values near 1e-13 (not exact zeros); the lower percentile must still
    be the brain's darkest tissue, as at the native 1 mm, not ~0."""
    from monai.transforms import Spacingd

    native = _load(data_dir / TCGA_T1)
    raw = native["image"].numpy()
    brain_lo = np.percentile(raw[raw != 0], 0.5)  # 0.037 on this 0..1 scan
    resampled = Spacingd("image", [3.0, 3.0, 3.0], mode="bilinear")(_load(data_dir / TCGA_T1))
    values = resampled["image"].numpy()
    residue = (values != 0) & (np.abs(values) < 1e-6)
    assert residue.mean() > 0.001  # the case this guards against is present in the data
    scaled = ScalePercentiled("image", clip=False)(resampled)
    lo = scaled["image"].applied_operations[-1]["extra_info"]["lower_value"]
    assert lo == pytest.approx(brain_lo, rel=0.1)
    # a voxel at the brain's lower percentile maps to -1; the zero background lies below it
    assert float(scaled["image"].min()) < -1.0


def test_load_datalist_skips_subjects_without_the_pair_when_asked(data_dir, caplog):
    datalist = data_dir / "datalists/brain_mri_test.json"
    with pytest.raises(KeyError, match=r"CSTAR-stroke.*has no contrast \['t1c'\]"):
        load_datalist(datalist, "training", {"A": "t1c", "B": "t2"}, base_dir=data_dir)
    with caplog.at_level("WARNING"):
        items = load_datalist(datalist, "training", {"A": "t1c", "B": "t2"}, base_dir=data_dir, skip_incomplete=True)
    assert [i["subject"] for i in items] == ["BraTS-MET-00110-000", "BraTS-GLI-00001-000"]
    assert "skipping ['CSTAR-stroke']" in caplog.text
    all_three = load_datalist(datalist, "training", {"A": "t1", "B": "t2"}, base_dir=data_dir, skip_incomplete=True)
    assert [i["subject"] for i in all_three] == ["BraTS-MET-00110-000", "BraTS-GLI-00001-000", "CSTAR-stroke"]
    with pytest.raises(ValueError, match="no entry of section 'training' has all of"):
        load_datalist(datalist, "training", {"A": "pd"}, base_dir=data_dir, skip_incomplete=True)


def test_foreground_mask_is_added_only_where_the_item_has_none():
    """Evaluation's brain mask for a subject listed without one: the target's non-background voxels (interpolation
    residue below 1e-3 of the maximum left out); a given mask is kept as it is."""
    from common.data import ForegroundMaskd

    label = torch.zeros(1, 6, 6, 4)
    label[0, 1:4, 2:5, 1:3] = torch.tensor([5.0, 200.0])[None, None, :].expand(3, 3, 2)
    label[0, 0, 0, 0] = 0.1  # residue: 0.1 < 1e-3 * 200
    out = ForegroundMaskd("label")({"label": MetaTensor(label, meta={"filename_or_obj": "t2.nii.gz"})})
    assert out["mask"].shape == label.shape and out["mask"].dtype == torch.float32
    assert torch.equal(out["mask"].bool(), label > 0.2) and int(out["mask"].sum()) == 18
    assert out["mask"].meta["filename_or_obj"] == "t2.nii.gz"
    given = torch.ones_like(label)
    assert ForegroundMaskd("label")({"label": label, "mask": given})["mask"] is given
