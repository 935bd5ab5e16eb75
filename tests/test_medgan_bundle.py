"""The MedGAN bundle end to end on the real sample MRI: configs, paired sampling, training, resume, evaluation with
the baselines, inference, 3D mode, multi-process training and bad input, at small sizes on the CPU."""

from __future__ import annotations

import csv
import json
import os

import nibabel as nib
import numpy as np
import pytest
import monai
import torch
from monai.bundle import ConfigParser

from bundle_utils import (
    BUNDLES, MEDGAN_TEST_SIZE, MEDGAN_TRAIN_TEST_SIZE, check_metadata_and_network, check_resume, check_torchrun,
    error_chain, train, workflow,
)

BUNDLE = "medgan"
TCGA_T1 = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz"
GLI_T1 = "brain_mri/BraTS-GLI-00001-000/BraTS-GLI-00001-000-t1n.nii.gz"


def _train(data_dir, bundle_root, iterations, epochs=1, **overrides):
    return train(BUNDLE, data_dir, bundle_root, iterations, MEDGAN_TRAIN_TEST_SIZE, epochs, **overrides)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A bundle folder with test-size weights trained on real paired slices of the three training subjects."""
    root = tmp_path_factory.mktemp("medgan_bundle")
    _, outputs = _train(data_dir, root, iterations=120)
    return root, outputs


def test_metadata_and_network_checks():
    check_metadata_and_network(BUNDLE, "--num_ublocks", "1", "--gen_channels", "[4,4,4,4,4,4,4,4]")


@pytest.mark.parametrize("names, workflow_type", [(("train",), "train"), (("train", "evaluate"), "eval"),
                                                  (("inference",), "infer")])
def test_configs_initialise_with_all_properties(data_dir, tmp_path, names, workflow_type):
    size = MEDGAN_TEST_SIZE if workflow_type == "infer" else MEDGAN_TRAIN_TEST_SIZE
    torch.set_flush_denormal(False)
    wf = workflow(BUNDLE, names, workflow_type, dataset_dir=str(data_dir), bundle_root=str(tmp_path), **size)
    assert wf.check_properties() == []
    # denormal floats made the MedGAN step up to 28x slower on the CPU: every workflow flushes them to zero
    assert (torch.tensor([1e-39]) * 0.5).item() == 0.0
    net = wf.parser.get_parsed_content("network_def")
    assert type(net).__name__ == "CasNet" and net.num_ublocks == 2 and net.spatial_dims == 2


def test_default_sizes_and_weights_are_the_papers():
    train = json.loads((BUNDLES / BUNDLE / "configs/train.json").read_text(encoding="utf-8"))
    parser = ConfigParser(train)
    assert (train["num_ublocks"], parser.get_parsed_content("gen_channels")) == (6, [64, 128, 256, 512, 512, 512, 512, 512])
    parser["spatial_dims"] = 3  # 64^3 patches: 6 levels (each spatial size divisible by 64)
    assert parser.get_parsed_content("gen_channels", lazy=False) == [64, 128, 256, 512, 512, 512]
    assert (train["disc_filters"], train["disc_layers"], train["roi_size"].startswith("$[256, 256]")) == (64, 3, True)
    assert (train["lambda_perceptual"], train["lambda_style"], train["lambda_content"], train["lambda_pixel"]) == (20.0, 1e-4, 1e-4, 0.0)
    assert (train["generator_updates"], train["lr"], train["batch_size"]) == (3, 2e-4, 1)
    assert train["vgg_weights"].endswith("vgg19-dcbb9e9d.pth'")  # the paper's pretrained VGG-19, never "random" by default


def test_pairs_stay_paired_through_the_transforms(data_dir, tmp_path):
    """The source and target slices of a training sample are the same slice of the same subject."""
    wf = workflow(BUNDLE, ("train",), dataset_dir=str(data_dir), bundle_root=str(tmp_path), **MEDGAN_TRAIN_TEST_SIZE)
    items = wf.parser.get_parsed_content("train#datalist")
    assert [i["subject"] for i in items] == ["BraTS-MET-00110-000", "BraTS-GLI-00001-000", "CSTAR-stroke"]
    preprocessing = wf.parser.get_parsed_content("train#preprocessing")
    preprocessing.set_random_state(3)
    for item in items:
        for _ in range(3):
            out = preprocessing(dict(item))
            image, label = out["image"], out["label"]
            assert image.shape == label.shape == (1, 64, 64)
            assert image.meta["slice_index"] == label.meta["slice_index"]
            assert os.path.dirname(str(image.meta["filename_or_obj"])) == os.path.dirname(str(label.meta["filename_or_obj"]))
            # the same anatomy: the brain outlines of the two contrasts coincide on the slice
            inside_a, inside_b = image > -0.95, label > -0.95
            overlap = (inside_a & inside_b).sum() / (inside_a | inside_b).sum()
            assert overlap > 0.8


def test_training_on_real_slices_lowers_the_l1(trained):
    root, outputs = trained
    l1 = np.array([o["l1"] for o in outputs])
    assert len(l1) == 120 and all(np.isfinite(o["loss_G"]) and np.isfinite(o["loss_D"]) for o in outputs)
    first, last = l1[:20].mean(), l1[-20:].mean()
    assert last < 0.75 * first, f"L1 {first:.3f} -> {last:.3f}"
    assert {"loss_G_adv", "loss_perceptual", "loss_style", "loss_content", "loss_pixel"} <= set(outputs[0])
    assert (root / "models/model.pt").is_file()
    weights = torch.load(root / "models/model.pt", weights_only=True)
    assert any(k.startswith("blocks.1.") for k in weights)  # the whole cascade is the deployable network


def test_evaluate_writes_metrics_panel_and_the_baselines(trained, data_dir):
    root, _ = trained
    wf = workflow(BUNDLE, ("train", "evaluate"), "eval", dataset_dir=str(data_dir), bundle_root=str(root),
                  **MEDGAN_TRAIN_TEST_SIZE)
    wf.run()
    rows = dict(csv.reader(open(root / "eval/metrics.csv", encoding="utf-8")))
    psnr, ssim, mae, ncc = (float(rows[f"val_{m}"]) for m in ("psnr", "ssim", "mae", "ncc"))
    assert 5 < psnr < 40 and -1 <= ssim <= 1 and 0 < mae < 0.5 and -1 <= ncc <= 1
    comparison = json.loads((root / "eval/comparison.json").read_text(encoding="utf-8"))
    methods = comparison["methods"]
    assert set(methods) == {"model", "model_fitted", "linear", "histogram"}
    assert methods["model_fitted"]["psnr"] >= methods["model"]["psnr"] - 1e-6  # the oracle line can only help
    assert methods["model"]["psnr"] == pytest.approx(psnr, abs=1e-4)  # the same metric code scores all three
    assert comparison["histogram_direction"] == "decreasing"  # T1 -> T2 inverts the contrast
    assert methods["linear"]["ncc"] > 0.3 and methods["histogram"]["ncc"] > 0.3
    assert (root / "eval/comparison.md").read_text(encoding="utf-8").startswith("| method | psnr | ssim | mae | ncc |")
    assert (root / "eval/TCGA-DU-7294_t1_bet_normalized_panel.png").is_file()


@pytest.mark.parametrize("path", [TCGA_T1, GLI_T1])
def test_inference_keeps_geometry_and_intensity_scale(trained, data_dir, tmp_path, path):
    root, _ = trained
    wf = workflow(BUNDLE, ("inference",), "infer", bundle_root=str(root), input=str(data_dir / path),
                  output_dir=str(tmp_path), **MEDGAN_TEST_SIZE)
    wf.run()
    src = nib.load(data_dir / path)
    out = nib.load(tmp_path / os.path.basename(path).replace(".nii.gz", "_synthetic_t2.nii.gz"))
    assert out.shape == src.shape and out.get_data_dtype() == np.float32
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    values, raw = out.get_fdata(), np.asarray(src.dataobj, dtype=np.float32)
    lo, hi = np.percentile(raw[raw != 0], [0.5, 99.5])
    assert np.isfinite(values).all() and values.max() <= hi * (1 + 1e-3) and values.min() >= lo - 1e-3 * hi


def test_resume_continues_with_the_same_optimiser_state(data_dir, tmp_path):
    check_resume(BUNDLE, data_dir, tmp_path, MEDGAN_TRAIN_TEST_SIZE, optimizer="D", network="D")


def test_3d_patch_mode_trains_and_infers(data_dir, tmp_path):
    size = {"spatial_dims": 3, "roi_size": [16, 16, 16], "num_ublocks": 1, "gen_channels": [4, 8], "pixdim": [4.0, 4.0, 4.0]}
    _, outputs = _train(data_dir, tmp_path, iterations=2, disc_filters=4, disc_layers=1, **{**size, "vgg_weights": "random"})
    assert len(outputs) == 2 and all(np.isfinite(o["loss_G"]) for o in outputs)
    wf = workflow(BUNDLE, ("inference",), "infer", bundle_root=str(tmp_path), input=str(data_dir / TCGA_T1),
                  output_dir=str(tmp_path / "out"), **size)
    assert type(wf.parser.get_parsed_content("inferer")).__name__ == "SlidingWindowInferer"
    wf.run()
    out = nib.load(tmp_path / "out/TCGA-DU-7294_t1_bet_normalized_synthetic_t2.nii.gz")
    assert out.shape == nib.load(data_dir / TCGA_T1).shape


def test_2_5d_input_trains_and_keeps_inference_geometry(data_dir, tmp_path):
    """context_slices 3: the network reads each slice with its two neighbours; the output keeps the input's grid."""
    _, outputs = _train(data_dir, tmp_path, iterations=2, context_slices=3)
    assert len(outputs) == 2 and all(np.isfinite(o["loss_G"]) for o in outputs)
    weights = torch.load(tmp_path / "models/model.pt", weights_only=True)
    assert weights["blocks.0.model.0.0.conv.weight"].shape[1] == 3  # the first convolution reads three slices
    wf = workflow(BUNDLE, ("inference",), "infer", bundle_root=str(tmp_path), input=str(data_dir / TCGA_T1),
                  output_dir=str(tmp_path / "out"), context_slices=3, **MEDGAN_TEST_SIZE)
    wf.run()
    out, src = nib.load(tmp_path / "out/TCGA-DU-7294_t1_bet_normalized_synthetic_t2.nii.gz"), nib.load(data_dir / TCGA_T1)
    assert out.shape == src.shape
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    assert np.isfinite(out.get_fdata()).all()


