"""Datalists and MONAI dictionary transforms for paired, unpaired and multi-contrast data."""

from .artefacts import RandKSpaceMotiond
from .datalist import input_files, load_datalist
from .transforms import CheckImaged, CheckSameGridd, RandForegroundSliced, ScalePercentiled

__all__ = ["CheckImaged", "RandKSpaceMotiond", "CheckSameGridd", "RandForegroundSliced", "ScalePercentiled", "input_files", "load_datalist"]
