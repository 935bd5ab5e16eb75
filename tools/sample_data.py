"""Fetch the project's real sample scans and write datalists for them.

Tests, the demo and small CPU training runs use a few openly published scans (brain MRI, CT,
registration atlases). They are not committed to this repository; this tool gives every user the
same bytes, each checked against a pinned SHA-256:

    python -m tools.sample_data download [--dest data] [--only brain_mri,ct,registration] [--extended]
    python -m tools.sample_data import --from ../shared/data [--dest data] [--only ...]
    python -m tools.sample_data verify [--dest data] [--only ...]

Sets (``--only``; default all but ``ct_extended``): ``brain_mri_quick`` (the quick-start subset the demos use: 5
subjects, 49 MB), ``brain_mri`` (all 23 co-registered subjects, 210 MB: 21 for training, 2 held out),
``brain_mri_raw`` (two raw clinical studies whose contrasts lie on their own grids, 16 MB), ``ct`` (10 MB),
``registration`` (9 MB), and, only when named, ``ct_extended``: four CT DICOM series (two portal-venous abdomens of
3D-IRCADb-01, the non-contrast LIDC-IDRI-0314 and one phase of a non-contrast 4D-CT) and IRCADb patient 17's masks of
the arteries, portal vein, liver and bone (1140 slice files, 481 MB, listed with their SHA-256 in
``tools/sample_lists/ct_extended.tsv``) and ``ct_extended.json``, which trains the CT bundle on them, holds the
non-contrast example_ct out and names the masked scan as the real contrast reference of the evaluation.
``--extended`` downloads 34 further people listed in ``tools/sample_lists/`` (7 BraTS cases checked by SHA-256, 27
OpenMS patients checked by git blob id) into the same layout, and ``brain_mri_extended.json`` trains on them too.

``download`` fetches each file from its public GitHub origin at a pinned commit, i.e.
``{base}/<owner>/<repo>/<commit>/<path>`` with base ``https://raw.githubusercontent.com``.
Set the environment variable ``SAMPLE_DATA_BASE_URL`` to another prefix (e.g.
``http://127.0.0.1:8000``, a mirror with the same layout) to override it.
``import`` copies the same files from a local folder with the same layout (``--from``).
Each file goes to a temp file beside its target, is hash-checked, then moved into place with
``os.replace``: a failed or mismatched file leaves nothing behind. Files already present with
the right hash are skipped. Both end by writing ``<dest>/datalists/*.json`` (paths relative to
``<dest>``, see ``tools/sample_datalists.py``) for every datalist whose files are all present.

``ch2bet.nii.gz`` and ``aal.nii.gz`` were taken from the Debian package ``mricron-data``, which
recompressed them: the deflate stream equals the copy in github.com/neurolabusc/MRIcron, only the
gzip header differs (no stored name, another mtime). ``download`` rewrites that header
(``gzip_mtime``), and the SHA-256 check proves the result is identical. ``mricron-data.copyright``
exists only in the Debian package: it is ``local import only`` and ``download`` skips it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Optional

from common.data.datalist import is_dicom_series
from common.data.files import atomic_path, sha256_of, write_text_atomic
from tools.sample_datalists import datalists
from tools.sample_manifest import MANIFEST, OPT_IN_SETS, SETS, Entry, ct_extended_manifest, extended_manifest

DEFAULT_BASE_URL = "https://raw.githubusercontent.com"


class SampleDataError(RuntimeError):
    """A file is missing, could not be fetched, or has the wrong SHA-256."""


class NoNetworkError(SampleDataError):
    """The download server cannot be reached at all: trying the other files would only repeat the failure."""


def python_command() -> str:
    """The interpreter running now, as a person would type it from the current folder (``.venv/bin/python``), so that
    a printed command runs with the same packages."""
    exe = Path(sys.executable)
    try:
        return os.path.relpath(exe) if exe.is_relative_to(Path.cwd()) else str(exe)
    except ValueError:  # another drive (Windows)
        return str(exe)


def local_copy_hint() -> str:
    """What to run when the network is out of reach: the import from a local copy, with this interpreter."""
    python = python_command()
    return (f"take the files from a local copy instead: {python} -m tools.sample_data import --from DIR (the demo: "
            f"{python} -m tools.demo --data-from DIR), where DIR holds the data root's folders as a download writes "
            f"them, e.g. DIR/brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz")


def git_blob_sha1_of(path: Path) -> str:
    """The id git gives the file's content: SHA-1 of ``b"blob <size>\\0"`` followed by the bytes."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mismatch(entry: Entry, path: Path) -> Optional[str]:
    """None if ``path`` holds the entry's bytes, else what was expected and found."""
    if entry.sha256 is not None:
        actual = sha256_of(path)
        return None if actual == entry.sha256 else f"SHA-256 mismatch (expected {entry.sha256}, got {actual})"
    actual = git_blob_sha1_of(path)
    return None if actual == entry.git_blob_sha1 else f"git blob id mismatch (expected {entry.git_blob_sha1}, got {actual})"


