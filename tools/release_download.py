"""Downloading a released bundle safely: the zip's SHA-256 checked while it streams, every member checked (no
absolute path, no escape, no link, no duplicate, a size limit), unpacked beside the destination and renamed into place
only when whole (``python -m tools.release download``; ``tools/release.py`` builds the releases)."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import shutil
import stat
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from common.data.files import sha256_of

MAX_UNPACKED = 8 << 30  # refuse archives that claim more than 8 GiB unpacked


class ReleaseError(RuntimeError):
    """A release or download refused or failed; the message says why."""


# ------------------------------------------------------------------------------------------- download


def _member_problem(info: zipfile.ZipInfo, top: str | None) -> str | None:
    name = info.filename
    if not name or "\\" in name or "\x00" in name:
        return "an empty name, a backslash or a NUL"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    parts = PurePosixPath(name).parts
    if any(p in ("..", ".") for p in parts) or "//" in name:
        return "a '..' or '.' component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    if top is not None and parts[0] != top:
        return f"a path outside the bundle folder '{top}/'"
    if len(parts) == 1 and not info.is_dir():
        return "a file at the top level (a bundle zip holds one folder)"
    return None


def check_archive(zf: zipfile.ZipFile, name: str | None = None) -> str:
    """The one top-level folder of a bundle zip; raises ReleaseError for any unsafe or stray member."""
    infos = zf.infolist()
    if not infos:
        raise ReleaseError("the archive is empty.")
    top = name or PurePosixPath(infos[0].filename).parts[0]
    seen, total = set(), 0
    for info in infos:
        problem = _member_problem(info, top)
        if problem:
            raise ReleaseError(f"refusing the archive: member '{info.filename}' has {problem}.")
        key = info.filename.rstrip("/")
        if key in seen:
            raise ReleaseError(f"refusing the archive: member '{info.filename}' appears twice.")
        seen.add(key)
        total += info.file_size
    if total > MAX_UNPACKED:
        raise ReleaseError(f"refusing the archive: {total} bytes unpacked exceeds {MAX_UNPACKED}.")
    return top


def _check_large_files(bundle: Path) -> None:
    """Each weight listed in ``large_files.yml`` exists in the bundle with that SHA-256."""
    listing = bundle / "large_files.yml"
    if not listing.is_file():
        return
    import yaml

    for entry in (yaml.safe_load(listing.read_text(encoding="utf-8")) or {}).get("large_files", []):
        path = (bundle / entry["path"]).resolve()
        if bundle.resolve() not in path.parents:
            raise ReleaseError(f"large_files.yml lists '{entry['path']}' outside the bundle.")
        if str(entry.get("hash_type", "sha256")).lower() != "sha256" or not entry.get("hash_val"):
            raise ReleaseError(f"large_files.yml gives no SHA-256 for '{entry['path']}'.")
        if not path.is_file() or sha256_of(path) != str(entry["hash_val"]).lower():
            raise ReleaseError(f"'{entry['path']}' is missing or does not match its SHA-256 in large_files.yml.")


def download(url: str, sha256: str, dest: str | os.PathLike, name: str | None = None, timeout: float = 60) -> Path:
    """Downloads a bundle zip to a temporary file in ``dest``, checks its SHA-256 (and Content-Length), its
    members (one top-level folder, ``name`` if given; no absolute, ``..`` or symlink members) and its weights
    against ``large_files.yml``, extracts it into a temporary folder and renames that into ``dest/<name>``.
    Any failure leaves ``dest`` as it was. Returns the bundle folder."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256 or ""):
        raise ReleaseError("a SHA-256 (64 hex digits) is required.")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
    try:
        archive, digest, received = tmp / "bundle.zip", hashlib.sha256(), 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as f:
                expected = response.headers.get("Content-Length")
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    f.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
        except http.client.IncompleteRead as e:
            raise ReleaseError(f"download of '{url}' was cut short: {e!r}") from e
        except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError, timeouts, resets, bad responses
            raise ReleaseError(f"download of '{url}' failed: {e!r}") from e
        if expected is not None and received != int(expected):
            raise ReleaseError(f"download of '{url}' was cut short: {received} of {expected} bytes.")
        if digest.hexdigest() != sha256.lower():
            raise ReleaseError(f"SHA-256 mismatch for '{url}': got {digest.hexdigest()}, expected {sha256.lower()}.")
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile as e:
            raise ReleaseError(f"'{url}' is not a zip archive: {e}") from e
        with zf:
            top = check_archive(zf, name)
            final = dest / top
            if final.exists():
                raise ReleaseError(f"'{final}' exists already; remove it or pick another --dest.")
            staging = tmp / "extract"
            staging.mkdir()
            root = staging.resolve()
            for info in zf.infolist():
                target = (staging / info.filename).resolve()
                if target != root and root not in target.parents:
                    raise ReleaseError(f"refusing the archive: member '{info.filename}' escapes the target.")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        _check_large_files(staging / top)
        os.rename(staging / top, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------- command line


def _download_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.release download",
                                     description="Download a bundle zip safely (SHA-256, member checks, atomic).")
    parser.add_argument("--url", required=True)
    parser.add_argument("--sha256", required=True, help="the zip's SHA-256 (releases/index.json)")
    parser.add_argument("--dest", default=".", help="folder to put <name>/ in (default: the current folder)")
    parser.add_argument("--name", help="expected top-level folder (the bundle name)")
    args = parser.parse_args(argv)
    try:
        print(download(args.url, args.sha256, args.dest, args.name))
    except ReleaseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