def test_multi_gpu_config_runs_two_processes_on_cpu(data_dir, tmp_path):
    check_torchrun(BUNDLE, data_dir, tmp_path, MEDGAN_TRAIN_TEST_SIZE, network="G")


def test_multi_gpu_ranks_draw_their_own_slices_from_the_users_seed_and_a_resume_continues_them(data_dir, tmp_path):
    """Under torchrun (gloo, 2 processes) with --seed 5 the two ranks draw different slices; the same seed draws the
    same again, another seed others; a run stopped after epoch 1 and resumed draws epoch 2 as the uninterrupted run."""
    import subprocess
    import sys

    from bundle_utils import GLOO_ABORT, ROOT, datalist_override

    def draws(root, seed, epochs, resume=False):
        overrides = {"dataset_dir": str(data_dir), "bundle_root": str(root), "iterations_per_epoch": 3, "n_epochs": epochs,
                     "n_epochs_decay": 0, "val_interval": 100, "seed": seed, "resume": resume,
                     **datalist_override(BUNDLE), **MEDGAN_TRAIN_TEST_SIZE}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(ROOT / "tests/ddp_draws.py"),
               BUNDLE, json.dumps(overrides)]
        for _ in range(2):  # one retry for the rare gloo abort at start-up (bundle_utils.GLOO_ABORT), never for other errors
            result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
            if result.returncode == 0 or GLOO_ABORT not in result.stderr:
                break
        assert result.returncode == 0, result.stderr[-3000:]
        return [json.loads((root / f"draws_rank{r}.json").read_text(encoding="utf-8")) for r in (0, 1)]

    rank0, rank1 = draws(tmp_path / "a", seed=5, epochs=2)
    assert [e for e, _ in rank0] == [1, 1, 1, 2, 2, 2] and len(rank1) == 6
    assert rank0 != rank1  # the ranks' slices differ: DDP does not average identical gradients
    assert draws(tmp_path / "b", seed=5, epochs=2) == [rank0, rank1]  # the user's seed reproduces them
    assert draws(tmp_path / "c", seed=6, epochs=2)[0] != rank0  # and another seed changes them
    draws(tmp_path / "d", seed=5, epochs=1)
    resumed = draws(tmp_path / "d", seed=5, epochs=2, resume=True)
    assert resumed == [rank0[3:], rank1[3:]]  # epoch 2 alone, drawn as the uninterrupted run drew it


