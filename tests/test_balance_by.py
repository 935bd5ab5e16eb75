"""``balance_by: "pipeline"`` in the brain bundles: the datalist's pipeline reaches the training loader, which draws
each pipeline equally often (the quick start's three subjects: two BraTS 2023, one C-STAR)."""

from __future__ import annotations

import pytest
import torch

from bundle_utils import AE_GAN_TEST_SIZE, MEDGAN_TRAIN_TEST_SIZE, TRAIN_TEST_SIZE, workflow

SIZES = {"cyclegan": TRAIN_TEST_SIZE, "medgan": MEDGAN_TRAIN_TEST_SIZE, "ae_gan": AE_GAN_TEST_SIZE}


@pytest.mark.parametrize("bundle", list(SIZES))
def test_balance_by_pipeline_weighs_each_pipeline_alike(bundle, data_dir, tmp_path):
    overrides = dict(dataset_dir=str(data_dir), bundle_root=str(tmp_path), **SIZES[bundle],
                     datalist=str(data_dir / "datalists/brain_mri_quick.json"))
    wf = workflow(bundle, ("train",), **overrides)
    entries = wf.parser.get_parsed_content("train#datalist")
    assert [(e["subject"], e["pipeline"]) for e in entries] == [
        ("BraTS-MET-00110-000", "brats2023"), ("BraTS-GLI-00001-000", "brats2023"), ("CSTAR-stroke", "cstar")]
    assert isinstance(wf.parser.get_parsed_content("train#dataloader").sampler, torch.utils.data.RandomSampler)
    balanced = workflow(bundle, ("train",), balance_by="pipeline", **overrides)
    sampler = balanced.parser.get_parsed_content("train#dataloader").sampler
    assert isinstance(sampler, torch.utils.data.WeightedRandomSampler)
    assert sampler.weights.tolist() == [0.5, 0.5, 1.0]
