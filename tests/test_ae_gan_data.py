"""Multi-contrast inputs with missing contrasts: the stack and its mask vector for every subset, the evaluation's
input combinations, random training subsets, and the inference inputs' checks."""

from __future__ import annotations

import json

import pytest
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Spacingd

from common.data import (
    ScalePercentiled, StackContrastsd, contrast_inputs, expand_input_subsets, given_contrasts, input_contrasts,
    input_subsets, load_datalist, random_input_subsets, with_inputs,
)
from common.networks import MultiContrastSynthesisNet, missing_flags

CONTRASTS = ["t1", "t1c", "t2", "flair"]
TCGA = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_{}_bet_normalized.nii.gz"
FILES = {"t1": "t1", "t1c": "t1c", "t2": "t2", "flair": "fla"}


@pytest.fixture(scope="module")
def volumes(data_dir):
    """The four contrasts of the held-out subject at 4 mm, scaled to -1..1."""
    keys = list(FILES)
    load = Compose([LoadImaged(keys, image_only=True), EnsureChannelFirstd(keys), Spacingd(keys, [4.0] * 3),
                    ScalePercentiled(keys)])
    return load({k: str(data_dir / TCGA.format(f)) for k, f in FILES.items()})


def test_all_15_subsets_stack_zero_filled_with_their_mask_vector(volumes):
    subsets = input_subsets(CONTRASTS)
    assert len(subsets) == 15 and len(set(subsets)) == 15 and subsets[0] == tuple(CONTRASTS)
    torch.manual_seed(0)
    net = MultiContrastSynthesisNet(num_inputs=4, num_filters=4, num_res_blocks=1, dropout=0.0).eval()
    for subset in subsets:
        out = StackContrastsd(CONTRASTS)({k: volumes[k] for k in subset})
        stack = out["image"]
        assert stack.shape == (8, *volumes["t1"].shape[1:]) and not set(CONTRASTS) & set(out)
        expected_flags = torch.tensor([0.0 if c in subset else 1.0 for c in CONTRASTS])  # one-hot of what is missing
        assert torch.equal(missing_flags(stack[None], 4)[0], expected_flags)
        for i, c in enumerate(CONTRASTS):
            assert torch.equal(stack[i], volumes[c][0] if c in subset else torch.zeros_like(stack[i]))
            assert torch.all(stack[4 + i] == expected_flags[i])
        assert list(given_contrasts(out, CONTRASTS)) == list(subset)
        # the network ignores whatever a missing channel holds
        x = torch.as_tensor(stack)[None, :, :48, :48, 20]  # (1, 8, 48, 48): one axial slice
        noisy = x.clone()
        noisy[:, :4][:, expected_flags.bool()] = 5.0
        with torch.no_grad():
            assert torch.equal(net(x), net(noisy))


def test_stack_keeps_the_first_given_contrasts_metadata_and_refuses_bad_inputs(volumes, tmp_path):
    out = StackContrastsd(["t1", "t1c", "flair"])({"t1c": volumes["t1c"], "flair": volumes["flair"], "subject": "s"})
    assert out["image"].meta["filename_or_obj"] == volumes["t1c"].meta["filename_or_obj"]
    assert [op["class"] for op in out["image"].applied_operations] == ["SpatialResample", "ScalePercentiled"]
    assert out["image"].applied_operations[-1]["extra_info"] == volumes["t1c"].applied_operations[-1]["extra_info"]
    with pytest.raises(ValueError, match=r"no input contrast given: expected at least one of \['t1', 't1c'\] for s"):
        StackContrastsd(["t1", "t1c"])({"t2": volumes["t2"], "subject": "s"})
    with pytest.raises(ValueError, match="TCGA-DU-7294_fla_bet_normalized.nii.gz' \\('flair'\\) has shape"):
        StackContrastsd(["t1", "flair"])({"t1": volumes["t1"], "flair": volumes["flair"][:, :-1]})


