"""The AE-GAN bundle end to end on the real sample MRI: configs, multi-contrast sampling, training, resume, the
evaluation of every input combination beside the baselines, inference from 1, 2 and 3 contrasts, 3D mode,
multi-process training and bad input, at small sizes on the CPU."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from bundle_utils import (
    AE_GAN_TEST_SIZE, BUNDLES, check_metadata_and_network, check_resume, check_torchrun, error_chain, train, workflow,
)

BUNDLE = "ae_gan"
TCGA = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_{}_bet_normalized.nii.gz"
FILES = {"t1": "t1", "t1c": "t1c", "t2": "t2", "flair": "fla"}


def _path(data_dir, contrast):
    return str(data_dir / TCGA.format(FILES[contrast]))


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A bundle folder with test-size weights trained on real slices of the three training subjects."""
    root = tmp_path_factory.mktemp("ae_gan_bundle")
    _, outputs = train(BUNDLE, data_dir, root, 120, AE_GAN_TEST_SIZE)
    return root, outputs


def test_metadata_and_network_checks():
    check_metadata_and_network(BUNDLE, "--num_filters", "4", "--num_res_blocks", "1")


@pytest.mark.parametrize("names, workflow_type", [(("train",), "train"), (("train", "evaluate"), "eval"),
                                                  (("inference",), "infer")])
def test_configs_initialise_with_all_properties(data_dir, tmp_path, names, workflow_type):
    extra = {"t1": _path(data_dir, "t1")} if workflow_type == "infer" else {}
    wf = workflow(BUNDLE, names, workflow_type, dataset_dir=str(data_dir), bundle_root=str(tmp_path), **AE_GAN_TEST_SIZE, **extra)
    assert wf.check_properties() == []
    net = wf.parser.get_parsed_content("network_def")
    assert type(net).__name__ == "MultiContrastSynthesisNet" and net.num_inputs == 3 and net.spatial_dims == 2


def test_default_sizes_and_weights_are_the_authors():
    train_cfg = json.loads((BUNDLES / BUNDLE / "configs/train.json").read_text(encoding="utf-8"))
    assert (train_cfg["num_filters"], train_cfg["num_res_blocks"], train_cfg["dropout"], train_cfg["se_reduction"]) == (64, 6, 0.5, 16)
    assert (train_cfg["lambda_adv"], train_cfg["lambda_l1"], train_cfg["lambda_rec"], train_cfg["lambda_sr"]) == (1.0, 100.0, 100.0, 0.1)
    assert (train_cfg["sr_decay"], train_cfg["sr_decay_interval"]) == (0.05, 5000)
    assert (train_cfg["lr"], train_cfg["batch_size"], train_cfg["n_epochs"], train_cfg["n_epochs_decay"]) == (1e-4, 1, 300, 0)
    assert train_cfg["roi_size"].startswith("$[256, 256]") and train_cfg["target_contrast"] == "t2"
    assert train_cfg["input_subsets"] == "all"  # the paper trains with only the target missing
    parser = ConfigParser(train_cfg)
    assert parser.get_parsed_content("input_contrasts") == ["t1", "t1c", "flair"]


def test_samples_keep_contrasts_aligned_and_flag_the_missing_t1c(data_dir, tmp_path):
    wf = workflow(BUNDLE, ("train",), dataset_dir=str(data_dir), bundle_root=str(tmp_path), **AE_GAN_TEST_SIZE)
    items = wf.parser.get_parsed_content("train#datalist")
    assert [i["subject"] for i in items] == ["BraTS-MET-00110-000", "BraTS-GLI-00001-000", "CSTAR-stroke"]
    assert "t1c" not in items[2]
    preprocessing = wf.parser.get_parsed_content("train#preprocessing")
    preprocessing.set_random_state(3)
    for item in items:
        out = preprocessing(dict(item))
        image, label = out["image"], out["label"]
        assert image.shape == (6, 64, 64) and label.shape == (1, 64, 64)
        flags = image[3:].flatten(1).amax(1)
        assert flags.tolist() == ([0.0, 1.0, 0.0] if item["subject"] == "CSTAR-stroke" else [0.0, 0.0, 0.0])
        brain = label > -0.95
        for c in range(3):
            if flags[c] == 0:  # the same anatomy in every given contrast and the target
                inside = image[c] > -0.95
                assert (inside & brain[0]).sum() / (inside | brain[0]).sum() > 0.8


