"""``python -m tools.datalist`` on folders of the real sample scans laid out as BraTS, IXI, subject folders (NIfTI and
a DICOM series written from a real T1) and flat names: the datalist written, its split by subject, its refusals, and a
bundle trained from it."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bundle_utils import ROOT, TRAIN_TEST_SIZE, train
from conftest import SHARED
from tools.datalist import canonical, main, split_subjects

BRAIN = SHARED / "brain_mri"
GLI, MET = BRAIN / "BraTS-GLI-00001-000", BRAIN / "BraTS-MET-00110-000"
CSTAR, TCGA = BRAIN / "CSTAR-stroke", BRAIN / "TCGA-DU-7294"
TCGA_FILES = {"t1": TCGA / "TCGA-DU-7294_t1_bet_normalized.nii.gz", "t1c": TCGA / "TCGA-DU-7294_t1c_bet_normalized.nii.gz",
              "t2": TCGA / "TCGA-DU-7294_t2_bet_normalized.nii.gz", "flair": TCGA / "TCGA-DU-7294_fla_bet_normalized.nii.gz",
              "mask": TCGA / "atlas_bet_t1c_mask.nii.gz"}


def link(path: Path, target: Path) -> Path:
    """A symlink ``path`` to the real scan ``target`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def build(tmp_path: Path, folder: Path, *args: str) -> dict:
    """Runs ``main`` on ``folder`` and returns the datalist it wrote."""
    out = tmp_path / "out" / "datalist.json"
    assert main([str(folder), *args, "-o", str(out)]) == 0
    assert [p.name for p in out.parent.iterdir()] == ["datalist.json"]  # written through a temp file, none left over
    return json.loads(out.read_text(encoding="utf-8"))


def refusal(tmp_path: Path, folder: Path, *args: str) -> str:
    """Runs ``main`` expecting a refusal; returns its message and checks that nothing was written."""
    out = tmp_path / "refused.json"
    with pytest.raises(SystemExit) as err:
        main([str(folder), *args, "-o", str(out)])
    assert not out.exists() and isinstance(err.value.code, str) and err.value.code.startswith("error: ")
    return err.value.code


def entries(datalist: dict) -> dict[str, dict]:
    return {e["subject"]: e for e in datalist["training"] + datalist["validation"]}


def assert_resolves(folder: Path, datalist: dict, expected: dict[str, dict[str, Path]]) -> None:
    """Every entry has exactly the expected keys, its paths relative to ``folder`` leading to the expected scans."""
    assert entries(datalist).keys() == expected.keys()
    for subject, entry in entries(datalist).items():
        assert set(entry) - {"subject"} == set(expected[subject]), subject
        for key, rel in entry.items():
            if key != "subject":
                assert not Path(rel).is_absolute()
                assert (folder / rel).resolve() == expected[subject][key].resolve(), (subject, key)


def small_copy(src: Path, dst: Path, step: int = 4, dtype=np.float32) -> Path:
    """Every ``step``-th voxel of a real scan, with the affine of that grid: a small real volume for quick loads."""
    img = nib.load(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(img.dataobj)[::step, ::step, ::step].astype(dtype)
    nib.save(nib.Nifti1Image(data, img.affine @ np.diag([step, step, step, 1])), dst)
    return dst


def write_dicom_series(nifti: Path, folder: Path, count: int | None = None) -> Path:
    """The integer volume of ``nifti`` as a DICOM series, one file per slice along the third axis (the first ``count``),
    each with its position, orientation and spacing (ITK's GDCM writer takes them from these tags on a 2D slice)."""
    import itk

    image = itk.imread(str(nifti), itk.SS)
    voxels = itk.array_from_image(image)  # (k, j, i)
    origin, spacing = np.array(itk.origin(image)), np.array(itk.spacing(image))
    direction = itk.array_from_matrix(image.GetDirection())  # LPS, columns = the i, j, k axes
    folder.mkdir(parents=True)
    uid = "1.2.826.0.1.3680043.2.1125.7294"
    for k in range(voxels.shape[0] if count is None else count):
        plane = itk.image_from_array(np.ascontiguousarray(voxels[k]))
        plane.SetSpacing([float(spacing[0]), float(spacing[1])])
        tags = {"0008|0060": "MR", "0020|000d": uid + ".1", "0020|000e": uid + ".2", "0008|0018": f"{uid}.3.{k + 1}",
                "0020|0013": str(k + 1), "0018|0050": f"{spacing[2]:.6f}",
                "0020|0032": "\\".join(f"{v:.6f}" for v in origin + k * spacing[2] * direction[:, 2]),
                "0020|0037": "\\".join(f"{v:.6f}" for v in np.concatenate([direction[:, 0], direction[:, 1]]))}
        for tag, value in tags.items():
            plane[tag] = value
        io = itk.GDCMImageIO.New()
        io.KeepOriginalUIDOn()
        itk.imwrite(plane, str(folder / f"IM{k + 1:04d}.dcm"), imageio=io)
    return folder


@pytest.fixture(scope="module")
def dicom_dataset(tmp_path_factory):
    """Subject folders of small real volumes: ``cstar/t1/`` a DICOM series written from the (oblique, RAS) CSTAR T1
    with ``cstar/T2.nii.gz``; ``tcga/`` NIfTI T1, T2 and brain mask (LPS). Also the T1 NIfTI the series came from."""
    root = tmp_path_factory.mktemp("dicom_dataset")
    t1 = small_copy(CSTAR / "T1.nii.gz", tmp_path_factory.mktemp("dicom_source") / "cstar_t1.nii.gz", dtype=np.int16)
    write_dicom_series(t1, root / "cstar" / "t1")
    small_copy(CSTAR / "T2.nii.gz", root / "cstar" / "T2.nii.gz")
    for key, name in (("t1", "t1.nii.gz"), ("t2", "t2w.nii.gz"), ("mask", "brain_mask.nii.gz")):
        small_copy(TCGA_FILES[key], root / "tcga" / name, dtype=np.uint8 if key == "mask" else np.float32)
    return root, t1


def test_canonical_contrast_names():
    names = {"T1": "t1", "t1n": "t1", "T1w": "t1", "t1ce": "t1c", "T1-Gd": "t1c", "t2w": "t2", "T2f": "flair",
             "FLAIR": "flair", "fla": "flair", "PD": "pd", "brain_mask": "mask", "seg": "seg", "DWI": "dwi"}
    assert {name: canonical(name) for name in names} == names


def test_brats_layout_2021_and_2023_names(tmp_path, capsys):
    folder = tmp_path / "brats"
    expected = {}
    for src in (GLI, MET):  # 2023 names, one folder per subject
        expected[src.name] = {c: link(folder / src.name / f"{src.name}-{suffix}.nii.gz", src / f"{src.name}-{suffix}.nii.gz")
                              for c, suffix in (("t1", "t1n"), ("t1c", "t1c"), ("t2", "t2w"), ("flair", "t2f"))}
    expected["BraTS2021_00000"] = {  # 2021 names, all in one folder (the atlas brain mask stands in for a label file)
        c: link(folder / f"BraTS2021_00000_{suffix}.nii.gz", TCGA_FILES[src])
        for c, suffix, src in (("t1", "t1", "t1"), ("t1c", "t1ce", "t1c"), ("t2", "t2", "t2"), ("flair", "flair", "flair"),
                               ("seg", "seg", "mask"))}
    link(folder / "atlas" / "template.nii.gz", TCGA_FILES["t1"])  # not a BraTS name: ignored, and said so
    (folder / "README.txt").write_text("not an image", encoding="utf-8")

    datalist = build(tmp_path, folder, "--layout", "brats")
    assert_resolves(folder, datalist, expected)
    assert datalist["contrasts"] == ["t1", "t1c", "t2", "flair"]
    assert (len(datalist["training"]), len(datalist["validation"])) == (2, 1)  # 0.8 of 3, rounded
    assert list(entries(datalist)["BraTS2021_00000"]) == ["subject", "t1", "t1c", "t2", "flair", "seg"]
    out = capsys.readouterr().out
    assert "3 subject(s)" in out and "t1+t1c+t2+flair+seg: 1 subject(s) (BraTS2021_00000)" in out
    assert "ignored 1 image(s) not named as --layout brats expects: atlas/template.nii.gz" in out

    # the bundles read it as they read the sample datalist: relative to --dataset_dir
    from common.data import load_datalist

    loaded = load_datalist(tmp_path / "out/datalist.json", "training", {"A": "t1", "B": "t2"}, base_dir=folder)
    assert all(Path(e["A"]).is_file() and Path(e["B"]).is_file() for e in loaded)


def test_ixi_layout_from_the_command_line(tmp_path):
    folder = tmp_path / "ixi"
    sources = {"IXI002-Guys-0828": {"t1": TCGA_FILES["t1"], "t2": TCGA_FILES["t2"], "pd": TCGA_FILES["flair"]},
               "IXI012-HH-1211": {"t1": CSTAR / "T1.nii.gz", "t2": CSTAR / "T2.nii.gz", "pd": CSTAR / "FLAIR.nii.gz"}}
    expected = {s: {c: link(folder / f"IXI-{c.upper()}" / f"{s}-{c.upper()}.nii.gz", src) for c, src in files.items()}
                for s, files in sources.items()}  # (a FLAIR stands in for the PD: the tool reads names and headers)
    link(folder / "IXI-MRA" / "IXI002-Guys-0828-MRA.nii.gz", TCGA_FILES["t1c"])  # not asked for: skipped
    link(folder / "IXI-DTI" / "IXI002-Guys-0828-DTI-00.nii.gz", TCGA_FILES["t2"])
    out = tmp_path / "ixi.json"
    result = subprocess.run([sys.executable, "-m", "tools.datalist", str(folder), "--layout", "ixi", "--split", "0.5",
                             "--seed", "3", "-o", str(out)], cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=60)
    assert result.returncode == 0, result.stderr
    datalist = json.loads(out.read_text(encoding="utf-8"))
    assert_resolves(folder, datalist, expected)
    assert datalist["contrasts"] == ["t1", "t2", "pd"] and len(datalist["training"]) == len(datalist["validation"]) == 1
    assert "skipped images of contrasts not asked for: dti00 (1), mra (1)" in result.stdout
    assert f"wrote {out}" in result.stdout


def test_subject_folders_with_mixed_names_and_a_mask(tmp_path, capsys):
    folder = tmp_path / "subjects"
    flair_nii = folder / "sub01" / "flair.nii"  # uncompressed NIfTI
    flair_nii.parent.mkdir(parents=True)
    flair_nii.write_bytes(gzip.decompress((CSTAR / "FLAIR.nii.gz").read_bytes()))
    expected = {
        "sub01": {"t1": link(folder / "sub01" / "T1.nii.gz", CSTAR / "T1.nii.gz"),
                  "t2": link(folder / "sub01" / "t2.nii.gz", CSTAR / "T2.nii.gz"), "flair": flair_nii},
        "sub02": {"t1": link(folder / "sub02" / "sub02_T1w.nii.gz", TCGA_FILES["t1"]),
                  "t2": link(folder / "sub02" / "T2w.nii.gz", TCGA_FILES["t2"]),
                  "flair": link(folder / "sub02" / "FLAIR.nii.gz", TCGA_FILES["flair"]),
                  "mask": link(folder / "sub02" / "brain_mask.nii.gz", TCGA_FILES["mask"])},
    }
    datalist = build(tmp_path, folder, "--layout", "subject-folders")
    assert_resolves(folder, datalist, expected)
    assert datalist["contrasts"] == ["t1", "t2", "flair"]
    assert entries(datalist)["sub01"]["flair"] == "sub01/flair.nii"

    datalist = build(tmp_path, folder, "--layout", "subject-folders", "--contrasts", "T1,t2w")
    assert datalist["contrasts"] == ["t1", "t2"] and "flair" not in entries(datalist)["sub02"]
    assert "skipped images of contrasts not asked for: flair (2)" in capsys.readouterr().out


def test_flat_layout_with_a_pattern(tmp_path):
    folder = tmp_path / "flat"
    sources = {"case_01": TCGA_FILES, "case_02": {"t1": CSTAR / "T1.nii.gz", "t2": CSTAR / "T2.nii.gz"},
               "case_03": {"t1": GLI / f"{GLI.name}-t1n.nii.gz", "t2": GLI / f"{GLI.name}-t2w.nii.gz"}}
    expected = {s: {c: link(folder / f"{s}_{c.upper()}.nii.gz", files[c]) for c in ("t1", "t2")} for s, files in sources.items()}
    datalist = build(tmp_path, folder, "--layout", "flat", "--pattern", "{subject}_{contrast}.nii.gz")
    assert_resolves(folder, datalist, expected)  # subjects with '_' in them: the contrast part is letters and digits
    msg = refusal(tmp_path, folder, "--layout", "flat", "--pattern", "{subject}.nii.gz")
    assert "needs one {subject} and one {contrast}" in msg
    assert "--layout flat needs --pattern" in refusal(tmp_path, folder, "--layout", "flat")


def test_split_is_by_subject_seeded_and_deterministic(tmp_path):
    folder = tmp_path / "many"
    subjects = [f"s{i:02d}" for i in range(10)]
    for s in subjects:
        link(folder / f"{s}-t1.nii.gz", CSTAR / "T1.nii.gz")
        link(folder / f"{s}-t2.nii.gz", CSTAR / "T2.nii.gz")
    args = ("--layout", "flat", "--pattern", "{subject}-{contrast}.nii.gz")
    splits = {}
    for seed in (0, 1, 2, 0):
        d = build(tmp_path, folder, *args, "--seed", str(seed))
        train, val = [e["subject"] for e in d["training"]], [e["subject"] for e in d["validation"]]
        assert (len(train), len(val)) == (8, 2) and sorted(train + val) == subjects  # one entry per subject
        assert all(e["t1"] == f"{e['subject']}-t1.nii.gz" for e in d["training"] + d["validation"])
        assert splits.setdefault(seed, val) == val  # the same seed gives the same split
    assert len({tuple(v) for v in splits.values()}) > 1  # another seed, another split
    assert split_subjects(["a", "b"], 0.99, 0) in ((["a"], ["b"]), (["b"], ["a"]))  # one on each side
    assert len(split_subjects(["a", "b", "c"], 0.01, 5)[0]) == 1 and split_subjects(["a"], 0.8, 0) == (["a"], [])


def test_refuses_duplicates(tmp_path):
    folder = tmp_path / "dup"
    link(folder / "sub01" / "t1.nii.gz", CSTAR / "T1.nii.gz")
    link(folder / "sub01" / "T1.nii.gz", CSTAR / "T1.nii.gz")
    link(folder / "sub01" / "t2.nii.gz", CSTAR / "T2.nii.gz")
    msg = refusal(tmp_path, folder, "--layout", "subject-folders")
    assert "two images for one subject and contrast: subject 'sub01' t1: sub01/T1.nii.gz, sub01/t1.nii.gz" in msg


def test_missing_contrast_is_refused_unless_allowed(tmp_path, capsys):
    folder = tmp_path / "missing"
    for s, files in (("sub01", TCGA_FILES), ("sub02", {"t1": CSTAR / "T1.nii.gz", "t2": CSTAR / "T2.nii.gz"}),
                     ("sub03", {"t1": CSTAR / "T1.nii.gz"})):
        for c, src in files.items():
            if c in ("t1", "t2"):
                link(folder / s / f"{c}.nii.gz", src)
    link(folder / "sub04" / "brain_mask.nii.gz", TCGA_FILES["mask"])  # none of the contrasts
    msg = refusal(tmp_path, folder, "--layout", "subject-folders")
    assert "2 of 4 subjects lack a contrast of t1, t2: sub03 (no t2; has t1), sub04 (no t1, t2; has mask)" in msg
    assert "--allow-missing" in msg

    datalist = build(tmp_path, folder, "--layout", "subject-folders", "--allow-missing", "--split", "0.5")
    assert set(entries(datalist)) == {"sub01", "sub02", "sub03"} and set(entries(datalist)["sub03"]) == {"subject", "t1"}
    out = capsys.readouterr().out
    assert "kept with missing contrasts (--allow-missing): sub03 (no t2; has t1)" in out
    assert "skipped 1 subject(s) with none of t1, t2: sub04" in out


def test_refuses_files_that_are_not_3d_images(tmp_path):
    folder = tmp_path / "bad"
    link(folder / "sub01" / "t1.nii.gz", CSTAR / "T1.nii.gz")
    (folder / "sub01" / "t2.nii.gz").write_text("this is a text file\n", encoding="utf-8")
    t2 = nib.load(CSTAR / "T2.nii.gz")
    for subject, plane in (("sub02", np.s_[:, :, 70]), ("sub03", np.s_[:, :, 70:71])):  # 2D; one slice in 3D
        link(folder / subject / "t1.nii.gz", CSTAR / "T1.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(t2.dataobj)[plane].astype(np.float32), t2.affine), folder / subject / "t2.nii.gz")
    msg = refusal(tmp_path, folder, "--layout", "subject-folders")
    assert "3 file(s) are not usable 3D images" in msg
    assert "sub01/t2.nii.gz (not a NIfTI image (ImageFileError: File " in msg
    assert "sub02/t2.nii.gz (2D image of shape (124, 160): the bundles need 3D volumes)" in msg
    assert "sub03/t2.nii.gz (2D image of shape (124, 160, 1):" in msg


def test_refuses_empty_folders_unknown_layouts_and_bad_splits(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no subject found in" in refusal(tmp_path, tmp_path / "empty", "--layout", "brats")
    link(tmp_path / "odd" / "sub01" / "scan.nii.gz", CSTAR / "T1.nii.gz")
    assert "no image of a known contrast" in refusal(tmp_path, tmp_path / "odd", "--layout", "subject-folders")
    assert "unknown layout 'bids': choose one of brats, ixi, subject-folders, flat" in refusal(
        tmp_path, tmp_path / "empty", "--layout", "bids")
    assert "--split 1.0" in refusal(tmp_path, tmp_path / "odd", "--layout", "subject-folders", "--split", "1")
    # from the shell: exit status 1, one line on stderr, no traceback
    result = subprocess.run([sys.executable, "-m", "tools.datalist", str(tmp_path / "empty"), "--layout", "ixi", "-o",
                             str(tmp_path / "x.json")], cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: no subject found in") and len(result.stderr.strip().splitlines()) == 1


def test_dicom_series_folder_loads_as_the_nifti_it_came_from(dicom_dataset, tmp_path):
    from monai.transforms import EnsureChannelFirst, LoadImage, Orientation

    folder, t1_nifti = dicom_dataset
    datalist = build(tmp_path, folder, "--layout", "subject-folders", "--split", "0.5")
    cstar = entries(datalist)["cstar"]
    assert cstar == {"subject": "cstar", "t1": "cstar/t1", "t2": "cstar/T2.nii.gz"}
    assert set(entries(datalist)["tcga"]) == {"subject", "t1", "t2", "mask"}

    load = lambda p: Orientation("RAS", labels=None)(EnsureChannelFirst()(LoadImage(image_only=True)(str(p))))  # noqa: E731
    dicom, nifti = load(folder / cstar["t1"]), load(t1_nifti)
    assert dicom.shape == nifti.shape == (1, 31, 40, 35)
    np.testing.assert_allclose(np.asarray(dicom), np.asarray(nifti))  # the same voxels (integers: exact)
    np.testing.assert_allclose(np.asarray(dicom.affine), np.asarray(nifti.affine), atol=1e-4)  # oblique, 4 mm
    assert abs(np.asarray(nifti.affine)[0, 1]) > 0.05  # the geometry checked is really oblique

    # a DICOM folder of one slice is a 2D image
    write_dicom_series(t1_nifti, tmp_path / "one_slice" / "sub01" / "t1", count=1)
    msg = refusal(tmp_path, tmp_path / "one_slice", "--layout", "subject-folders")
    assert "sub01/t1 (2D image of shape (31, 40, 1):" in msg


def test_bundle_trains_from_a_built_datalist(dicom_dataset, tmp_path):
    """CycleGAN T1 -> T2 for 2 iterations from the datalist of the DICOM + NIfTI subject folders."""
    import torch

    folder, _ = dicom_dataset
    datalist_file = tmp_path / "mine.json"
    assert main([str(folder), "--layout", "subject-folders", "--split", "0.5", "-o", str(datalist_file)]) == 0
    assert [e["subject"] for e in json.loads(datalist_file.read_text(encoding="utf-8"))["training"]] == ["cstar"]  # T1 from DICOM
    bundle_root = tmp_path / "bundle"
    wf, outputs = train("cyclegan", folder, bundle_root, 2, TRAIN_TEST_SIZE, datalist=str(datalist_file))
    assert len(outputs) == 2 and all(np.isfinite(o["loss_G"]) for o in outputs)
    weights = torch.load(bundle_root / "models/model.pt", weights_only=True)
    wf.parser.get_parsed_content("G_A", lazy=False).load_state_dict(weights)  # a fresh test-size generator: strict


def test_inference_on_a_dicom_series_writes_nifti_with_the_series_geometry(dicom_dataset, tmp_path):
    """A DICOM series folder as the inference input (random test-size weights: the geometry is what is checked)."""
    import torch
    from monai.transforms import LoadImage

    from bundle_utils import TEST_SIZE, workflow

    folder, _ = dicom_dataset
    series = folder / "cstar" / "t1"
    wf = workflow("cyclegan", ("inference",), "infer", bundle_root=str(tmp_path), input=str(series),
                  output_dir=str(tmp_path / "out"), **TEST_SIZE)
    (tmp_path / "models").mkdir()
    torch.save(wf.parser.get_parsed_content("network_def").state_dict(), tmp_path / "models" / "model.pt")
    wf.run()
    out = nib.load(tmp_path / "out" / "t1_synthetic_t2.nii.gz")  # named after the series folder
    source = LoadImage(image_only=True)(str(series))
    assert out.shape == tuple(source.shape) == (31, 40, 35)
    np.testing.assert_allclose(out.affine, np.asarray(source.affine), atol=1e-4)  # the series' oblique 4 mm grid
    assert np.isfinite(out.get_fdata()).all()


@pytest.mark.parametrize("name, expected", [
    ("t1ce", "t1c"), ("T1C", "t1c"), ("T1POST", "t1c"), ("T1POST_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI", "t1c"),
    ("T1_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI", "t1"), ("FLAIR_N4_noneck", "flair"),
    ("GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI", "lesion"), ("BRATS_HG0015_truth", "seg"),
    ("BRATS_HG0015_T1C", "t1c"), ("study2_T2W", "t2"), ("localizer_scan", "localizerscan"),
])
def test_new_naming_schemes_map_to_canonical_contrasts(name, expected):
    assert canonical(name) == expected


def test_brats_2018_2012_mha_and_open_ms_names_from_the_sample_folders(tmp_path):
    # BraTS 2018 (t1ce, seg) and BRATS 2012 MetaImage (T1C, truth) through --layout brats; OpenMS through subject folders
    root = tmp_path / "brats"
    for subject in ("Brats18_2013_3_1", "BRATS2012-HG0015"):
        for f in (BRAIN / subject).iterdir():
            link(root / subject / f.name, f)
    datalist = build(tmp_path, root, "--layout", "brats", "--split", "0.5")
    got = entries(datalist)
    assert set(got) == {"Brats18_2013_3_1", "BRATS_HG0015"}
    assert got["BRATS_HG0015"] == {"subject": "BRATS_HG0015", **{k: f"BRATS2012-HG0015/BRATS_HG0015_{v}.mha" for k, v in
                                   {"t1": "T1", "t1c": "T1C", "t2": "T2", "flair": "FLAIR", "seg": "truth"}.items()}}
    assert got["Brats18_2013_3_1"]["t1c"] == "Brats18_2013_3_1/Brats18_2013_3_1_t1ce.nii.gz"
    assert got["Brats18_2013_3_1"]["seg"] == "Brats18_2013_3_1/Brats18_2013_3_1_seg.nii.gz"
    ms = build(tmp_path, BRAIN, "--layout", "subject-folders", "--allow-missing")
    patient = entries(ms)["OpenMS-patient26"]
    assert set(patient) == {"subject", "t1", "t1c", "t2", "flair", "lesion"}
    assert patient["t1c"].startswith("OpenMS-patient26/T1POST_") and patient["lesion"].startswith("OpenMS-patient26/GOLD_STANDARD_")
    assert len(entries(ms)) == 23


def test_contrasts_on_different_grids_are_refused_naming_them_or_resampled_on_request(tmp_path):
    raw = SHARED / "brain_mri_raw"
    message = refusal(tmp_path, raw, "--layout", "subject-folders", "--contrasts", "t1,t2,flair")
    assert "2 subject(s) have images on different voxel grids" in message and "--resample-to" in message
    assert "OpenMS-long-patient03-study2/study2_T1W.nii.gz (256x256x48, 0.91x0.91x3 mm, LPS" in message
    assert "study2_FLAIR.nii.gz (320x320x48, 0.719x0.719x3 mm, LPS" in message

    out = tmp_path / "resampled_list" / "datalist.json"
    result = subprocess.run([sys.executable, "-m", "tools.datalist", str(raw), "--layout", "subject-folders", "--contrasts",
                             "t1,t2,flair", "--resample-to", "flair", "-o", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "WARNING: resampled onto each subject's flair grid through the affines (NOT registered" in result.stdout
    datalist = json.loads(out.read_text(encoding="utf-8"))
    for entry in entries(datalist).values():
        flair = nib.load(raw / entry["flair"])  # the reference keeps its own file
        for key in ("t1", "t2"):
            copy = Path(entry[key])
            assert copy.is_absolute() and copy.parent.parent == out.parent / "resampled"
            img = nib.load(copy)
            assert img.shape == flair.shape and np.allclose(img.affine, flair.affine, atol=1e-4)
            assert float(np.asarray(img.dataobj).max()) > 0  # the head is inside the FLAIR's field of view


def test_the_datalist_tool_starts_without_importing_torch_or_monai():
    """Scanning four folders took 15 s, nearly all of it importing torch and MONAI it does not need to read headers:
    `common` and `common.data` import their parts on first use."""
    import subprocess
    import sys

    from bundle_utils import ROOT

    check = "import sys, tools.datalist; print(sorted(m for m in ('torch', 'monai', 'ignite') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