def select(sets: Optional[Iterable[str]] = None, files: Optional[Iterable[str]] = None,
           extended: bool = False) -> list[Entry]:
    """Manifest entries of the named ``sets`` (default all), with the extended set's if asked, and, if ``files`` is
    given, only those with a path in it."""
    sets = set(sets or [name for name in SETS if name not in OPT_IN_SETS])
    unknown = sets - set(SETS)
    if unknown:
        raise SampleDataError(f"unknown set(s) {sorted(unknown)}; choose from {list(SETS)}")
    groups = {g for name in sets for g in SETS[name]}
    entries = [e for e in MANIFEST if e.group in groups] + (extended_manifest() if extended else [])
    entries += ct_extended_manifest() if "ct_extended" in sets else []
    if files is not None:
        files = set(files)
        missing = files - {e.path for e in entries}
        if missing:
            raise SampleDataError(f"not in the manifest's selected sets: {sorted(missing)}")
        entries = [e for e in entries if e.path in files]
    return entries


def _fix_gzip_header(path: Path, mtime: int) -> None:
    """Replace a gzip member header by a plain one (no name/comment/extra, given mtime, OS=Unix)."""
    data = path.read_bytes()
    if data[:3] != b"\x1f\x8b\x08":
        return  # not gzip: leave it, the hash check will complain
    flags, i = data[3], 10
    try:
        if flags & 4:  # FEXTRA
            i += 2 + struct.unpack("<H", data[i:i + 2])[0]
        for bit in (8, 16):  # FNAME, FCOMMENT: zero-terminated
            if flags & bit:
                i = data.index(b"\0", i) + 1
    except (struct.error, ValueError):
        return  # truncated header: the hash check will complain
    if flags & 2:  # FHCRC
        i += 2
    path.write_bytes(b"\x1f\x8b\x08\x00" + struct.pack("<I", mtime) + b"\x00\x03" + data[i:])


def _place(entry: Entry, dest: Path, fill: Callable[[Path], None], source: str) -> bool:
    """Fill a temp file beside the target, check its hash, move it into place. False = already there."""
    target = dest / entry.path
    if target.is_file() and _mismatch(entry, target) is None:
        return False
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]  # removed again on failure
    try:
        with atomic_path(target, ".part") as tmp:  # in place only once whole and checked
            fill(tmp)
            problem = _mismatch(entry, tmp)
            if problem:
                raise SampleDataError(f"{entry.path}: {problem} from {source}")
    finally:
        for folder in created:  # deepest first: a failed file leaves no empty folder behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return True


def _run(entries: list[Entry], dest: Path, do_one: Callable[[Entry], str]) -> None:
    """Apply ``do_one`` to every entry, report, write datalists, then raise all errors at once."""
    errors = []
    for e in entries:
        try:
            print(f"{do_one(e):>10}  {e.path}")
        except NoNetworkError:
            raise
        except SampleDataError as exc:
            errors.append(str(exc))
            print(f"{'FAILED':>10}  {exc}", file=sys.stderr)
    for p in write_datalists(dest):
        print(f"{'datalist':>10}  {p}")
    if errors:
        raise SampleDataError(f"{len(errors)} file(s) failed:\n  " + "\n  ".join(errors))