def test_bad_input_errors_name_the_file_or_key(data_dir, tmp_path):
    # no VGG-19 file: stops before training and says what to get and where
    with pytest.raises(Exception) as err:
        _train(data_dir, tmp_path / "a", iterations=1, vgg_weights=str(tmp_path / "models/vgg19-dcbb9e9d.pth"))
    assert "vgg19-dcbb9e9d.pth" in error_chain(err.value) and "vgg_weights" in error_chain(err.value)
    assert not (tmp_path / "a/models/checkpoints").exists()
    # a file with the wrong layout
    wrong = tmp_path / "wrong_vgg.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, wrong)
    with pytest.raises(Exception) as err:
        _train(data_dir, tmp_path / "b", iterations=1, vgg_weights=str(wrong))
    assert "wrong_vgg.pth" in error_chain(err.value)
    # the target contrast missing from every subject
    with pytest.raises(Exception) as err:
        _train(data_dir, tmp_path / "c", iterations=1, target_contrast="pd")
    assert "has all of ['pd', 't1']" in error_chain(err.value)
    # source and target on different grids
    t1 = nib.load(data_dir / TCGA_T1)
    shifted = tmp_path / "t2_other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj, dtype=np.float32)[:, :, :150], t1.affine), shifted)
    datalist = tmp_path / "pairs.json"
    datalist.write_text(json.dumps({"training": [{"subject": "x", "t1": str(data_dir / TCGA_T1), "t2": str(shifted)}]}), encoding="utf-8")
    with pytest.raises(Exception) as err:
        _train(data_dir, tmp_path / "d", iterations=1, datalist=str(datalist))
    assert "t2_other_grid.nii.gz' ('label', 240x240x150, 1x1x1 mm, " in error_chain(err.value) and "not on the same voxel grid" in error_chain(err.value)


