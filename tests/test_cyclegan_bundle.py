"""The CycleGAN bundle end to end on the real sample MRI: configs, training, resume, evaluation, inference,
3D mode, multi-process training and bad input. Small networks on 4 mm volumes keep it to CPU seconds."""

from __future__ import annotations

import csv
import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Events
from PIL import Image

from bundle_utils import (
    BUNDLES, TEST_SIZE, TRAIN_TEST_SIZE, check_metadata_and_network, check_resume, check_torchrun, error_chain, train,
    workflow,
)

BUNDLE = "cyclegan"
TCGA_T1 = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz"
BRATS_T1 = "brain_mri/BraTS-MET-00110-000/BraTS-MET-00110-000-t1n.nii.gz"


def _train(data_dir, bundle_root, iterations, epochs=1, **overrides):
    return train(BUNDLE, data_dir, bundle_root, iterations, TRAIN_TEST_SIZE, epochs, **overrides)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A bundle folder holding test-size weights trained on the real BraTS slices, and the losses."""
    root = tmp_path_factory.mktemp("cyclegan_bundle")
    _, outputs = _train(data_dir, root, iterations=150)
    return root, outputs


def test_metadata_and_network_checks():
    check_metadata_and_network(BUNDLE, "--num_filters", "8", "--num_res_blocks", "1")


@pytest.mark.parametrize("names, workflow_type", [(("train",), "train"), (("train", "evaluate"), "eval"),
                                                  (("inference",), "infer")])
def test_configs_initialise_with_all_properties(data_dir, tmp_path, names, workflow_type):
    wf = workflow(BUNDLE, names, workflow_type, dataset_dir=str(data_dir), bundle_root=str(tmp_path), **TRAIN_TEST_SIZE)
    assert wf.check_properties() == []
    net = wf.parser.get_parsed_content("network_def")
    assert type(net).__name__ == "ResnetGenerator" and net.spatial_dims == 2


def test_default_sizes_are_the_papers():
    train = json.loads((BUNDLES / BUNDLE / "configs/train.json").read_text(encoding="utf-8"))
    assert (train["num_filters"], train["num_res_blocks"], train["disc_filters"], train["disc_layers"]) == (64, 9, 64, 3)
    assert (train["lr"], train["lambda_cycle"], train["lambda_identity"], train["pool_size"]) == (0.0002, 10.0, 0.5, 50)
    assert (train["n_epochs"], train["n_epochs_decay"], train["batch_size"], train["spatial_dims"]) == (100, 100, 1, 2)


def test_training_on_real_slices_reduces_cycle_loss(trained):
    root, outputs = trained
    cycle = np.array([o["loss_cycle"] for o in outputs])
    assert len(cycle) == 150 and np.isfinite(cycle).all()
    first, last = cycle[:20].mean(), cycle[-20:].mean()
    assert last < 0.6 * first, f"cycle loss {first:.3f} -> {last:.3f}"
    assert (root / "models/model.pt").is_file()
    assert sorted(p.name for p in (root / "models/checkpoints").iterdir()) == ["checkpoint_150.pt"]


def test_evaluate_writes_metrics_and_panel(trained, data_dir):
    root, _ = trained
    wf = workflow(BUNDLE, ("train", "evaluate"), "eval", dataset_dir=str(data_dir), bundle_root=str(root), **TRAIN_TEST_SIZE)
    wf.run()
    rows = dict(csv.reader(open(root / "eval/metrics.csv", encoding="utf-8")))
    psnr, ssim, mae, ncc = (float(rows[f"val_{m}"]) for m in ("psnr", "ssim", "mae", "ncc"))
    assert 10 < psnr < 40 and 0 < ssim <= 1 and 0 < mae < 0.5 and -1 <= ncc <= 1
    panel = Image.open(root / "eval/TCGA-DU-7294_t1_bet_normalized_panel.png")
    # four columns (T1, synthetic T2, real T2, |synthetic - real|) under a 20-pixel title bar, rows of three axial
    # slices (each tile enlarged to at least 256 pixels) and a coronal one under the same columns (tests/test_panels.py
    # checks the layout), and the error map's colour bar beside them
    assert panel.height > 20 + 3 * 256 and panel.width > 4 * 128 + 150 and panel.mode == "RGB"
    assert wf.evaluator.state.metrics["val_psnr"] == pytest.approx(psnr)  # the file holds the evaluator's result


@pytest.mark.parametrize("path", [TCGA_T1, BRATS_T1])
def test_inference_keeps_geometry_and_intensity_scale(trained, data_dir, tmp_path, path):
    root, _ = trained
    wf = workflow(BUNDLE, ("inference",), "infer", bundle_root=str(root), input=str(data_dir / path),
                  output_dir=str(tmp_path), **TEST_SIZE)
    wf.run()
    src = nib.load(data_dir / path)
    out_file = tmp_path / (os.path.basename(path).replace(".nii.gz", "_synthetic_t2.nii.gz"))
    out = nib.load(out_file)
    assert out.shape == src.shape
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    assert nib.aff2axcodes(out.affine) == nib.aff2axcodes(src.affine)
    assert out.get_data_dtype() == np.float32
    values, raw = out.get_fdata(), np.asarray(src.dataobj, dtype=np.float32)
    lo, hi = np.percentile(raw[raw != 0], [0.5, 99.5])
    assert np.isfinite(values).all()
    # back on the input's scale: not the network's -1..1 (background -1), not above the input's 99.5th percentile
    assert values.min() >= -1e-3 * hi and values.max() <= hi * (1 + 1e-3)
    assert np.percentile(values[raw > 0], 90) > 0.1 * hi


def test_resume_continues_at_the_saved_iteration(data_dir, tmp_path):
    check_resume(BUNDLE, data_dir, tmp_path, TRAIN_TEST_SIZE, optimizer="G", network="G_A", per_epoch=4)


def test_learning_rate_decays_from_the_first_decay_iteration(data_dir, tmp_path):
    """2 constant + 2 decaying iterations: the rates the trainer actually used are 1, 1, 2/3, 1/3 of 2e-4 (the
    per-epoch SequentialLR this replaced ran the whole first decay epoch at the full rate)."""
    lrs = []
    wf = workflow(BUNDLE, ("train",), dataset_dir=str(data_dir), bundle_root=str(tmp_path), iterations_per_epoch=2,
                  n_epochs=1, n_epochs_decay=1, val_interval=100, **TRAIN_TEST_SIZE)
    trainer = wf.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: lrs.append(
        (e.optimizers["G"].param_groups[0]["lr"], e.optimizers["D"].param_groups[0]["lr"])))
    wf.run()
    expected = [2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3]
    assert [g for g, _ in lrs] == pytest.approx(expected) and [d for _, d in lrs] == pytest.approx(expected)


def test_source_augmentation_changes_the_t1_slices_only(data_dir, tmp_path):
    """``--source_augmentation @intensity_augmentation`` (the demo's): random gamma and histogram shifts of the T1
    (A) slices after they are drawn; the T2 (B) slices are untouched, and by default (the paper) nothing is added."""
    from monai.transforms import Compose, RandAdjustContrastd

    def preprocessing(**overrides):
        wf = workflow(BUNDLE, ("train",), dataset_dir=str(data_dir), bundle_root=str(tmp_path), **TRAIN_TEST_SIZE,
                      **overrides)
        return wf.parser.get_parsed_content("train#preprocessing").transforms, wf

    plain, _ = preprocessing()
    augmented, wf = preprocessing(source_augmentation="@intensity_augmentation")
    assert not any(isinstance(t, RandAdjustContrastd) for t in plain)
    added = [type(t).__name__ for t in augmented if type(t) not in {type(u) for u in plain}]
    assert added == ["RandAdjustContrastd", "RandHistogramShiftd"]

    # on real drawn slices: A changes and stays in the scaled range; B is the same tensor
    sample = Compose(plain[:-1])  # loading, scaling, slice drawing (the flip left out)
    sample.set_random_state(seed=0)
    item = sample(wf.parser.get_parsed_content("train#datalist")[0])
    augment = Compose(wf.parser.get_parsed_content("intensity_augmentation"))
    changed = 0
    for seed in range(8):
        augment.set_random_state(seed=seed)
        out = augment({"A": item["A"].clone(), "B": item["B"].clone()})
        assert torch.equal(out["B"], item["B"])
        assert out["A"].shape == item["A"].shape and float(out["A"].min()) >= -1.0 - 1e-5 and float(out["A"].max()) <= 1.0 + 1e-5
        changed += not torch.allclose(out["A"], item["A"])
    assert changed >= 6  # prob 0.8 and 0.5: nearly every draw changes the T1

    # the bias field measured in the model card: multiplicative on the 0..1 scale, so the background (-1) stays
    bias = Compose(wf.parser.get_parsed_content("bias_field_augmentation"))
    background, changed = item["A"] <= -1.0 + 1e-6, 0
    assert background.any() and not background.all()
    for seed in range(8):
        bias.set_random_state(seed=seed)
        out = bias({"A": item["A"].clone(), "B": item["B"].clone()})
        assert torch.equal(out["B"], item["B"]) and float(out["A"].min()) >= -1.0 and float(out["A"].max()) <= 1.0
        torch.testing.assert_close(out["A"][background], item["A"][background])
        changed += not torch.allclose(out["A"], item["A"], atol=1e-3)
    assert 2 <= changed <= 7  # prob 0.5


def test_3d_patch_mode_trains_and_infers(data_dir, tmp_path):
    size = {"spatial_dims": 3, "roi_size": [16, 16, 16], "num_filters": 4, "num_res_blocks": 1, "pixdim": [4.0, 4.0, 4.0]}
    _, outputs = _train(data_dir, tmp_path, iterations=3, disc_filters=4, disc_layers=2, **size)
    assert len(outputs) == 3 and all(np.isfinite(o["loss_G"]) for o in outputs)
    wf = workflow(BUNDLE, ("inference",), "infer", bundle_root=str(tmp_path), input=str(data_dir / TCGA_T1),
                  output_dir=str(tmp_path / "out"), **size)
    assert type(wf.parser.get_parsed_content("inferer")).__name__ == "SlidingWindowInferer"
    wf.run()
    out = nib.load(tmp_path / "out/TCGA-DU-7294_t1_bet_normalized_synthetic_t2.nii.gz")
    src = nib.load(data_dir / TCGA_T1)
    assert out.shape == src.shape
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)


def test_multi_gpu_config_runs_two_processes_on_cpu(data_dir, tmp_path):
    check_torchrun(BUNDLE, data_dir, tmp_path, TRAIN_TEST_SIZE, network="G_A", per_epoch=3)


def test_bad_input_errors_name_the_file_or_key(data_dir, tmp_path, trained):
    root, _ = trained
    src = nib.load(data_dir / TCGA_T1)
    flat = tmp_path / "flat_2d.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(src.dataobj)[:, :, 70].astype(np.float32), src.affine), flat)
    with pytest.raises(BaseException) as err:  # InferenceFailed is a SystemExit
        workflow(BUNDLE, ("inference",), "infer", bundle_root=str(root), input=str(flat), output_dir=str(tmp_path), **TEST_SIZE).run()
    assert "flat_2d.nii.gz' ('image'): expected a 3D image" in error_chain(err.value)
    assert not list(tmp_path.glob("*synthetic*"))  # nothing written for a rejected input

    vol = np.asarray(src.dataobj).astype(np.float32)
    vol[:, :, 80] = np.nan
    nan_file = tmp_path / "nan_volume.nii.gz"
    nib.save(nib.Nifti1Image(vol, src.affine), nan_file)
    with pytest.raises(BaseException) as err:  # InferenceFailed is a SystemExit
        workflow(BUNDLE, ("inference",), "infer", bundle_root=str(root), input=str(nan_file), output_dir=str(tmp_path), **TEST_SIZE).run()
    assert "nan_volume.nii.gz' ('image'): 57600 voxels are NaN or infinite" in error_chain(err.value)

    with pytest.raises(BaseException) as err:  # InferenceFailed is a SystemExit
        workflow(BUNDLE, ("inference",), "infer", bundle_root=str(root), input=str(tmp_path / "missing_t1.nii.gz"), **TEST_SIZE).run()
    assert "no input image found at" in error_chain(err.value) and "missing_t1.nii.gz" in error_chain(err.value)

    with pytest.raises(Exception) as err:
        _train(data_dir, tmp_path / "b", iterations=1, target_contrast="pd")
    assert "no entry of section 'training' has all of ['pd', 't1']; its entries have ['flair', 't1', 't1c', 't2']" in error_chain(err.value)

    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"training": []}), encoding="utf-8")
    with pytest.raises(Exception) as err:
        _train(data_dir, tmp_path / "c", iterations=1, datalist=str(empty))
    assert "empty.json' has no entries in section 'training'" in error_chain(err.value)

    # a held-out T2 on another grid than its T1: the voxel-wise metrics would compare different anatomy
    other_grid = tmp_path / "t2_other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(src.dataobj, dtype=np.float32)[:, :, :150], src.affine), other_grid)
    datalist = json.loads((data_dir / "datalists/brain_mri_test.json").read_text(encoding="utf-8"))
    datalist["validation"] = [{"subject": "x", "t1": str(data_dir / TCGA_T1), "t2": str(other_grid)}]
    mismatched = tmp_path / "mismatched.json"
    mismatched.write_text(json.dumps(datalist), encoding="utf-8")
    with pytest.raises(Exception) as err:
        workflow(BUNDLE, ("train", "evaluate"), "eval", dataset_dir=str(data_dir), bundle_root=str(root),
                 datalist=str(mismatched), output_dir=str(tmp_path / "eval"), **TRAIN_TEST_SIZE).run()
    assert "t2_other_grid.nii.gz' ('label', 240x240x150, 1x1x1 mm, " in error_chain(err.value) and "not on the same voxel grid" in error_chain(err.value)