def download(dest, groups=None, base_url=None, files=None, extended: bool = False) -> list[str]:
    """Download the files of the sets ``groups`` (and the extended set's); returns the paths skipped as
    ``local import only``."""
    dest = Path(dest)
    base = (base_url or os.environ.get("SAMPLE_DATA_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    entries = select(groups, files, extended)
    local = [e.path for e in entries if e.local_only]

    def one(e: Entry) -> str:
        url = f"{base}/{e.repo}/{e.commit}/{urllib.parse.quote(e.origin)}"  # origins may hold spaces, '(', ')'

        def fill(tmp: Path) -> None:
            try:
                with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
            except urllib.error.HTTPError as exc:  # the server answered: this file is the problem
                raise SampleDataError(f"{e.path}: download of {url} failed: {exc}") from exc
            except urllib.error.URLError as exc:  # no answer: no network, or the host is down
                raise NoNetworkError(f"cannot reach {base} ({exc.reason}); {local_copy_hint()}") from exc
            except OSError as exc:  # cut short, or a local write failed
                raise SampleDataError(f"{e.path}: download of {url} failed: {exc}") from exc
            if e.gzip_mtime is not None:
                _fix_gzip_header(tmp, e.gzip_mtime)

        return "download" if _place(e, dest, fill, url) else "present"

    _run([e for e in entries if not e.local_only], dest, one)
    for p in local:
        print(f"local import only (not downloadable): {p}\n  take it from a local copy: "
              f"python -m tools.sample_data import --from <folder> --dest {dest}")
    return local


def import_from(src, dest, groups=None, files=None, extended: bool = False) -> None:
    """Copy the selected files from a local folder laid out like the data root."""
    src, dest = Path(src), Path(dest)

    def one(e: Entry) -> str:
        source = src / e.path
        if not source.is_file():
            raise SampleDataError(f"{e.path}: missing in {src}")
        return "import" if _place(e, dest, lambda tmp: shutil.copyfile(source, tmp), str(source)) else "present"

    _run(select(groups, files, extended), dest, one)


def verify(dest, groups=None, extended: bool = False) -> list[str]:
    """Re-hash the selected files under ``dest``; returns one line per missing or wrong file."""
    problems = []
    for e in select(groups, extended=extended):
        p = Path(dest) / e.path
        if not p.is_file():
            problems.append(f"missing: {e.path}")
        elif problem := _mismatch(e, p):
            problems.append(f"mismatch: {e.path} ({problem})")
    return problems



def _paths(obj) -> list[str]:
    if isinstance(obj, dict):
        return [p for v in obj.values() for p in _paths(v)]
    if isinstance(obj, list):
        return [p for v in obj for p in _paths(v)]
    return [obj] if isinstance(obj, str) and "/" in obj else []


def write_datalists(dest: Path) -> list[Path]:
    """Write ``dest/datalists/<name>.json`` for each datalist whose files all exist under ``dest``."""
    dest, written = Path(dest), []
    for name, content in datalists().items():
        parts = {k: v for k, v in content.items() if k not in ("description", "contrasts")}
        if all((dest / p).is_file() or is_dicom_series(dest / p) for p in _paths(parts)):
            out = dest / "datalists" / name
            write_text_atomic(out, json.dumps(content, indent=2) + "\n")
            written.append(out)
    return written


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.sample_data", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, helptext in (("download", "download from the pinned public origins"),
                           ("import", "copy from a local folder laid out like the data root"),
                           ("verify", "re-hash the files under --dest")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--dest", default="data", help="data root (default: data)")
        p.add_argument("--only", default=None, help=f"comma-separated sets from {','.join(SETS)} (default: all but {','.join(OPT_IN_SETS)})")
        p.add_argument("--extended", action="store_true",
                       help="also the 34 further people of tools/sample_lists (about 500 MB; not in the shared copy)")
        if name == "import":
            p.add_argument("--from", dest="src", required=True, help="local folder, e.g. ../shared/data")
    args = ap.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()] if args.only else None
    try:
        if args.cmd == "download":
            download(args.dest, groups, extended=args.extended)
        elif args.cmd == "import":
            import_from(args.src, args.dest, groups, extended=args.extended)
        else:
            problems = verify(args.dest, groups, args.extended)
            for line in problems:
                print(line, file=sys.stderr)
            print(f"{len(problems)} problem(s)" if problems else "all files present and verified")
            return 1 if problems else 0
    except SampleDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