def test_motion_correction_overlay_trains_and_scores_the_corrupted_input(data_dir, tmp_path):
    """MedGAN's second task: clean T1 from T1 corrupted on the fly by k-space motion. Its weights and results go to
    their own files, and the evaluation scores the corrupted input itself beside the restored one."""
    overrides = dict(dataset_dir=str(data_dir), bundle_root=str(tmp_path), iterations_per_epoch=30, n_epochs=1,
                     n_epochs_decay=1, val_interval=100, **{"train#trainer#max_epochs": 1, **MEDGAN_TRAIN_TEST_SIZE})
    wf = workflow(BUNDLE, ("train", "motion_correction"), **overrides)
    sample = wf.parser.get_parsed_content("train#preprocessing")(dict(wf.parser.get_parsed_content("train#datalist")[0]))
    assert sample["image"].meta["slice_index"] == sample["label"].meta["slice_index"]
    assert float((sample["image"] - sample["label"]).abs().max()) > 0.05  # the source is the corrupted target
    # the intensity augmentation changes the source and the target alike (other sites' contrasts, the pair kept)
    augmentation = monai.transforms.Compose(wf.parser.get_parsed_content("motion_augmentation"))
    clean = sample["label"].clone()
    changed = 0
    for seed in range(4):
        augmentation.set_random_state(seed)
        pair = augmentation({"image": clean.clone(), "label": clean.clone()})
        assert torch.equal(pair["image"], pair["label"])
        changed += not torch.allclose(pair["label"], clean)
    assert changed >= 2
    assert wf.parser.get_parsed_content("G").residual  # the network predicts the correction of its input
    wf.run()
    assert (tmp_path / "models/model_motion.pt").is_file() and not (tmp_path / "models/model.pt").exists()
    # inference with the same overlay builds the residual network and loads the motion weights by default
    infer = workflow(BUNDLE, ("inference", "motion_correction"), "infer", bundle_root=str(tmp_path),
                     input=str(data_dir / TCGA_T1), output_dir=str(tmp_path / "restored"), **MEDGAN_TEST_SIZE)
    assert infer.parser.get_parsed_content("network_def").residual
    infer.run()
    assert [p.name for p in (tmp_path / "restored").glob("*.nii.gz")] == ["TCGA-DU-7294_t1_bet_normalized_restored_t1.nii.gz"]

    ev = workflow(BUNDLE, ("train", "evaluate", "motion_correction"), "eval", **overrides)
    # the held-out volume is corrupted the same way whatever drew random numbers before (a DataLoader reseeds)
    item = {k: v for k, v in ev.parser.get_parsed_content("validate#datalist")[0].items() if k != "subject"}
    preprocessing = ev.parser.get_parsed_content("validate#preprocessing")
    first = preprocessing(dict(item))["image"]
    preprocessing.set_random_state(99)
    torch.rand(100)
    assert torch.equal(first, preprocessing(dict(item))["image"])
    ev.run()
    comparison = json.loads((tmp_path / "eval_motion/comparison.json").read_text(encoding="utf-8"))["methods"]
    assert set(comparison) == {"model", "model_fitted", "source", "linear", "histogram"}
    corrupted = comparison["source"]
    assert 10 < corrupted["psnr"] < 40 and 0 < corrupted["ssim"] < 0.99  # motion ghosts, not a clean image
    assert (tmp_path / "eval_motion/TCGA-DU-7294_t1_bet_normalized_panel.png").is_file()


def test_spatial_augmentation_moves_source_and_target_together(data_dir, tmp_path):
    """--spatial_augmentation @random_affine: one random affine for both images of a pair. With the T1 as its own
    target the two stay equal voxel for voxel, and the slices differ from the same draws without it."""
    def slices(**overrides):
        wf = workflow(BUNDLE, ("train",), dataset_dir=str(data_dir), bundle_root=str(tmp_path), target_contrast="t1",
                      **MEDGAN_TRAIN_TEST_SIZE, **overrides)
        dataset = wf.parser.get_parsed_content("train#dataset")
        dataset.transform.set_random_state(seed=3)
        return [dataset[i] for i in range(3)]

    moved, plain = slices(spatial_augmentation="@random_affine"), slices()
    for a, b in zip(moved, plain):
        assert torch.equal(a["image"], a["label"]) and a["image"].shape == b["image"].shape
    assert any(not torch.allclose(a["image"], b["image"]) for a, b in zip(moved, plain))
