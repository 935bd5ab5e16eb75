"""CT as DICOM series: the sample CT written as a series loads through the CT bundle's preprocessing as the NIfTI does
(HU and geometry), a series with a missing slice or mixed spacing is refused naming it, and the ct_extended set's
manifest lists every slice of its four series with a SHA-256 at the issue's pinned commits (no download)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
import torch
from monai.transforms import LoadImage

from bundle_utils import UNIT_GMM_TEST_SIZE, error_chain, workflow
from tools.sample_data import select
from tools.sample_datalists import datalists
from tools.sample_manifest import CT_EXTENDED_LABELS, CT_EXTENDED_SERIES, ct_extended_manifest

CT = "ct/example_ct_sm.nii.gz"
UID = "1.2.826.0.1.3680043.2.1125.1.77"


def write_series(nifti, folder, pixel_spacing_of=None):
    """``nifti`` as a DICOM series in ``folder``, one file per axial slice with its position, orientation, pixel spacing
    and thickness; ``pixel_spacing_of = (k, spacing)`` writes slice k with another pixel spacing."""
    import itk

    img = itk.imread(str(nifti), itk.SS)
    arr = itk.array_from_image(img)  # (z, y, x)
    direction = itk.array_from_matrix(img.GetDirection())
    spacing, origin = itk.spacing(img), np.array(itk.origin(img))
    folder.mkdir(parents=True)
    for k in range(arr.shape[0]):
        row = spacing[1] if pixel_spacing_of is None or pixel_spacing_of[0] != k else pixel_spacing_of[1]
        tags = {"0020|0032": "\\".join(f"{v:.6f}" for v in origin + direction[:, 2] * spacing[2] * k),
                "0020|0037": "\\".join(f"{v:.6f}" for v in [*direction[:, 0], *direction[:, 1]]),
                "0028|0030": f"{row:.6f}\\{spacing[0]:.6f}", "0018|0050": f"{spacing[2]:.6f}", "0020|0013": str(k + 1),
                "0020|000e": UID + ".2", "0020|000d": UID + ".1", "0008|0060": "CT"}
        meta = itk.MetaDataDictionary()
        for tag, value in tags.items():
            meta[tag] = value
        tile = itk.image_from_array(np.ascontiguousarray(arr[k]))
        tile.SetSpacing([spacing[0], row])
        tile.SetMetaDataDictionary(meta)
        io = itk.GDCMImageIO.New()
        io.KeepOriginalUIDOn()
        io.SetMetaDataDictionary(meta)
        itk.ImageFileWriter[type(tile)].New(Input=tile, FileName=str(folder / f"slice{k:03d}.dcm"), ImageIO=io).Update()
    return folder


def _preprocessed(tmp_path, data_dir, path):
    wf = workflow("unit_gmm", ("inference",), "infer", bundle_root=str(tmp_path), input=str(path),
                  output_dir=str(tmp_path / "out"), **UNIT_GMM_TEST_SIZE)
    return wf.parser.get_parsed_content("dataset")[0]["image"]


def test_a_dicom_series_loads_in_hu_with_its_geometry_as_the_nifti_does(data_dir, tmp_path):
    series = write_series(data_dir / CT, tmp_path / "series")
    raw, ref = LoadImage(image_only=True)(str(series)), LoadImage(image_only=True)(str(data_dir / CT))
    np.testing.assert_array_equal(np.asarray(raw), np.asarray(ref))  # HU, voxel for voxel
    np.testing.assert_allclose(np.asarray(raw.affine), np.asarray(ref.affine), atol=1e-4)
    from_series, from_nifti = _preprocessed(tmp_path, data_dir, series), _preprocessed(tmp_path, data_dir, data_dir / CT)
    assert from_series.shape == from_nifti.shape and torch.allclose(from_series, from_nifti)
    np.testing.assert_allclose(np.asarray(from_series.affine), np.asarray(from_nifti.affine), atol=1e-4)


def test_a_series_missing_a_slice_or_of_mixed_spacing_is_refused_naming_it(data_dir, tmp_path):
    gap = write_series(data_dir / CT, tmp_path / "gap")
    (gap / "slice015.dcm").unlink()
    with pytest.raises(Exception) as info:
        _preprocessed(tmp_path, data_dir, gap)
    assert re.search(rf"DICOM series '{gap}': slices slice014.dcm and slice016.dcm are 6 mm apart where the others "
                     r"are 3 mm: a missing slice", error_chain(info.value))
    mixed = write_series(data_dir / CT, tmp_path / "mixed", pixel_spacing_of=(7, 2.5))
    with pytest.raises(Exception) as info:
        _preprocessed(tmp_path, data_dir, mixed)
    assert f"DICOM series '{mixed}': mixed pixel spacing: slice007.dcm has" in error_chain(info.value)


def test_the_ct_extended_manifest_lists_each_slice_at_the_pinned_commits():
    entries = ct_extended_manifest()
    series = Counter(e.path.split("/")[1] for e in entries if not e.path.startswith("ct_extended/ircadb17_masks/"))
    assert series == {"ircadb17_portal_venous": 119, "ircadb01_portal_venous": 129, "lidc_idri_0314_non_contrast": 275,
                      "4dct_phase00_non_contrast": 141} and set(series) == set(CT_EXTENDED_SERIES)
    # IRCADb 17's organ masks, one slice file per slice of its scan
    masks = Counter(e.path.rsplit("/", 1)[0] for e in entries if e.path.startswith("ct_extended/ircadb17_masks/"))
    assert masks == {f"ct_extended/{folder}": 119 for folder in CT_EXTENDED_LABELS["ircadb17_portal_venous"].values()}
    assert {(e.repo, e.commit) for e in entries} == {
        ("alireza-da/TraumaDetectionProject", "23e58c490f7541af140ea5f51e4b9dc6464d3118"),
        ("venturousman/DataRepo", "cc35513515892c52e8d725e22777fbe4946b9979"),
        ("FNNDSC/data", "d2960f20b1df63f201265bf2b09d5a77ea0d6bab"),
        ("InsightSoftwareConsortium/ITKElastix", "787db6d117d5c3de231935163b713f3e0a5c7433")}
    assert all(re.fullmatch(r"[0-9a-f]{64}", e.sha256) for e in entries) and len({e.path for e in entries}) == 664 + 476
    assert not any(e.group == "ct_extended" for e in select())  # opt-in: not in the default download
    assert len(select(["ct_extended"])) == 664 + 476
    # the datalist pairs each non-contrast series with the contrast scans of an overlapping body region
    training = datalists()["ct_extended.json"]["training"]
    assert {t["A"] for t in training} == {"ct_extended/lidc_idri_0314_non_contrast", "ct_extended/4dct_phase00_non_contrast"}
    assert all(t["region_B"] in ("chest", "abdomen") for t in training)
    assert not any("example_ct" in t["A"] for t in training)  # held out
    (reference,) = datalists()["ct_extended.json"]["contrast_reference"]
    assert reference["B"] == "ct_extended/ircadb17_portal_venous"
    assert set(reference["labels"]) == {"aorta", "portal vein", "liver", "bone"}