def test_evaluation_combinations_follow_each_subjects_contrasts(data_dir):
    inputs = input_contrasts(CONTRASTS, "t2")
    assert inputs == ["t1", "t1c", "flair"]
    datalist = data_dir / "datalists/brain_mri_test.json"
    entries = load_datalist(datalist, "training", {"label": "t2"}, base_dir=data_dir, optional_keys={c: c for c in inputs})
    expanded = expand_input_subsets(entries, inputs)
    by_subject = {}
    for e in expanded:
        by_subject.setdefault(e["subject"], []).append(e["inputs"])
        assert set(e["inputs"].split("+")) == {c for c in inputs if c in e} and "label" in e
    # two BraTS subjects with all three inputs (7 combinations), CSTAR without T1c (3)
    assert by_subject["CSTAR-stroke"] == ["t1+flair", "t1", "flair"]
    assert len(by_subject["BraTS-MET-00110-000"]) == 7 and len(expanded) == 17
    assert [e["inputs"] for e in expand_input_subsets(entries[:1], inputs, sizes=[3, 1])] == ["t1+t1c+flair", "t1", "t1c", "flair"]
    with pytest.raises(ValueError, match="target_contrast 'pd' is not one of"):
        input_contrasts(CONTRASTS, "pd")


def test_random_subsets_are_non_empty_available_and_uniform():
    available = torch.tensor([[True, True, True]] * 7000 + [[True, False, True]] * 3000)
    torch.manual_seed(0)
    chosen = random_input_subsets(available)
    assert chosen.any(dim=1).all() and not (chosen & ~available).any()
    codes = (chosen[:7000].long() * torch.tensor([1, 2, 4])).sum(1)
    counts = torch.bincount(codes, minlength=8)[1:].float()  # 7 non-empty subsets, 1000 expected each
    assert counts.min() > 880 and counts.max() < 1120
    assert set((chosen[7000:].long() * torch.tensor([1, 2, 4])).sum(1).tolist()) == {1, 4, 5}
    with pytest.raises(ValueError, match="at least one available"):
        random_input_subsets(torch.tensor([[False, False]]))


def test_with_inputs_zero_fills_and_flags():
    stack = torch.cat([torch.randn(2, 3, 8, 8), torch.zeros(2, 3, 8, 8)], dim=1)
    given = torch.tensor([[True, False, True], [False, False, True]])
    out = with_inputs(stack, given)
    assert torch.equal(missing_flags(out, 3), (~given).float())
    assert torch.equal(out[0, 0], stack[0, 0]) and torch.equal(out[0, 1], torch.zeros(8, 8))
    assert torch.equal(out[1, :2], torch.zeros(2, 8, 8)) and torch.equal(out[1, 2], stack[1, 2])


def test_inference_inputs_are_checked(tmp_path):
    t1 = tmp_path / "t1.nii.gz"
    t1.write_bytes(b"")
    inputs = ["t1", "t1c", "flair"]
    assert contrast_inputs({"t1": str(t1), "t1c": None, "t2": None, "flair": None}, inputs, "t2") == [{"t1": str(t1)}]
    with pytest.raises(ValueError, match=r"'t2' is the target_contrast and was also given as an input \(--t2 x.nii.gz\)"):
        contrast_inputs({"t1": str(t1), "t2": "x.nii.gz"}, inputs, "t2")
    with pytest.raises(ValueError, match="no input image given: pass at least one of --t1 FILE --t1c FILE --flair FILE"):
        contrast_inputs({"t1": None, "flair": ""}, inputs, "t2")
    with pytest.raises(ValueError, match=r"inputs \['pd'\] are not input contrasts"):
        contrast_inputs({"pd": str(t1)}, inputs, "t2")
    with pytest.raises(FileNotFoundError, match="input 'flair': file not found: '.*missing.nii.gz'"):
        contrast_inputs({"flair": str(tmp_path / "missing.nii.gz")}, inputs, "t2")
    assert json.dumps(contrast_inputs({"flair": str(t1)}, inputs, "t2"))  # plain, serialisable data


def test_with_inputs_keeps_each_contrasts_slices_together_in_2_5d():
    """A 2.5D stack (B, 2N * k, ...) keeps or drops all k slices of a contrast and flags all k channels."""
    k = 3
    stack = torch.cat([torch.randn(1, 3 * k, 8, 8), torch.zeros(1, 3 * k, 8, 8)], dim=1)
    out = with_inputs(stack, torch.tensor([[False, True, False]]))
    assert torch.equal(out[0, k : 2 * k], stack[0, k : 2 * k])  # T1c's three slices kept
    assert torch.equal(out[0, :k], torch.zeros(k, 8, 8)) and torch.equal(out[0, 2 * k : 3 * k], torch.zeros(k, 8, 8))
    assert torch.equal(out[0, 3 * k :].flatten(1).amax(1), torch.tensor([1.0] * k + [0.0] * k + [1.0] * k))
    assert torch.equal(missing_flags(out, 3), torch.tensor([[1.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="2 \\* 3 \\* k channels"):
        with_inputs(stack[:, :16], torch.tensor([[True, True, True]]))
