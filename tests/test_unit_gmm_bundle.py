"""The patch-based Gaussian-mixture UNIT bundle end to end on the real sample CT: configs, training, resume,
evaluation against the HU-histogram baseline, inference in HU with the input's geometry, seamless sliding-window
tiling, 3D mode, multi-process training and bad input. Small networks on 4 mm volumes keep it to CPU seconds."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.inferers import SliceInferer
from PIL import Image

from common.networks import SharedLatentVAEs

from bundle_utils import (
    BUNDLES, UNIT_GMM_TEST_SIZE, UNIT_GMM_TRAIN_TEST_SIZE, check_metadata_and_network, check_resume, check_torchrun,
    error_chain, train, workflow,
)

BUNDLE = "unit_gmm"
NON_CONTRAST = "ct/example_ct_sm.nii.gz"
CHEST_LPS = "ct/aorta_report_test_result_models_ct_cropped.nii.gz"  # contrast CT in LPS at 1.5 mm: another grid
TCGA_T1 = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz"


def _train(data_dir, bundle_root, iterations, epochs=1, **overrides):
    return train(BUNDLE, data_dir, bundle_root, iterations, UNIT_GMM_TRAIN_TEST_SIZE, epochs, **overrides)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A bundle folder holding test-size weights trained on co-located patches of the real CT, and the losses."""
    root = tmp_path_factory.mktemp("unit_gmm_bundle")
    _, outputs = _train(data_dir, root, iterations=200)
    return root, outputs


def _infer(root, data_dir, path, out, **size):
    wf = workflow(BUNDLE, ("inference",), "infer", bundle_root=str(root), input=str(data_dir / path), output_dir=str(out),
                  **{**UNIT_GMM_TEST_SIZE, **size})
    wf.run()
    return wf


def test_metadata_and_network_checks():
    check_metadata_and_network(BUNDLE, "--num_filters", "8", "--num_res_blocks", "2")


@pytest.mark.parametrize("names, workflow_type", [(("train",), "train"), (("train", "evaluate"), "eval"),
                                                  (("inference",), "infer")])
def test_configs_initialise_with_all_properties(data_dir, tmp_path, names, workflow_type):
    wf = workflow(BUNDLE, names, workflow_type, dataset_dir=str(data_dir), bundle_root=str(tmp_path), **UNIT_GMM_TRAIN_TEST_SIZE)
    assert wf.check_properties() == []
    net = wf.parser.get_parsed_content("network_def")
    assert type(net).__name__ == "SharedLatentVAEs" and net.spatial_dims == 2 and net.source_domain == 0


def test_weight_decay_spares_the_mixture_prior(data_dir, tmp_path):
    """UNIT's weight decay is for the networks' weights; on the prior's means, log-variances and weight logits it
    would pull every component towards N(0, I) with equal weights, undoing the mixture."""
    wf = workflow(BUNDLE, ("train",), dataset_dir=str(data_dir), bundle_root=str(tmp_path), **UNIT_GMM_TRAIN_TEST_SIZE)
    optimiser = wf.parser.get_parsed_content("optimizer_G")
    prior = {id(p) for p in wf.parser.get_parsed_content("networks#prior").parameters()}
    generator = {id(p) for p in wf.parser.get_parsed_content("networks#G").parameters()}
    decay = {id(p): group["weight_decay"] for group in optimiser.param_groups for p in group["params"]}
    assert set(decay) == prior | generator and prior and generator
    assert {decay[i] for i in prior} == {0.0} and {decay[i] for i in generator} == {0.0001}


def test_default_sizes_are_the_papers():
    train_cfg = json.loads((BUNDLES / BUNDLE / "configs/train.json").read_text(encoding="utf-8"))
    # UNIT (Liu et al. 2017): 64 filters, 4 residual blocks per side of which 1 shared; its lambda_0..4 = 10, 0.1, 100,
    # 0.1, 100 (here named after what they weigh); Adam 1e-4, betas (0.5, 0.999), weight decay 1e-4, batch 1
    assert (train_cfg["num_filters"], train_cfg["num_res_blocks"], train_cfg["num_shared_blocks"]) == (64, 4, 1)
    weights = ("lambda_adversarial", "lambda_kl", "lambda_reconstruction", "lambda_cycle_kl", "lambda_cycle")
    assert [train_cfg[k] for k in weights] == [10.0, 0.1, 100.0, 0.1, 100.0]
    assert (train_cfg["lr"], train_cfg["weight_decay"], train_cfg["batch_size"], train_cfg["spatial_dims"]) == (0.0001, 0.0001, 1, 2)
    inference = json.loads((BUNDLES / BUNDLE / "configs/inference.json").read_text(encoding="utf-8"))
    assert all(inference[k] == train_cfg[k] for k in ("num_filters", "num_res_blocks", "num_shared_blocks", "gen_norm", "gen_output_activation", "pixdim", "hu_window"))


