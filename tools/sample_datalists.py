"""The datalists written for the sample data (``<data root>/datalists/*.json``): which subject holds which files under
the canonical contrast names, and how the subjects are split.

Brain MRI, 23 co-registered subjects from six pipelines:

* ``brain_mri.json``: the full set. Training on 21 subjects; held out (``validation``) TCGA-DU-7294 (a glioma, TCIA,
  the BrainLesion pipeline, 0..1 floats) and OpenMS-patient26 (multiple sclerosis, MNI space, N4-corrected floats,
  with its manual lesion mask): two sites and two diseases that no training subject comes from in the same form.
* ``brain_mri_quick.json``: the quick-start subset (``--only brain_mri_quick``, what the demos download): three of the
  training subjects (BraTS 2023 metastasis and glioma, C-STAR stroke: at the demos' length they trained MedGAN better
  than 6, 18 or 21 subjects, measured in its model card) and the same two held-out subjects.
* ``brain_mri_test.json``: the test subset: three training subjects and TCGA-DU-7294, the smallest list that covers
  both orientations, three intensity ranges and a subject without T1c.
* ``brain_mri_raw.json``: the two raw clinical studies, each contrast on its own grid, with the authors' ITK
  transforms onto the FLAIR; not for the paired bundles as they are (they refuse different grids).

Keys of an entry: the contrasts a subject has (``t1``, ``t1c``, ``t2``, ``flair``; one that was not acquired is
absent), and where they exist ``mask`` (brain mask), ``seg`` (BraTS tumour labels, non-zero = tumour) and ``lesion``
(manual MS lesion mask).

The T1 of the three BraTS 2013 cases (``Brats18_2013_*``) is left out: it was acquired with thick slices, and
interpolated to 1 mm it shows almost no anatomy (no grey/white-matter contrast; inside the brain its correlation with
the T2 is +0.23, +0.29 and 0.00 where every other subject's is negative, -0.03 to -0.75). As a T1 -> T2 training pair
it teaches a network that a featureless T1 becomes a T2; those subjects still give the other contrasts (AE-GAN trains
on them with the T1 flagged missing). The files stay in the sample data (``T1_UNUSED`` below names them).
"""

from __future__ import annotations

CONTRASTS = ("t1", "t1c", "t2", "flair")
HELD_OUT = ("TCGA-DU-7294", "OpenMS-patient26")
# The quick start trains on three subjects: at the demo's length (2000 iterations) they gave MedGAN a higher PSNR and
# correlation on both held-out subjects than 6, 18 or 21 training subjects (the MedGAN model card's table)
TEST_TRAINING = ("BraTS-MET-00110-000", "BraTS-GLI-00001-000", "CSTAR-stroke")
QUICK_TRAINING = TEST_TRAINING
_BRATS18_IDS = ("2013_3_1", "2013_11_1", "2013_20_1", "CBICA_ABM_1", "CBICA_AQN_1", "TCIA01_201_1", "TCIA01_378_1",
                "TCIA01_425_1", "TCIA02_135_1", "TCIA02_370_1", "TCIA02_606_1", "TCIA03_265_1", "TCIA10_628_1",
                "TCIA13_623_1")
T1_UNUSED = ("Brats18_2013_3_1", "Brats18_2013_11_1", "Brats18_2013_20_1")  # thick-slice T1s (module docstring)
_OPENMS_SUFFIX = "_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz"


def _named(pattern: str, names: dict[str, str]) -> dict[str, str]:
    return {key: pattern.format(name) for key, name in names.items()}


def _brats2023(name: str, seg: bool = False) -> tuple[str, dict[str, str]]:
    suffixes = {"t1": "t1n", "t1c": "t1c", "t2": "t2w", "flair": "t2f", **({"seg": "seg"} if seg else {})}
    return f"brain_mri/{name}", _named(f"{name}-{{}}.nii.gz", suffixes)


def _brats18(subject: str) -> tuple[str, dict[str, str]]:
    contrasts = {"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"}
    if subject in T1_UNUSED:
        del contrasts["t1"]
    return f"brain_mri/{subject}", _named(f"{subject}_{{}}.nii.gz", contrasts)