def test_training_on_real_slices_lowers_the_l1(trained):
    root, outputs = trained
    l1 = np.array([o["l1"] for o in outputs])
    assert len(l1) == 120 and all(np.isfinite(o["loss_S"]) and np.isfinite(o["loss_A"]) for o in outputs)
    first, last = l1[:20].mean(), l1[-20:].mean()
    assert last < 0.75 * first, f"L1 {first:.3f} -> {last:.3f}"
    rec = np.array([o["loss_rec"] for o in outputs])
    assert rec[-20:].mean() < 0.75 * rec[:20].mean()  # the autoencoder learns to reconstruct the target
    weights = torch.load(root / "models/model.pt", weights_only=True)
    assert any(k.startswith("branches.2.") for k in weights) and not any(k.startswith("head.") for k in weights)


def test_evaluate_scores_every_input_combination_beside_the_baselines(trained, data_dir):
    root, _ = trained
    wf = workflow(BUNDLE, ("train", "evaluate"), "eval", dataset_dir=str(data_dir), bundle_root=str(root), **AE_GAN_TEST_SIZE)
    wf.run()
    rows = dict(csv.reader(open(root / "eval/metrics.csv", encoding="utf-8")))
    assert 5 < float(rows["val_psnr"]) < 40 and -1 <= float(rows["val_ncc"]) <= 1
    groups = json.loads((root / "eval/comparison.json").read_text(encoding="utf-8"))["groups"]
    assert list(groups) == ["t1+t1c+flair", "t1+t1c", "t1+flair", "t1c+flair", "t1", "t1c", "flair"]
    for methods in groups.values():
        assert set(methods) == {"model", "model_fitted", "linear", "histogram"}
        assert methods["model_fitted"]["psnr"] >= methods["model"]["psnr"] - 1e-6
    # the best single input of a combination is at least as good as each input alone
    for combination, methods in groups.items():
        for single in combination.split("+"):
            assert methods["linear"]["psnr"] >= groups[single]["linear"]["psnr"] - 1e-6
    # each combination gives the model a different input (the outputs differ)
    assert len({round(m["model"]["psnr"], 6) for m in groups.values()}) > 1
    md = (root / "eval/comparison.md").read_text(encoding="utf-8")
    assert md.startswith("| inputs | method | psnr | ssim | mae | ncc |") and md.count("\n") == 2 + 7 * 4
    assert (root / "eval/TCGA-DU-7294_t1c_bet_normalized_t1c_flair_panel.png").is_file()


@pytest.mark.parametrize("given", [("flair",), ("t1", "flair"), ("t1", "t1c", "flair")])
def test_inference_from_any_inputs_writes_nifti_on_their_grid(trained, data_dir, tmp_path, given):
    root, _ = trained
    wf = workflow(BUNDLE, ("inference",), "infer", bundle_root=str(root), output_dir=str(tmp_path), **AE_GAN_TEST_SIZE,
                  **{c: _path(data_dir, c) for c in given})
    wf.run()
    first = _path(data_dir, given[0])
    (written,) = tmp_path.glob("*.nii.gz")
    assert written.name == first.split("/")[-1].replace(".nii.gz", "_synthetic_t2.nii.gz")
    src, out = nib.load(first), nib.load(written)
    assert out.shape == src.shape and out.get_data_dtype() == np.float32
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    values, raw = out.get_fdata(), np.asarray(src.dataobj, dtype=np.float32)
    assert np.isfinite(values).all() and values.std() > 0
    # the first given input's intensity scale: its brain's 0.5..99.5 percentiles (taken on the resampled grid by
    # the bundle, here on the file's, hence the 5 % slack)
    lo, hi = np.percentile(raw[np.abs(raw) > 1e-3 * np.abs(raw).max()], [0.5, 99.5])
    assert lo - 0.05 * (hi - lo) <= values.min() and values.max() <= hi + 0.05 * (hi - lo)


def test_resume_continues_with_the_same_optimiser_state(data_dir, tmp_path):
    check_resume(BUNDLE, data_dir, tmp_path, AE_GAN_TEST_SIZE, optimizer="S", network="A")


