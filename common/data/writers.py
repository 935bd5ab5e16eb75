"""Output files that are either complete or absent: a killed run never leaves a truncated NIfTI under its name."""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from pathlib import Path

from monai.config import PathLike
from monai.data import NibabelWriter

from .files import write_text_atomic  # noqa: F401  (the text twin of AtomicNibabelWriter)

logger = logging.getLogger(__name__)


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` writing to a temporary file beside the target, then renaming it into place
    (``os.replace`` is atomic on one file system). Use as ``SaveImaged(writer=AtomicNibabelWriter)``."""

    def write(self, filename: PathLike, verbose: bool = False, **obj_kwargs) -> None:
        target = Path(filename)
        if verbose:
            logger.info("writing: %s", target)
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = ".nii.gz" if target.name.endswith(".nii.gz") else target.suffix  # nibabel picks the format by suffix
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.partial{suffix}"):  # left by a killed run
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".partial{suffix}", dir=target.parent)
        os.close(fd)
        try:
            super().write(tmp, verbose=False, **obj_kwargs)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private; the output gets the usual permissions
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