def _open_ms(subject: str) -> tuple[str, dict[str, str]]:
    files = _named(f"{{}}{_OPENMS_SUFFIX}", {"t1": "T1", "t1c": "T1POST", "t2": "T2", "flair": "FLAIR"})
    return f"brain_mri/{subject}", {**files, "lesion": "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI.nii.gz"}


# subject -> (folder under the data root, {key: file name in that folder})
SUBJECTS: dict[str, tuple[str, dict[str, str]]] = {
    "BraTS-MET-00110-000": _brats2023("BraTS-MET-00110-000"),
    "BraTS-GLI-00001-000": _brats2023("BraTS-GLI-00001-000"),
    "BraTS-GLI-00000-000": _brats2023("BraTS-GLI-00000-000", seg=True),
    "BRATS2012-HG0015": ("brain_mri/BRATS2012-HG0015", _named("BRATS_HG0015_{}.mha", {
        "t1": "T1", "t1c": "T1C", "t2": "T2", "flair": "FLAIR", "seg": "truth"})),
    "CSTAR-stroke": ("brain_mri/CSTAR-stroke", {"t1": "T1.nii.gz", "t2": "T2.nii.gz", "flair": "FLAIR.nii.gz"}),
    **{f"Brats18_{i}": _brats18(f"Brats18_{i}") for i in _BRATS18_IDS},
    **{f"OpenMS-patient{n}": _open_ms(f"OpenMS-patient{n}") for n in ("07", "19", "26")},
    "TCGA-DU-7294": ("brain_mri/TCGA-DU-7294", {
        **_named("TCGA-DU-7294_{}_bet_normalized.nii.gz", {"t1": "t1", "t1c": "t1c", "t2": "t2", "flair": "fla"}),
        "mask": "atlas_bet_t1c_mask.nii.gz"}),
}
TRAINING = tuple(s for s in SUBJECTS if s not in HELD_OUT)
_RAW = {"OpenMS-long-patient03-study2": "study2", "OpenMS-long-patient04-study1": "study1"}


def pipeline(name: str) -> str:
    """The acquisition and preprocessing pipeline a subject comes from (``balance_by: "pipeline"`` draws each equally
    often): BraTS 2012, 2014, 2018 and 2023, C-STAR, OpenMS, TCGA (the BrainLesion pipeline)."""
    for prefix, value in (("BraTS-", "brats2023"), ("BRATS2012", "brats2012"), ("Brats18_", "brats2018"),
                          ("CSTAR", "cstar"), ("OpenMS-", "openms"), ("TCGA-", "tcga")):
        if name.startswith(prefix):
            return value
    return "brats2014"  # the --extended people from ANTsXNet's BRATS 2014 (_extended_subjects)


def subject_entry(name: str, subjects: dict | None = None) -> dict:
    """A subject's datalist entry: ``{"subject": name, "pipeline": ..., key: path relative to the data root, ...}``."""
    folder, files = (subjects or SUBJECTS)[name]
    return {"subject": name, "pipeline": pipeline(name), **{key: f"{folder}/{file}" for key, file in files.items()}}


def _raw_entry(name: str) -> dict:
    study, folder = _RAW[name], f"brain_mri_raw/{name}"
    return {"subject": name, "t1": f"{folder}/{study}_T1W.nii.gz", "t2": f"{folder}/{study}_T2W.nii.gz",
            "flair": f"{folder}/{study}_FLAIR.nii.gz",
            "t1_to_flair": f"{folder}/{study}_T1W_intrastudy_to_FLAIR.txt",
            "t2_to_flair": f"{folder}/{study}_T2W_intrastudy_to_FLAIR.txt",
            "lesion_change": f"{folder}/gt.nii.gz"}


def _freesurfer(folder: str, labels: str) -> dict:
    return {"subject": folder, "image": f"registration/{folder}/norm.mgz", "label": f"registration/{folder}/{labels}"}


_BRAIN_NOTE = ("Contrasts are co-registered within each subject; intensity ranges (raw int16, 0..1 floats, 8-bit, "
               "N4-corrected floats), orientations (RAS, LPS, LAS), grids and file formats (NIfTI, MetaImage .mha) "
               "differ between subjects. CSTAR-stroke has no T1c (its entry has no 't1c' key); the T1s of the three "
               "BraTS 2013 cases are left out (thick slices: no anatomy at 1 mm; tools/sample_datalists.py). 'seg': "
               "BraTS tumour labels; 'lesion': manual MS lesion mask; 'mask': brain mask.")