def test_training_on_real_ct_patches_reduces_the_reconstruction_loss(trained):
    root, outputs = trained
    recon = np.array([o["recon_l1"] for o in outputs])
    assert len(recon) == 200 and all(np.isfinite(o["loss_G"]) and np.isfinite(o["kl"]) for o in outputs)
    first, last = recon[:20].mean(), recon[-20:].mean()
    assert last < 0.6 * first, f"reconstruction L1 {first:.3f} -> {last:.3f}"
    assert (root / "models/model.pt").is_file()
    saved = torch.load(root / "models/checkpoints/checkpoint_200.pt", weights_only=True)
    assert {"G", "prior", "D1", "D2", "optimizer_G", "optimizer_D"} <= set(saved)
    assert saved["prior"]["means"].shape == (4, 32)  # K = 4 components over the 4 x 8 latent channels


def test_evaluate_writes_figures_comparison_and_panel(trained, data_dir):
    root, _ = trained
    wf = workflow(BUNDLE, ("train", "evaluate"), "eval", dataset_dir=str(data_dir), bundle_root=str(root), **UNIT_GMM_TRAIN_TEST_SIZE)
    wf.run()
    rows = {k: float(v) for k, v in csv.reader(open(root / "eval/metrics.csv", encoding="utf-8"))}
    assert set(rows) == set(BUNDLES_SPEC_METRICS)
    assert all(np.isfinite(v) for v in rows.values()) and rows["val_cycle_mae_hu"] > 0
    assert wf.evaluator.state.metrics["val_vessel_gain_hu"] == pytest.approx(rows["val_vessel_gain_hu"])

    comparison = json.loads((root / "eval/comparison.json").read_text(encoding="utf-8"))
    (volume,) = comparison["volumes"]
    assert volume["volume"] == "example_ct_sm" and set(volume["figures"]) == {"input", "model", "histogram"}
    regions = volume["regions"]["input"]
    # the real non-contrast scan: blood and organs at their native HU, lungs as air-filled tissue
    assert 20 < regions["aorta"]["before"] < 70 and 30 < regions["liver"]["before"] < 70
    assert regions["lung"]["before"] < -600 and regions["bone"]["before"] > 120
    assert volume["figures"]["model"]["vessel_gain_hu"] == pytest.approx(rows["val_vessel_gain_hu"], abs=1e-6)
    # the baseline maps body HU up (contrast scans are brighter); it leaves the lungs (below -500 HU) alone
    assert volume["regions"]["histogram"]["aorta"]["gain"] > 0
    assert volume["regions"]["histogram"]["lung"]["abs_change"] < 50
    md = (root / "eval/comparison.md").read_text(encoding="utf-8")
    assert "| aorta |" in md and "HU-histogram mapping" in md

    panel = Image.open(root / "eval/example_ct_sm_panel.png")
    # three columns (input, synthetic contrast, cycle; no target, so no error map), rows of three axial slices and a
    # coronal one under the same columns, the axial tiles enlarged to at least 256 pixels, under a 20-pixel title bar
    assert panel.height > 20 + 3 * 256 and 3 * 256 <= panel.width


BUNDLES_SPEC_METRICS = ("val_vessel_gain_hu", "val_vessel_hu", "val_organ_gain_hu", "val_stable_change_hu", "val_cycle_mae_hu")


@pytest.mark.parametrize("path", [NON_CONTRAST, CHEST_LPS])
def test_inference_writes_hu_with_the_inputs_geometry(trained, data_dir, tmp_path, path):
    root, _ = trained
    _infer(root, data_dir, path, tmp_path)
    src = nib.load(data_dir / path)
    out = nib.load(tmp_path / path.split("/")[-1].replace(".nii.gz", "_synthetic_contrast.nii.gz"))
    assert out.shape == src.shape and out.get_data_dtype() == np.float32
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    assert nib.aff2axcodes(out.affine) == nib.aff2axcodes(src.affine)
    values, raw = out.get_fdata(), np.asarray(src.dataobj, dtype=np.float32)
    assert np.isfinite(values).all()
    # in HU (not the network's -1..1): inside the window -1024..2048 and spread over hundreds of HU
    assert values.min() >= -1024 - 1e-3 and values.max() <= 2048 + 1e-3 and values.std() > 50
    assert raw.min() < -900  # the input was HU too


