"""Datalists and MONAI dictionary transforms for paired, unpaired and multi-contrast data, CT in HU, and
registration pairs with known deformations.

Each name is imported from its module on first use (PEP 562), so that a tool needing only the datalist or grid
helpers (``tools.datalist``) does not pay for importing MONAI's transforms and torch.
"""

import importlib

_MODULES = {
    # dicom
    "CheckDicomSeriesd": "dicom",
    "check_dicom_series": "dicom",
    # writers
    "AtomicNibabelWriter": "writers",
    # ct
    "CheckHUd": "ct",
    "HUWindowd": "ct",
    "RandColocatedPatchd": "ct",
    "hu_to_window": "ct",
    "window_to_hu": "ct",
    # contrasts
    "InvertStackd": "contrasts",
    "StackContrastsd": "contrasts",
    "contrast_inputs": "contrasts",
    "expand_input_subsets": "contrasts",
    "given_contrasts": "contrasts",
    "input_contrasts": "contrasts",
    "input_subsets": "contrasts",
    "missing_flags": "contrasts",
    "random_input_subsets": "contrasts",
    "with_inputs": "contrasts",
    # transforms
    "CheckImaged": "transforms",
    "CheckSameGridd": "transforms",
    "ForegroundMaskd": "transforms",
    "RandForegroundSliced": "transforms",
    "ScalePercentiled": "transforms",
    "slice_context": "transforms",
    # artefacts
    "RandKSpaceMotiond": "artefacts",
    # datalist
    "input_files": "datalist",
    "load_datalist": "datalist",
    # harmonisation
    "HistogramStandardised": "harmonisation",
    "WhiteMatterPeakScaled": "harmonisation",
    "white_matter_peak": "harmonisation",
    "intensity_scaling": "harmonisation",
    "load_landmarks": "harmonisation",
    "standard_landmarks": "harmonisation",
    # registration
    "CheckOverlapd": "registration",
    "DisplacementToWorldd": "registration",
    "InterSubjectPairs": "registration",
    "RandSmoothDeformationd": "registration",
    "WarpToFixedd": "registration",
    "smooth_deformation": "registration",
}

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
    raise AttributeError(f"module 'common.data' has no attribute '{name}'")
