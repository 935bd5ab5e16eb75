"""Output files that are either complete or absent: a killed run never leaves a truncated NIfTI under its name."""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from pathlib import Path

from monai.config import PathLike
from monai.data import NibabelWriter

logger = logging.getLogger(__name__)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` (parents created) through a temporary file beside it and ``os.replace``: readers
    see the old file or the whole new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
