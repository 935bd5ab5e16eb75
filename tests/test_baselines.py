"""The trivial baselines: the least-squares line and histogram matching, by hand and on the real volumes."""

import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from common.baselines import BaselineComparison, HistogramMapping, linear_fit
from common.data import ScalePercentiled
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Spacingd

TCGA = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_{}_bet_normalized.nii.gz"
MET = "brain_mri/BraTS-MET-00110-000/BraTS-MET-00110-000-{}.nii.gz"


def _load(data_dir, path, key="image"):
    t = Compose([LoadImaged(key, image_only=True), EnsureChannelFirstd(key), Spacingd(key, [4.0] * 3),
                 ScalePercentiled(key)])
    return t({key: str(data_dir / path)})[key].as_tensor()


def test_linear_fit_by_hand():
    source = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    target = torch.tensor([[1.0, -1.0, -3.0, 100.0]])  # -2x + 1 on the first three; the last is outside the mask
    mask = torch.tensor([[True, True, True, False]])
    np.testing.assert_allclose(linear_fit(source, target, mask).numpy(), [[1.0, -1.0, -3.0, -5.0]], atol=1e-6)


def test_histogram_mapping_recovers_a_decreasing_map_on_a_real_volume(data_dir):
    t1 = _load(data_dir, TCGA.format("t1"))
    fg = t1 > -1
    target = torch.where(fg, 0.8 - 1.5 * (t1 + 1) ** 2 / 4, torch.full_like(t1, -1.0))  # monotone decreasing in T1
    mapping = HistogramMapping().fit([(t1, target, None)])
    assert mapping.direction == "decreasing"
    err = (mapping(t1) - target)[fg].abs()
    assert float(err.mean()) < 0.01 and float(mapping(t1)[~fg].max()) == -1.0


def test_comparison_writes_the_table_on_real_contrasts(data_dir, tmp_path):
    """T1 -> T2 on the held-out subject with a perfect 'model' (the real T2): the model row is perfect and the
    baselines are real, different numbers; histogram matching fitted on another subject inverts the contrast."""
    t1, t2 = _load(data_dir, TCGA.format("t1")), _load(data_dir, TCGA.format("t2"))
    reference = [{"image": _load(data_dir, MET.format("t1n")), "label": _load(data_dir, MET.format("t2w"))}]
    handler = BaselineComparison(tmp_path, reference)
    engine = Engine(lambda e, b: [{"image": t1, "label": t2, "pred": t2.clone(), "eval_mask": (t2 > -1).float()}])
    handler.attach(engine)
    engine.run([0], max_epochs=1)
    result = json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))
    methods = result["methods"]
    assert result["histogram_direction"] == "decreasing"
    assert methods["model"]["psnr"] == float("inf") and methods["model"]["ncc"] == pytest.approx(1.0)
    # the oracle line has the best PSNR a global linear map can reach, and a negative slope (T1 dark where T2 bright)
    x, y = t1[t2 > -1].double(), t2[t2 > -1].double()
    r = float(torch.corrcoef(torch.stack([x, y]))[0, 1])
    assert r < 0 and methods["linear"]["ncc"] == pytest.approx(abs(r), abs=1e-4)
    assert 5 < methods["histogram"]["psnr"] < 30 and 0 < methods["histogram"]["ncc"] < 1
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "histogram matching" in md and md.count("\n") == 6
    assert methods["model_fitted"]["psnr"] == float("inf")  # the oracle line of a perfect output is the identity
    assert (tmp_path / "comparison.csv").read_text(encoding="utf-8").splitlines()[0] == "subject,method,psnr,ssim,mae,ncc"


def test_each_subject_on_its_own_row_and_the_metrics_inside_its_lesion(data_dir, tmp_path):
    """Two held-out 'subjects' from one real T2: a 'model' exact everywhere but inside a hand-made lesion cube, where it
    is 0.2 too bright (0.1 on the 0..1 metric scale). Inside the lesion: MAE 0.1 and PSNR 20 dB exactly; over the
    brain the error is diluted by the lesion's share of the mask; the subject without a lesion mask has no lesion
    figures, and the mean lesion figures are that one subject's."""
    t1, t2 = _load(data_dir, TCGA.format("t1")), _load(data_dir, TCGA.format("t2"))
    brain = t2 > -1
    lesion = torch.zeros_like(t2)
    lesion[:, 25:31, 25:31, 18:22] = 1  # 144 voxels, all inside the brain
    assert bool(brain[lesion > 0].all())
    pred = torch.where(lesion > 0, t2 + 0.2, t2)
    reference = [{"image": _load(data_dir, MET.format("t1n")), "label": _load(data_dir, MET.format("t2w"))}]
    handler = BaselineComparison(tmp_path, reference)
    items = [{"image": t1, "label": t2, "pred": pred, "eval_mask": brain.float(), "eval_lesion": lesion, "eval_subject": "with-lesion"},
             {"image": t1, "label": t2, "pred": t2.clone(), "eval_mask": brain.float(), "eval_subject": "no-lesion"}]
    engine = Engine(lambda e, b: [items[b]])
    handler.attach(engine)
    engine.run([0, 1], max_epochs=1)
    result = json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))
    with_lesion, without = result["subjects"]["with-lesion"]["model"], result["subjects"]["no-lesion"]["model"]
    assert with_lesion["lesion_mae"] == pytest.approx(0.1, abs=1e-6)
    assert with_lesion["lesion_psnr"] == pytest.approx(20.0, abs=1e-4)
    share = float((lesion > 0).sum() / brain.sum())
    assert with_lesion["mae"] == pytest.approx(0.1 * share, rel=1e-4)
    assert "lesion_mae" not in without and without["psnr"] == float("inf")
    assert result["methods"]["model"]["lesion_mae"] == pytest.approx(0.1, abs=1e-6)  # the one subject with a lesion
    assert result["methods"]["model"]["mae"] == pytest.approx(0.05 * share, rel=1e-4)  # the mean of both
    # the baselines are scored inside the lesion too, and every subject has a row per method in both tables
    assert 0 < result["subjects"]["with-lesion"]["linear"]["lesion_mae"] < 1
    md = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "Per held-out subject" in md and md.count("| with-lesion |") == 4 and md.count("| no-lesion |") == 4
    rows = (tmp_path / "comparison.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "subject,method,psnr,ssim,mae,ncc,lesion_psnr,lesion_ssim,lesion_mae,lesion_ncc"
    assert sum(r.startswith("no-lesion,") for r in rows) == 4 and all(r.endswith(",,,") for r in rows if r.startswith("no-lesion,"))
