"""Datalists and MONAI dictionary transforms for paired, unpaired and multi-contrast data, CT in HU, and registration pairs with known deformations."""

from .artefacts import RandKSpaceMotiond
from .ct import CheckHUd, HUWindowd, RandColocatedPatchd
from .contrasts import InvertStackd, StackContrastsd, contrast_inputs, expand_input_subsets, given_contrasts, input_contrasts, input_subsets, missing_flags, random_input_subsets, with_inputs
from .datalist import input_files, load_datalist
from .harmonisation import HistogramStandardised, WhiteMatterPeakScaled, intensity_scaling, load_landmarks, standard_landmarks, white_matter_peak
from .registration import CheckOverlapd, DisplacementToWorldd, RandSmoothDeformationd, WarpToFixedd, smooth_deformation
from .transforms import CheckImaged, CheckSameGridd, RandForegroundSliced, ScalePercentiled, slice_context
from .writers import AtomicNibabelWriter

__all__ = ["AtomicNibabelWriter", "CheckHUd", "HUWindowd", "RandColocatedPatchd", "InvertStackd", "StackContrastsd", "contrast_inputs", "expand_input_subsets", "given_contrasts", "input_contrasts", "input_subsets", "missing_flags", "random_input_subsets", "with_inputs", "CheckImaged", "RandKSpaceMotiond", "CheckSameGridd", "RandForegroundSliced", "ScalePercentiled", "slice_context", "input_files", "load_datalist", "HistogramStandardised", "WhiteMatterPeakScaled", "white_matter_peak", "intensity_scaling", "load_landmarks", "standard_landmarks", "CheckOverlapd", "DisplacementToWorldd", "RandSmoothDeformationd", "WarpToFixedd", "smooth_deformation"]
