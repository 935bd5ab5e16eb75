"""Where the translation bundles score a held-out subject: inside its brain. TCGA-DU-7294 comes with a brain mask;
OpenMS-patient26 with none, so the evaluation takes its T2's non-background voxels (``common.data.ForegroundMaskd``)
instead of the whole image, whose background every method gets right."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from bundle_utils import AE_GAN_TEST_SIZE, MEDGAN_TEST_SIZE, TEST_SIZE, workflow

SIZES = {"cyclegan": TEST_SIZE, "medgan": MEDGAN_TEST_SIZE, "ae_gan": AE_GAN_TEST_SIZE}


@pytest.mark.parametrize("bundle", list(SIZES))
def test_held_out_subjects_are_scored_inside_the_brain(bundle, data_dir, tmp_path):
    wf = workflow(bundle, ("train", "evaluate"), "eval", dataset_dir=str(data_dir), bundle_root=str(tmp_path),
                  datalist=str(data_dir / "datalists/brain_mri_quick.json"), **SIZES[bundle])
    items = {str(item["subject"]): item for item in wf.parser.get_parsed_content("validate#dataset")}
    assert set(items) == {"TCGA-DU-7294", "OpenMS-patient26"}
    tcga, openms = items["TCGA-DU-7294"], items["OpenMS-patient26"]
    # the given brain mask, resampled with the images (nearest neighbour: 0/1)
    assert set(torch.unique(torch.as_tensor(tcga["mask"])).tolist()) == {0.0, 1.0}
    # OpenMS-patient26: its skull-stripped T2's brain on the file's grid, resampled as a given mask is (0/1, no rim
    # of interpolated edge voxels), a fraction of the MNI box, checked against the file
    assert set(torch.unique(torch.as_tensor(openms["mask"])).tolist()) == {0.0, 1.0}
    mask = torch.as_tensor(openms["mask"]) > 0
    assert mask.shape == torch.as_tensor(openms["label"]).shape
    t2 = np.asarray(nib.load(data_dir / "brain_mri/OpenMS-patient26/T2_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz").dataobj)
    brain_fraction = float((np.abs(t2) > 1e-3 * np.abs(t2).max()).mean())
    assert 0.1 < brain_fraction < 0.3  # the MNI box is mostly background
    assert abs(float(mask.float().mean()) - brain_fraction) < 0.03, float(mask.float().mean())
    # outside it the target is background: the lowest value of the scaled image
    label = torch.as_tensor(openms["label"])
    assert float(label[~mask].max()) <= float(label.min()) + 1e-3