def _seam_ratio(out: torch.Tensor, roi: int, overlap: float) -> float:
    """Mean |step between neighbouring rows| across the tile edges of MONAI's sliding window, over the mean step
    elsewhere, along the first in-plane axis of (N, 1, X, Y) slices: about 1 without seams."""
    size = out.shape[2]
    interval = max(int(roi * (1 - overlap)), 1)
    starts = sorted({min(i * interval, size - roi) for i in range(-(-(size - roi) // interval) + 1)})
    edges = sorted({s for s in starts if s > 0} | {s + roi for s in starts if s + roi < size})
    steps = (out[:, :, 1:] - out[:, :, :-1]).abs().mean(dim=(0, 1, 3))  # (size - 1,): step from row i to i + 1
    at_edges = steps[[e - 1 for e in edges]]
    others = steps[[i for i in range(size - 1) if i + 1 not in edges]]
    return float(at_edges.mean() / others.mean())


def test_sliding_window_tiles_without_seams(trained, data_dir):
    """The configured inferer (32x32 tiles, overlap 0.25, Gaussian blending) leaves no step at the tile edges, for the
    trained network and for one with instance norm (which normalises each tile on its own). The check does see a
    seam: the same output with each 32-row tile shifted by the typical row-to-row step fails it."""
    root, _ = trained
    wf = workflow(BUNDLE, ("inference",), "infer", bundle_root=str(root), input=str(data_dir / NON_CONTRAST), **UNIT_GMM_TEST_SIZE)
    trained_net = wf.parser.get_parsed_content("network")
    trained_net.load_state_dict(torch.load(root / "models/model.pt", weights_only=True))
    torch.manual_seed(0)
    instance_norm_net = SharedLatentVAEs(2, num_filters=8, num_res_blocks=2, norm="INSTANCE")
    image = wf.parser.get_parsed_content("preprocessing")({"image": str(data_dir / NON_CONTRAST)})["image"][None]
    assert image.shape[2] > 64  # several tiles across
    inferer = wf.parser.get_parsed_content("inferer")
    assert isinstance(inferer, SliceInferer) and np.allclose(inferer.overlap, 0.25) and inferer.mode == "gaussian"
    slices = lambda v: v[0].permute(3, 0, 1, 2)  # noqa: E731  (1, X, Y, Z) -> (Z, 1, X, Y)
    outputs, ratios = {}, {}
    with torch.no_grad():
        for name, net in (("trained", trained_net), ("instance norm", instance_norm_net)):
            net.eval()
            outputs[name] = slices(inferer(image.as_tensor(), net))
            ratios[name] = _seam_ratio(outputs[name], 32, 0.25)
    assert max(ratios.values()) < 1.5, ratios

    out = outputs["trained"]
    step = float((out[:, :, 1:] - out[:, :, :-1]).abs().mean())
    tile = torch.arange(out.shape[2]) // 32  # tiles of 32 rows, abutting
    seamed = out + (step * (1 - 2 * (tile % 2))).view(1, 1, -1, 1)  # +step, -step, ... per tile
    assert _seam_ratio(seamed, 32, 0.0) > 1.5, _seam_ratio(seamed, 32, 0.0)


def test_resume_continues_at_the_saved_iteration(data_dir, tmp_path):
    check_resume(BUNDLE, data_dir, tmp_path, UNIT_GMM_TRAIN_TEST_SIZE, optimizer="G", network="G", per_epoch=4)


def test_3d_patch_mode_trains_and_infers(data_dir, tmp_path):
    size = {"spatial_dims": 3, "roi_size": [16, 16, 16], "num_filters": 4, "num_res_blocks": 1, "pixdim": [4.0, 4.0, 4.0]}
    _, outputs = _train(data_dir, tmp_path, iterations=3, disc_filters=4, disc_layers=1, **size)
    assert len(outputs) == 3 and all(np.isfinite(o["loss_G"]) for o in outputs)
    wf = _infer(tmp_path, data_dir, NON_CONTRAST, tmp_path / "out", **size)
    assert type(wf.parser.get_parsed_content("inferer")).__name__ == "SlidingWindowInferer"
    out, src = nib.load(tmp_path / "out/example_ct_sm_synthetic_contrast.nii.gz"), nib.load(data_dir / NON_CONTRAST)
    assert out.shape == src.shape
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)


def test_multi_gpu_config_runs_two_processes_on_cpu(data_dir, tmp_path):
    check_torchrun(BUNDLE, data_dir, tmp_path, UNIT_GMM_TRAIN_TEST_SIZE, network="G", per_epoch=3, metric="val_vessel_gain_hu")


def test_bad_input_errors_name_the_file(data_dir, tmp_path, trained):
    root, _ = trained
    src = nib.load(data_dir / NON_CONTRAST)
    ct = np.asarray(src.dataobj, dtype=np.float32)

    def fails(path, message):
        with pytest.raises(BaseException) as err:  # InferenceFailed is a SystemExit
            workflow(BUNDLE, ("inference",), "infer", bundle_root=str(root), input=str(path), output_dir=str(tmp_path / "out"),
                     **UNIT_GMM_TEST_SIZE).run()
        assert message in error_chain(err.value), error_chain(err.value)[-2000:]
        assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing written

    fails(data_dir / TCGA_T1, "TCGA-DU-7294_t1_bet_normalized.nii.gz' ('image'): intensities 0..1 are not CT in Hounsfield units")
    rescaled = tmp_path / "ct_0_to_1.nii.gz"
    nib.save(nib.Nifti1Image((ct - ct.min()) / (ct.max() - ct.min()), src.affine), rescaled)
    fails(rescaled, "ct_0_to_1.nii.gz' ('image'): intensities 0..1 are not CT in Hounsfield units")
    flat = tmp_path / "slice_2d.nii.gz"
    nib.save(nib.Nifti1Image(ct[:, :, 10], src.affine), flat)
    fails(flat, "slice_2d.nii.gz' ('image'): expected a 3D image")
    garbage = tmp_path / "unreadable.nii.gz"
    garbage.write_bytes(b"not a nifti file at all" * 100)
    fails(garbage, "unreadable.nii.gz")
