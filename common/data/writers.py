"""Output files that are either complete or absent: a killed run never leaves a truncated NIfTI under its name."""

from __future__ import annotations

import logging
from pathlib import Path

from monai.config import PathLike
from monai.data import NibabelWriter

from .files import atomic_path

logger = logging.getLogger(__name__)


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` writing to a temporary file beside the target, then renaming it into place
    (``os.replace`` is atomic on one file system). Use as ``SaveImaged(writer=AtomicNibabelWriter)``."""

    def write(self, filename: PathLike, verbose: bool = False, **obj_kwargs) -> None:
        target = Path(filename)
        if verbose:
            logger.info("writing: %s", target)
        suffix = ".nii.gz" if target.name.endswith(".nii.gz") else target.suffix  # nibabel picks the format by suffix
        with atomic_path(target, f".partial{suffix}", clear_stale=True) as tmp:
            super().write(str(tmp), verbose=False, **obj_kwargs)