def _brain(description: str, training: tuple[str, ...], validation: tuple[str, ...]) -> dict:
    return {"description": f"{description} {_BRAIN_NOTE}", "contrasts": list(CONTRASTS),
            "training": [subject_entry(s) for s in training], "validation": [subject_entry(s) for s in validation]}


def _extended_subjects() -> dict[str, tuple[str, dict[str, str]]]:
    """The ``--extended`` people (tools.sample_manifest.extended_manifest), named as their folders."""
    from tools.sample_manifest import extended_manifest

    subjects = {}
    for folder in dict.fromkeys(e.path.rsplit("/", 1)[0] for e in extended_manifest()):
        name = folder.split("/")[-1]
        if name.startswith("Brats18_"):
            subjects[name] = _brats18(name)
        elif name.startswith("OpenMS-"):
            subjects[name] = _open_ms(name)
        else:  # BRATS 2014 as ANTsXNet ships it
            subjects[name] = (folder, {"t1": "T1.nii.gz", "t1c": "T1c.nii.gz", "t2": "T2.nii.gz",
                                       "flair": "Flair.nii.gz", "seg": "segmentation.nii.gz",
                                       "mask": "BrainExtractionMask.nii.gz"})
    return subjects


def datalists() -> dict[str, dict]:
    """The datalists by file name; all paths are relative to the data root."""
    extended = _extended_subjects()
    return {
        "brain_mri.json": _brain(
            f"Multi-contrast brain MRI, the full set: {len(TRAINING)} training subjects (BraTS 2012, 2018 and 2023 "
            "gliomas, a metastasis, a stroke, two MS patients); held out: TCGA-DU-7294 (glioma, TCIA, with brain "
            "mask) and OpenMS-patient26 (MS, MNI space, with lesion mask).", TRAINING, HELD_OUT),
        "brain_mri_extended.json": {
            **_brain(f"Multi-contrast brain MRI, the full set and the {len(extended)} people of --extended: "
                     f"{len(TRAINING) + len(extended)} training subjects; the same two held out.", TRAINING, HELD_OUT),
            "training": [subject_entry(s) for s in TRAINING] + [subject_entry(s, extended) for s in extended],
        },
        "brain_mri_quick.json": _brain(
            f"Multi-contrast brain MRI, the quick-start subset: {len(QUICK_TRAINING)} training subjects (BraTS 2023 "
            "metastasis and glioma, C-STAR stroke) and the full set's two held-out subjects.", QUICK_TRAINING, HELD_OUT),
        "brain_mri_test.json": _brain(
            "Multi-contrast brain MRI, the test subset: three training subjects (BraTS-MET-00110-000 and "
            "BraTS-GLI-00001-000, int16 raw units; CSTAR-stroke, 8-bit, no T1c) and the held-out TCGA-DU-7294.",
            TEST_TRAINING, HELD_OUT[:1]),
        "brain_mri_raw.json": {
            "description": "Raw clinical brain MRI (Ljubljana MS longitudinal database): skull on, T1W, T2W and FLAIR "
                           "each on its own grid, NOT co-registered; '<contrast>_to_flair' are the authors' ITK "
                           "transforms mapping FLAIR points onto that contrast (LPS); 'lesion_change' is the "
                           "database's lesion-change mask on a grid of its own.",
            "raw": [_raw_entry(s) for s in _RAW],
        },
        "ct_unpaired.json": {
            "description": "Unpaired CT: A = non-contrast, B = contrast-enhanced (different patients). "
                           "sub-spleen2_ct is the one contrast-enhanced abdomen, the body region of example_ct, and "
                           "the only contrast scan in training: the contrast chest crops (aorta, pulmonary) show "
                           "another body region, and with them the translation learnt to turn abdomen into chest "
                           "(measured: the unit_gmm model card). Each training entry pairs a non-contrast and a "
                           "contrast scan for co-located patch sampling. Validation: example_ct_sm, 30 slices of the "
                           "same non-contrast scan (not a held-out patient: the sample data has one non-contrast scan), "
                           "with its TotalSegmentator v2 organ labels (example_seg) for scoring the enhancement.",
            "training": [{"subject": "example_ct+sub-spleen2", "A": "ct/example_ct.nii.gz", "B": "ct/sub-spleen2_ct.nii.gz"}],
            "contrast_chest_crops": ["ct/aorta_report_test_result_models_ct_cropped.nii.gz",
                                     "ct/pulmonary_report_models_ct_cropped.nii.gz"],
            "validation": [{"subject": "example_ct_sm", "A": "ct/example_ct_sm.nii.gz", "label": "ct/example_seg.nii.gz"}],
        },
        "ct_extended.json": _ct_extended(),
        "registration.json": {
            "description": "Brain registration: Colin27 T1 (ch2bet) with AAL labels in MNI space; "
                           "VoxelMorph test scan (npz: vol, seg) and its evaluated label ids; two FreeSurfer-"
                           "processed brains (norm.mgz: 256^3, 1 mm, LIA, uint8) with aparc+aseg and "
                           "aparc.a2009s+aseg labels, which share the aseg ids of the VoxelMorph scan's seg.",
            "training": [{"image": "registration/ch2bet.nii.gz", "label": "registration/aal.nii.gz"}],
            "testing": [{"npz": "registration/test_scan.npz", "labels": "registration/labels.npz"}],
            "freesurfer": [_freesurfer("freesurfer-mrtrix3-sub-01", "aparc+aseg.mgz"),
                           _freesurfer("freesurfer-niivue", "aparc.a2009s+aseg.mgz")],
        },
    }


