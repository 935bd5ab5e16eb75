"""The sample data's new subjects through the bundles: a MetaImage (.mha) subject read with its geometry by every
translation bundle and written back on its own grid, and training on three of the new subjects (BraTS 2018, OpenMS)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from bundle_utils import (AE_GAN_TEST_SIZE, DEFORM_GAN_TRAIN_TEST_SIZE, MEDGAN_TEST_SIZE, MEDGAN_TRAIN_TEST_SIZE,
                          TRAIN_TEST_SIZE, train, workflow)
from conftest import SHARED
from tools.datalist import image_grid
from tools.sample_datalists import subject_entry

MHA_SUBJECT = "BRATS2012-HG0015"
NEW_SUBJECTS = ("Brats18_CBICA_ABM_1", "Brats18_TCIA03_265_1", "OpenMS-patient07")


def _datalist(tmp_path, training, validation) -> str:
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [subject_entry(s) for s in training],
                                "validation": [subject_entry(s) for s in validation]}), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("bundle, size", [("cyclegan", TRAIN_TEST_SIZE), ("medgan", MEDGAN_TRAIN_TEST_SIZE),
                                          ("ae_gan", AE_GAN_TEST_SIZE)])
def test_mha_subject_loads_through_each_bundle_with_its_geometry(bundle, size, tmp_path):
    datalist = _datalist(tmp_path, ["CSTAR-stroke"], [MHA_SUBJECT])
    wf = workflow(bundle, ("train",), dataset_dir=str(SHARED), datalist=datalist, bundle_root=str(tmp_path), **size)
    item = wf.parser.get_parsed_content("validate#dataset")[0]
    shape, affine = image_grid(SHARED / subject_entry(MHA_SUBJECT)["t1"])  # the header, read by ITK, in RAS
    assert shape == (160, 216, 176)
    for key in ("image", "label", "lesion"):
        # the affine the reader gave (before reorientation and resampling) is the file's own
        np.testing.assert_allclose(np.asarray(item[key].meta["original_affine"]), affine, atol=1e-4)
        assert item[key].shape[1:] == item["label"].shape[1:]  # every image on the evaluation grid
    assert item["subject"] == MHA_SUBJECT and int(item["lesion"].max()) == 2  # the tumour labels, nearest-neighbour


def test_mha_subject_loads_through_the_registration_bundle_with_its_geometry(tmp_path):
    datalist = _datalist(tmp_path, ["CSTAR-stroke"], [MHA_SUBJECT])
    wf = workflow("deform_gan", ("train",), dataset_dir=str(SHARED), datalist=datalist, bundle_root=str(tmp_path),
                  **DEFORM_GAN_TRAIN_TEST_SIZE)
    item = wf.parser.get_parsed_content("validate#dataset")[0]
    _, affine = image_grid(SHARED / subject_entry(MHA_SUBJECT)["t2"])
    for key in ("fixed", "moving"):  # the T2 and the T1 as read, before the known deformation and resampling
        np.testing.assert_allclose(np.asarray(item[key].meta["original_affine"]), affine, atol=1e-4)
        assert item[key].shape == (1, 48, 48, 48)


def test_mha_input_written_back_as_nifti_on_its_own_grid(tmp_path):
    mha = SHARED / subject_entry(MHA_SUBJECT)["t1"]
    net = workflow("medgan", ("train",), bundle_root=str(tmp_path), **MEDGAN_TEST_SIZE).parser.get_parsed_content("network_def")
    (tmp_path / "models").mkdir()
    torch.save(net.state_dict(), tmp_path / "models/model.pt")  # untrained: the geometry is what is tested
    workflow("medgan", ("inference",), "infer", bundle_root=str(tmp_path), input=str(mha), output_dir=str(tmp_path / "out"),
             **MEDGAN_TEST_SIZE).run()
    out = nib.load(tmp_path / "out/BRATS_HG0015_T1_synthetic_t2.nii.gz")
    shape, affine = image_grid(mha)
    assert out.shape == shape
    np.testing.assert_allclose(out.affine, affine, atol=1e-4)


def test_training_on_three_new_subjects_lowers_the_l1(tmp_path):
    datalist = _datalist(tmp_path, NEW_SUBJECTS, ["OpenMS-patient26"])
    _, outputs = train("medgan", SHARED, tmp_path, 120, MEDGAN_TRAIN_TEST_SIZE, datalist=datalist)
    l1 = np.array([o["l1"] for o in outputs])
    assert len(l1) == 120 and np.isfinite(l1).all()
    first, last = l1[:20].mean(), l1[-20:].mean()
    assert last < 0.8 * first, f"L1 {first:.3f} -> {last:.3f}"
