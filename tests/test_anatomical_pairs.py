"""The benchmark's inter-subject pairs of the labelled brains (tools/anatomical_pairs.py): the structures kept, and
the affine alignment every method starts from, on the real FreeSurfer brains."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SHARED
from tools import benchmark
from tools.anatomical_pairs import aseg_structures


def test_aseg_structures_merges_the_cortical_parcels_and_keeps_only_the_structures():
    label = np.array([0, 2, 3, 5, 1001, 1035, 2002, 11101, 12174, 3000, 41, 42, 77])
    # Desikan and Destrieux parcels become the left (3) and right (42) cortex; 5 and 77 are not structures, 3000
    # (white-matter parcels) neither
    np.testing.assert_array_equal(aseg_structures(label, [2, 3, 41, 42]), [0, 2, 3, 0, 3, 3, 42, 3, 42, 0, 41, 42, 0])


@pytest.fixture(scope="module")
def registration_data(tmp_path_factory):
    from tools import sample_data

    dest = tmp_path_factory.mktemp("registration_data")
    sample_data.import_from(SHARED, dest, groups=["registration"])
    return dest


def test_anatomical_pairs_start_from_an_affine_alignment_of_the_two_brains(registration_data):
    """Both directions of the two FreeSurfer brains at 4 mm: one grid, the 30 structures (the cortex from its
    parcels), and ANTs' affine alignment raises the structures' Dice from the centred brains' (about 0.1 at 1 mm:
    the two scans' structures barely overlap before) to over 0.5."""
    from tools.registration_baseline import ANTS_VENV

    from tools.anatomical_pairs import anatomical_pairs

    if not (ANTS_VENV / "bin" / "python").exists():
        pytest.fail(f"no ANTs virtualenv at {ANTS_VENV}: run `python3.11 -m tools.ants setup` (the README's test command does)")
    structures = set(np.load(registration_data / "registration" / "labels.npz")["labels"].tolist())
    pairs = anatomical_pairs(registration_data, [4.0, 4.0, 4.0], [48, 48, 48], threads=1)
    assert [p["pair"] for p in pairs] == ["freesurfer-mrtrix3-sub-01 onto freesurfer-niivue",
                                          "freesurfer-niivue onto freesurfer-mrtrix3-sub-01"]
    for p in pairs:
        for key in ("fixed", "moving", "label", "label_fixed"):
            assert tuple(p[key].shape) == (1, 48, 48, 48), key
        np.testing.assert_allclose(p["fixed"].affine[:3, :3], 4 * np.eye(3), atol=1e-6)  # RAS at 4 mm
        assert 0 <= float(p["moving"].min()) and float(p["moving"].max()) <= 1 + 1e-6  # scaled, then interpolated
        for key in ("label", "label_fixed"):
            present = set(np.unique(p[key].numpy()).astype(int).tolist()) - {0}
            assert present <= structures and {3, 42, 2, 41} <= present, key
        assert p["unaligned_dice"] < 0.3 < 0.5 < p["affine_dice"], (p["unaligned_dice"], p["affine_dice"])
        moving_name, fixed_name = p["pair"].split(" onto ")
        assert moving_name in str(p["moving"].meta["filename_or_obj"]) and moving_name in str(p["label"].meta["filename_or_obj"])
        assert fixed_name in str(p["fixed"].meta["filename_or_obj"])  # the aligned brain is on the fixed grid


def test_the_anatomical_pairs_option_reaches_the_child_and_prints_the_dice_before_alignment(monkeypatch, capsys):
    calls = []

    class Done:
        returncode, stdout, stderr = 0, benchmark.RESULT_PREFIX + "{}", ""

    monkeypatch.setattr(benchmark.subprocess, "run", lambda cmd, **_: calls.append(cmd) or Done())
    args = benchmark.parse_args(["deform_gan", "--pairs", "b", "--anatomical", "--pair-seeds", "0"])
    benchmark.spawn("anatomical", args)
    child = benchmark.parse_args(calls[0][3:])
    assert calls[0][5] == "anatomical" and child.anatomical and child.pair_seeds == 0
    for bad in (["deform_gan", "--anatomical"], ["deform_gan", "--pairs", "b", "--pair-seeds", "0"]):
        with pytest.raises(SystemExit):
            benchmark.parse_args(bad)

    def row(dice, seconds):
        return {"pair": "a onto b", "epe_mm": float("nan"), "epe_p95_mm": float("nan"), "epe_before_mm": float("nan"),
                "dice_before": 0.6, "dice_after": dice, "folding_percent": 0.0, "seconds": seconds}

    rows = {"T": [{**row(0.7, 2.0), "unaligned_dice": 0.12}], "SyN": [row(0.75, 30.0)]}
    benchmark.print_pairs({"threads": 2, "pairs_bundle": "x", "anatomical": {"rows": rows, "syn_transform": "SyN",
                                                                              "syn_options": {}}}, "anatomical")
    out = capsys.readouterr().out
    assert "labelled brains" in out and "0.600 (0.120)" in out and "SyN s/pair / T s/pair: 15.0x" in out