def _ct_extended() -> dict:
    """The CT bundle's larger training set: each non-contrast scan paired with each contrast scan of an overlapping
    body region (co-located patches then come from the same region), example_ct held out (scored with its organ
    labels, as in ``ct_unpaired.json``)."""
    from tools.sample_manifest import CT_EXTENDED_LABELS, CT_EXTENDED_SERIES

    crops = {"ct/aorta_report_test_result_models_ct_cropped.nii.gz": ("contrast", "chest"),
             "ct/pulmonary_report_models_ct_cropped.nii.gz": ("contrast", "chest"),
             "ct/sub-spleen2_ct.nii.gz": ("contrast", "abdomen")}
    scans = {f"ct_extended/{name}": (phase, region) for name, (phase, region, _) in CT_EXTENDED_SERIES.items()}
    scans.update(crops)
    overlap = {"chest": {"chest", "chest_abdomen"}, "abdomen": {"abdomen", "chest_abdomen"},
               "chest_abdomen": {"chest", "abdomen", "chest_abdomen"}}
    non_contrast = [(p, r) for p, (phase, r) in scans.items() if phase == "non_contrast"]
    contrast = [(p, r) for p, (phase, r) in scans.items() if phase == "contrast"]
    training = [{"subject": f"{a.rsplit('/', 1)[1]}+{b.rsplit('/', 1)[1]}", "A": a, "B": b, "region_A": ra, "region_B": rb}
                for a, ra in non_contrast for b, rb in contrast if rb in overlap[ra]]
    return {
        "description": "Unpaired CT, the extended set (python -m tools.sample_data download --only ct,ct_extended): "
                       "A = non-contrast (LIDC-IDRI-0314, chest to upper abdomen; a 4D-CT phase, chest), B = "
                       "contrast-enhanced (3D-IRCADb-01 patients 1 and 17, portal-venous abdomen; sub-spleen2; the "
                       "arterial chest crops), each A paired with each B of an overlapping body region (region_A, "
                       "region_B). DICOM series are folders, read by MONAI's ITK reader. example_ct is held out: "
                       "validation scores example_ct_sm (30 of its slices) with its TotalSegmentator organ labels; "
                       "contrast_reference: IRCADb 17 with its organ masks, the real portal-venous HU per region.",
        "training": training,
        "validation": [{"subject": "example_ct_sm", "A": "ct/example_ct_sm.nii.gz", "label": "ct/example_seg.nii.gz"}],
        # real contrast scans with organ masks: their HU per region go beside the translation (common.ct_evaluation)
        "contrast_reference": [{"subject": name, "B": f"ct_extended/{name}",
                                "labels": {region: f"ct_extended/{folder}" for region, folder in labels.items()}}
                               for name, labels in CT_EXTENDED_LABELS.items()],
    }
