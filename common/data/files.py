"""Files that are either complete or absent, and their SHA-256 (no MONAI or torch import: the datalist and sample-data
tools use it). The one place for atomic writing: a killed run never leaves a truncated file under the target's name."""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ".tmp", clear_stale: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside ``target`` (parents created; ``suffix`` ends its name, so a writer that picks the
    format by suffix sees the target's) to write the whole file to; on leaving the block without an error it becomes
    ``target`` by ``os.replace`` (atomic on one file system) with the usual permissions, on an error it is removed.
    ``clear_stale`` first removes such temporary files that a killed run left beside the target."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if clear_stale:
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*{glob.escape(suffix)}"):
            stale.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private; the output gets the usual permissions
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` (parents created) through ``atomic_path``: readers see the old file or the whole new
    one, never half of it."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
