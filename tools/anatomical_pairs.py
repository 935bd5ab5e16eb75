"""Inter-subject pairs of the labelled brains, scored by Dice on anatomical structures
(``python -m tools.benchmark deform_gan --pairs BUNDLE --anatomical``).

The sample data's two FreeSurfer-processed brains (``registration/freesurfer-*``: the intensity-normalised T1
``norm.mgz`` and its aparc+aseg labels; two different people) are registered onto each other, both ways. Each brain
is brought to RAS at the bundle's ``pixdim``, scaled as the bundle scales its images, cropped to its own foreground
and centred in one ``roi_size`` grid. The moving brain is then aligned to the fixed one by an ANTs affine
registration, the same start for every method (learned methods such as VoxelMorph are evaluated on affinely
aligned scans in the same way; SyN and elastix then run their own affine stage on it again, T does not): what is
scored is the deformable part, by Dice over VoxelMorph's 30 structures
(``registration/labels.npz``; FreeSurfer's cortical parcels count as the cortex, labels 3 and 42, as aseg labels
it). There is no known displacement between two people, so no endpoint error. These pairs are T1 onto T1: the
sample data has no second contrast of a labelled brain, so they test anatomy, not the cross-modal part.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DATALIST = "datalists/registration.json"
SECTION = "freesurfer"
STRUCTURES = "registration/labels.npz"
# FreeSurfer's cortical parcels, left and right, of the Desikan (aparc: 1000s, 2000s) and Destrieux (aparc.a2009s:
# 11100s, 12100s) atlases: aseg labels them 3 and 42 (left and right cerebral cortex) before parcellation
CORTEX = {3: ((1000, 2000), (11100, 12000)), 42: ((2000, 3000), (12100, 13000))}


def aseg_structures(label: np.ndarray, structures: Sequence[int]) -> np.ndarray:
    """An aparc+aseg label map with the cortical parcels merged back into the cortex (3, 42) and every label not in
    ``structures`` set to 0 (background), as int16."""
    label = np.asarray(label).astype(np.int32)
    out = label.copy()
    for cortex, ranges in CORTEX.items():
        for low, high in ranges:
            out[(label >= low) & (label < high)] = cortex
    out[~np.isin(out, np.asarray(structures))] = 0
    return out.astype(np.int16)


def load_brain(image: str, label: str, structures: Sequence[int], pixdim: Sequence[float], roi_size: Sequence[int],
               intensity_percentile: float = 99.5) -> tuple:
    """One labelled brain as the pairs use it: (image (1, *roi_size) scaled 0..1, labels (1, *roi_size) of
    ``structures``), both MetaTensors in RAS at ``pixdim``, the brain cropped to its foreground and centred."""
    import torch
    from monai.transforms import (
        Compose, CropForegroundd, EnsureChannelFirstd, LoadImaged, Orientationd, ResizeWithPadOrCropd,
        ScaleIntensityRangePercentilesd, Spacingd,
    )

    keys = ["image", "label"]
    transform = Compose([
        LoadImaged(keys, reader="NibabelReader", image_only=True),  # .mgz: nibabel reads it, ITK does not
        EnsureChannelFirstd(keys),
        Orientationd(keys, axcodes="RAS", labels=None),
        Spacingd(keys, pixdim=pixdim, mode=["bilinear", "nearest"]),
        ScaleIntensityRangePercentilesd("image", lower=0.0, upper=intensity_percentile, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(keys, source_key="image"),
        ResizeWithPadOrCropd(keys, spatial_size=roi_size),
    ])
    item = transform({"image": image, "label": label})
    labels = torch.as_tensor(aseg_structures(item["label"].numpy(), structures))
    return item["image"].float(), item["label"].clone().copy_(labels)  # the MetaTensor's metadata, the labels' values


def anatomical_pairs(data_dir: Path, pixdim: Sequence[float], roi_size: Sequence[int], threads: int = 2,
                     intensity_percentile: float = 99.5, ants_venv: Path | None = None) -> list[dict]:
    """Both directions of the two FreeSurfer brains (``DATALIST``'s ``SECTION``), the moving one affinely aligned to
    the fixed one by ANTs (``tools.registration_baseline.syn_register``, type ``Affine``): a list of
    ``{"pair", "fixed", "moving", "label", "label_fixed", "affine_dice", "unaligned_dice", "affine_seconds"}``, the
    images (1, *roi_size), the labels those of ``STRUCTURES`` present. ``ants_venv``: the ANTs virtualenv
    (default ``tools.registration_baseline.ANTS_VENV``)."""
    import torch
    from monai.networks.blocks import Warp

    from common.data import load_datalist
    from common.registration import dice
    from tools.registration_baseline import ANTS_VENV, syn_register

    data_dir = Path(data_dir)
    entries = load_datalist(data_dir / DATALIST, SECTION, {"image": "image", "label": "label"}, base_dir=data_dir)
    if len(entries) < 2:
        raise ValueError(f"'{data_dir / DATALIST}' section '{SECTION}' lists {len(entries)} brain(s); the pairs need two.")
    structures = np.load(data_dir / STRUCTURES)["labels"].tolist()
    brains = {e.get("subject", e["image"]): load_brain(e["image"], e["label"], structures, pixdim, roi_size, intensity_percentile)
              for e in entries}
    if len(brains) < 2:
        raise ValueError(f"'{data_dir / DATALIST}' section '{SECTION}' lists {len(brains)} distinct subject(s); the "
                         "pairs need two.")
    pairs = []
    for moving_name, (moving, moving_label) in brains.items():
        for fixed_name, (fixed, fixed_label) in brains.items():
            if moving_name == fixed_name:
                continue
            start = time.perf_counter()
            affine, _ = syn_register(fixed[0].numpy(), moving[0].numpy(), pixdim, threads=threads, transform="Affine",
                                     venv=ants_venv or ANTS_VENV)
            ddf = torch.as_tensor(affine, dtype=torch.float32)[None]  # (1, 3, *roi_size), voxels
            aligned = Warp("bilinear", "zeros")(moving[None].as_tensor(), ddf)[0]
            aligned_label = Warp("nearest", "zeros")(moving_label[None].as_tensor().float(), ddf)[0].round().short()
            # on the fixed grid now: the fixed image's grid metadata, the moving image's file name
            aligned, aligned_label = fixed.clone().copy_(aligned), fixed_label.clone().copy_(aligned_label)
            for image, source in ((aligned, moving), (aligned_label, moving_label)):
                image.meta["filename_or_obj"] = source.meta.get("filename_or_obj")
            pairs.append({
                "pair": f"{moving_name} onto {fixed_name}",
                "fixed": fixed, "moving": aligned, "label": aligned_label, "label_fixed": fixed_label,
                "unaligned_dice": dice(moving_label.as_tensor(), fixed_label.as_tensor()),
                "affine_dice": dice(aligned_label.as_tensor(), fixed_label.as_tensor()),
                "affine_seconds": time.perf_counter() - start,
            })
    return pairs