def test_3d_patch_mode_trains_and_infers(data_dir, tmp_path):
    size = {"spatial_dims": 3, "roi_size": [16, 16, 16], "num_filters": 4, "num_res_blocks": 1, "pixdim": [4.0, 4.0, 4.0]}
    _, outputs = train(BUNDLE, data_dir, tmp_path, 2, size)
    assert len(outputs) == 2 and all(np.isfinite(o["loss_S"]) for o in outputs)
    wf = workflow(BUNDLE, ("inference",), "infer", bundle_root=str(tmp_path), t1=_path(data_dir, "t1"),
                  t1c=_path(data_dir, "t1c"), output_dir=str(tmp_path / "out"), **size)
    assert type(wf.parser.get_parsed_content("inferer")).__name__ == "SlidingWindowInferer"
    wf.run()
    out = nib.load(tmp_path / "out/TCGA-DU-7294_t1_bet_normalized_synthetic_t2.nii.gz")
    assert out.shape == nib.load(_path(data_dir, "t1")).shape


def test_2_5d_input_trains_evaluates_and_keeps_inference_geometry(data_dir, tmp_path):
    """context_slices 3: each branch reads its contrast's slice with the two neighbours, in training, in the
    evaluation of every input combination and at inference, whose output keeps the first input's grid."""
    size = {**AE_GAN_TEST_SIZE, "context_slices": 3}
    _, outputs = train(BUNDLE, data_dir, tmp_path, 2, size)
    assert len(outputs) == 2 and all(np.isfinite(o["loss_S"]) for o in outputs)
    weights = torch.load(tmp_path / "models/model.pt", weights_only=True)
    first_convs = [v for k, v in weights.items() if k.startswith("branches.") and k.endswith(".1.conv.weight")]
    assert len(first_convs) == 3 and all(w.shape[1] == 3 for w in first_convs)
    wf = workflow(BUNDLE, ("train", "evaluate"), "eval", dataset_dir=str(data_dir), bundle_root=str(tmp_path),
                  eval_input_sizes=[3, 1], **size)
    wf.run()
    groups = json.loads((tmp_path / "eval/comparison.json").read_text(encoding="utf-8"))["groups"]
    assert list(groups) == ["t1+t1c+flair", "t1", "t1c", "flair"]
    assert all(np.isfinite(m["model"]["psnr"]) for m in groups.values())
    wf = workflow(BUNDLE, ("inference",), "infer", bundle_root=str(tmp_path), t1=_path(data_dir, "t1"),
                  flair=_path(data_dir, "flair"), output_dir=str(tmp_path / "out"), **size)
    wf.run()
    out, src = nib.load(tmp_path / "out/TCGA-DU-7294_t1_bet_normalized_synthetic_t2.nii.gz"), nib.load(_path(data_dir, "t1"))
    assert out.shape == src.shape
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    assert np.isfinite(out.get_fdata()).all()


def test_multi_gpu_config_runs_two_processes_on_cpu(data_dir, tmp_path):
    check_torchrun(BUNDLE, data_dir, tmp_path, AE_GAN_TEST_SIZE, network="S")


def test_bad_input_errors_name_the_key_or_file(trained, data_dir, tmp_path):
    root, _ = trained

    def infer(**inputs):
        with pytest.raises(BaseException) as err:  # InferenceFailed is a SystemExit
            workflow(BUNDLE, ("inference",), "infer", bundle_root=str(root), output_dir=str(tmp_path / "out"),
                     **AE_GAN_TEST_SIZE, **inputs).run()
        return error_chain(err.value)

    assert "'t2' is the target_contrast and was also given as an input" in infer(t1=_path(data_dir, "t1"), t2=_path(data_dir, "t2"))
    assert "no input image given: pass at least one of --t1 FILE --t1c FILE --flair FILE" in infer()
    assert "target_contrast 't3' is not one of the contrasts" in infer(t1=_path(data_dir, "t1"), target_contrast="t3")
    t1 = nib.load(_path(data_dir, "t1"))
    cropped = tmp_path / "flair_other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj, dtype=np.float32)[:, :, :150], t1.affine), cropped)
    message = infer(t1=_path(data_dir, "t1"), flair=str(cropped))
    assert "flair_other_grid.nii.gz' ('flair', 240x240x150, 1x1x1 mm, LPS" in message and "not on the same voxel grid" in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
