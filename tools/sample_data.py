"""Fetch the project's real sample scans and write datalists for them.

Tests, the demo and small CPU training runs use a few openly published scans (brain MRI, CT,
registration atlases). They are not committed to this repository; this tool gives every user the
same bytes, each checked against a pinned SHA-256:

    python -m tools.sample_data download [--dest data] [--only brain_mri,ct,registration]
    python -m tools.sample_data import --from ../shared/data [--dest data] [--only ...]
    python -m tools.sample_data verify [--dest data] [--only ...]

``download`` fetches each file from its public GitHub origin at a pinned commit, i.e.
``{base}/<owner>/<repo>/<commit>/<path>`` with base ``https://raw.githubusercontent.com``.
Set the environment variable ``SAMPLE_DATA_BASE_URL`` to another prefix (e.g.
``http://127.0.0.1:8000``, a mirror with the same layout) to override it.
``import`` copies the same files from a local folder with the same layout (``--from``).
Each file goes to a temp file beside its target, is hash-checked, then moved into place with
``os.replace``: a failed or mismatched file leaves nothing behind. Files already present with
the right hash are skipped. Both end by writing ``<dest>/datalists/*.json`` (paths relative to
``<dest>``) for every group whose files are all present.

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
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
GROUPS = ("brain_mri", "ct", "registration")


class SampleDataError(RuntimeError):
    """A file is missing, could not be fetched, or has the wrong SHA-256."""


class NoNetworkError(SampleDataError):
    """The download server cannot be reached at all: trying the other files would only repeat the failure."""


LOCAL_COPY_HINT = ("take the files from a local copy instead: python -m tools.sample_data import --from DIR "
                   "(the demo: python -m tools.demo --data-from DIR), DIR laid out like the data root")


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the data root
    group: str
    repo: Optional[str]  # owner/name on GitHub; None = local import only
    commit: Optional[str]
    origin: Optional[str]  # path inside the repository
    sha256: str
    gzip_mtime: Optional[int] = None  # rewrite the gzip header (no name, this mtime) after download

    @property
    def local_only(self) -> bool:
        return self.repo is None


_AURORA = ("BrainLesion/preprocessing", "b9c60df39d7ca4371a1d7dc96b05197491a50a15")
_TCGA = ("BrainLesion/preprocessing", "7754299d86f4c818d79771efa585d1e493c9fb7c")
_TCGA_DIR = "example/example_data/TCGA-DU-7294/TCGA-DU-7294_brainles"
_TS = ("wasserth/TotalSegmentator", "0e65a448d557382b1e925276212b3bec7f5aff83")
_TS_DIR = "tests/reference_files"
_VM = ("voxelmorph/voxelmorph", "ca28315d0ba24cd8946ac4f6ed081e049e5264fe")
_MRICRON = ("neurolabusc/MRIcron", "ac40c6acb2ea15d57ac13311954a2d7a579b8d25")
_GLI = ("BrainLesion/tutorials", "a2d3fffe821e0dfd3bb62520985239324eaeda9a")
_GLI_DIR = "BraTS/data/segmentation/BraTS-GLI-00001-000"
_CSTAR = ("neurolabusc/VolumeRenderingData", "d15be4d1863d1372270e38d8fe95bffaf80cce3a")
_SPLEEN = ("ivadomed/data-testing", "794a3075175266758d1bb95d864672a045a7918c")
_FS_MRTRIX = ("MRtrix3/script_test_data", "b89990f5aae924e5cf9d61938ebe209ad2152a90")
_FS_NIIVUE = ("niivue/niivue", "9255c43ce83c8d69ca3fe2d9ea289cc71936e6af")
_DEBIAN_GZIP_MTIME = 0x63C7DEBB  # header of the mricron-data 1.2.20211006+dfsg-4 copies

_B = "brain_mri/BraTS-MET-00110-000/BraTS-MET-00110-000"
_G = "brain_mri/BraTS-GLI-00001-000/BraTS-GLI-00001-000"
_C = "brain_mri/CSTAR-stroke"
_T = "brain_mri/TCGA-DU-7294"
MANIFEST: list[Entry] = [
    Entry(f"{_G}-t1c.nii.gz", "brain_mri", *_GLI, f"{_GLI_DIR}/BraTS-GLI-00001-000-t1c.nii.gz",
          "4399faadcc45c8a4541313cdf88aced7d835ed59ac3078d950e0eac293d603f5"),
    Entry(f"{_G}-t1n.nii.gz", "brain_mri", *_GLI, f"{_GLI_DIR}/BraTS-GLI-00001-000-t1n.nii.gz",
          "e860924b936e301ddeba20409fbb59dde322475cb49328f1b46a9235c792e73e"),
    Entry(f"{_G}-t2f.nii.gz", "brain_mri", *_GLI, f"{_GLI_DIR}/BraTS-GLI-00001-000-t2f.nii.gz",
          "82aed8546af5e6d8d94fd91c56227abdcf6120130390d1556c4342a208980604"),
    Entry(f"{_G}-t2w.nii.gz", "brain_mri", *_GLI, f"{_GLI_DIR}/BraTS-GLI-00001-000-t2w.nii.gz",
          "4cd389cc57d12134a30a898c66532228126b9a7d0600ee578e82a32144528b51"),
    Entry(f"{_B}-t1c.nii.gz", "brain_mri", *_AURORA, "AURORA/example_data/BraTS-MET-00110-000-t1c.nii.gz",
          "60dea0229037efb7f51e8c61697013094375ad02e24c1924de54035d41d777fe"),
    Entry(f"{_B}-t1n.nii.gz", "brain_mri", *_AURORA, "AURORA/example_data/BraTS-MET-00110-000-t1n.nii.gz",
          "236a6abd90ae5cc116867d9e5f8321a5860fb8e66f0b096703d9853b523a3c86"),
    Entry(f"{_B}-t2f.nii.gz", "brain_mri", *_AURORA, "AURORA/example_data/BraTS-MET-00110-000-t2f.nii.gz",
          "e02de5c2594af4e0b137fc934f16ed7570d109222586e117efc147432ad94f9a"),
    Entry(f"{_B}-t2w.nii.gz", "brain_mri", *_AURORA, "AURORA/example_data/BraTS-MET-00110-000-t2w.nii.gz",
          "42b39f467fb3d73c81e0766d02b198ae84c8d87bdaadc123e7d68eb4873d0fff"),
    Entry(f"{_C}/FLAIR.nii.gz", "brain_mri", *_CSTAR, "stroke/FLAIR.nii.gz",
          "a50cf2bbc22875644fa7f49b3a7d58f0287427a6e37faed9d420ce3495346666"),
    Entry(f"{_C}/T1.nii.gz", "brain_mri", *_CSTAR, "stroke/T1.nii.gz",
          "8e28e653578a2cd21d15064da5b089db16a205887c76baed8a65d01e8f2ab79e"),
    Entry(f"{_C}/T2.nii.gz", "brain_mri", *_CSTAR, "stroke/T2.nii.gz",
          "7cc2d618998228998fb1a9abf3ccfa8ed844aa99d84c9c6bf26b763a44406c89"),
    Entry(f"{_T}/TCGA-DU-7294_fla_bet_normalized.nii.gz", "brain_mri", *_TCGA,
          f"{_TCGA_DIR}/normalized_bet/TCGA-DU-7294_fla_bet_normalized.nii.gz",
          "5df9798cbe2ac43818ce1db5f64b28484bcf8ede77485536a90eaa897e7a6fbe"),
    Entry(f"{_T}/TCGA-DU-7294_t1_bet_normalized.nii.gz", "brain_mri", *_TCGA,
          f"{_TCGA_DIR}/normalized_bet/TCGA-DU-7294_t1_bet_normalized.nii.gz",
          "87d560fe71fc3c24a7341401338fd429c50dd210cb4d22747dc2793c293166ed"),
    Entry(f"{_T}/TCGA-DU-7294_t1c_bet_normalized.nii.gz", "brain_mri", *_TCGA,
          f"{_TCGA_DIR}/normalized_bet/TCGA-DU-7294_t1c_bet_normalized.nii.gz",
          "95a8397077ece76fa5d8249e84031c779f61549382c60ef39a26ad6b497d5a28"),
    Entry(f"{_T}/TCGA-DU-7294_t2_bet_normalized.nii.gz", "brain_mri", *_TCGA,
          f"{_TCGA_DIR}/normalized_bet/TCGA-DU-7294_t2_bet_normalized.nii.gz",
          "b7977676066fa69c1464cd66824888b6ad54cd0283dffcff20d594c2b5763ee5"),
    Entry(f"{_T}/atlas_bet_t1c_mask.nii.gz", "brain_mri", *_TCGA,
          f"{_TCGA_DIR}/brain-extraction/atlas_bet_t1c_mask.nii.gz",
          "af9326165e1099177a0b3e82d7abe662ce39c454b82d1954608811c1fd75db45"),
    Entry("ct/aorta_report_test_result_models_contrast_phase.json", "ct", *_TS,
          f"{_TS_DIR}/aorta_report/test_result/models/contrast_phase.json",
          "02a64b411cd1d0356fe9967b2de2e09f1b3c70f78e325f6b518f8cdb83ffacde"),
    Entry("ct/aorta_report_test_result_models_ct_cropped.nii.gz", "ct", *_TS,
          f"{_TS_DIR}/aorta_report/test_result/models/ct_cropped.nii.gz",
          "f776ecfa1326e7e21a8c30e5530f517c16f16a59a68fc06e8119cefc7c3b87a0"),
    Entry("ct/example_ct.nii.gz", "ct", *_TS, f"{_TS_DIR}/example_ct.nii.gz",
          "dbd3ae6d614d1d7ef3a46925c30c70038ed52da6b37fdd6afdc7b9b71387e3e1"),
    Entry("ct/example_ct_sm.nii.gz", "ct", *_TS, f"{_TS_DIR}/example_ct_sm.nii.gz",
          "e50c00b2914e2cac0aaee8e7f3b5f57d44d9f21bfd5c0577271c54c0cb49e9fb"),
    Entry("ct/example_seg.nii.gz", "ct", *_TS, f"{_TS_DIR}/example_seg.nii.gz",
          "8be652475a4aaae83103a66bfb3345314b1fc06742807a06cf5005f7a7913a2d"),
    Entry("ct/phase_prediction.json", "ct", *_TS, f"{_TS_DIR}/phase_prediction.json",
          "cc719108e4c71aef4166136005f76ccb2bd9a3052d589e59df9634793601161b"),
    Entry("ct/pulmonary_report_models_ct_cropped.nii.gz", "ct", *_TS,
          f"{_TS_DIR}/pulmonary_report/models/ct_cropped.nii.gz",
          "4da078fe43c9aa4d358903ac95105cea4fbe93b029474e4701bdde4db72126eb"),
    Entry("ct/sub-spleen2_ct.nii.gz", "ct", *_SPLEEN, "ct_scan/sub-spleen2/ct/sub-spleen2_ct.nii.gz",
          "a63966cac6b6997dc339a8694a7b792a4807317784741cd8c36f98c88c0d33f9"),
    Entry("ct/sub-spleen2_ct_seg-manual.nii.gz", "ct", *_SPLEEN,
          "ct_scan/derivatives/labels/sub-spleen2/ct/sub-spleen2_ct_seg-manual.nii.gz",
          "1c3399068e678b817e035bea196439130f56aa0fc5fa3cca1391135f953be21b"),
    Entry("registration/aal.nii.gz", "registration", *_MRICRON, "Resources/templates/aal.nii.gz",
          "b512dcd3f36b77f56be7a9a038134096e66314b7e8c31d25875b96bcf6991454", _DEBIAN_GZIP_MTIME),
    Entry("registration/aal.nii.txt", "registration", *_MRICRON, "Resources/templates/aal.nii.txt",
          "1788d6556a9ec056de9867b2382cf1ce1b51b87ae4cfd9cd25de48ae4dde709e"),
    Entry("registration/ch2bet.nii.gz", "registration", *_MRICRON, "Resources/templates/ch2bet.nii.gz",
          "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1", _DEBIAN_GZIP_MTIME),
    Entry("registration/freesurfer-mrtrix3-sub-01/aparc+aseg.mgz", "registration", *_FS_MRTRIX,
          "freesurfer/sub-01/mri/aparc+aseg.mgz", "3e0cfe2f6a70f329d312ee7a1d257e6132bb943f08a43202af198c444d7311bc"),
    Entry("registration/freesurfer-mrtrix3-sub-01/norm.mgz", "registration", *_FS_MRTRIX,
          "freesurfer/sub-01/mri/norm.mgz", "f92a2908da71b07f81daff2a599ea35082dd4cdf0fb33fa6501037cd28db9387"),
    Entry("registration/freesurfer-niivue/aparc.a2009s+aseg.mgz", "registration", *_FS_NIIVUE,
          "packages/niivue/demos/images/aparc.a2009s+aseg.mgz",
          "fca18efe92dc7693b501dc87a1a58fcaab7f5d2d46aaa547eb259a942c37c6c2"),
    Entry("registration/freesurfer-niivue/norm.mgz", "registration", *_FS_NIIVUE,
          "packages/niivue/demos/images/norm.mgz", "bc0cdf794e60a14ca3425942d3a2b5e95884c28c6df967e1ff3a5f1ef518056e"),
    Entry("registration/labels.npz", "registration", *_VM, "data/labels.npz",
          "23d42ff4572fbd87d9d3bb08c36cf5996e49a76a148a3729b765313b3e024beb"),
    Entry("registration/mricron-data.copyright", "registration", None, None, None,
          "43e7d3d89e7f94213847ae742ff2c0d8e2568e8fc862e94726518417df6183eb"),
    Entry("registration/test_scan.npz", "registration", *_VM, "data/test_scan.npz",
          "32b14f2d7027518d9b3689ca0bdb908a1ed402db1a61ff2eb4c8184a475b12e0"),
]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def select(groups: Optional[Iterable[str]] = None, files: Optional[Iterable[str]] = None) -> list[Entry]:
    """Manifest entries in ``groups`` (default all) and, if given, with a path in ``files``."""
    groups = set(groups or GROUPS)
    unknown = groups - set(GROUPS)
    if unknown:
        raise SampleDataError(f"unknown group(s) {sorted(unknown)}; choose from {list(GROUPS)}")
    entries = [e for e in MANIFEST if e.group in groups]
    if files is not None:
        files = set(files)
        missing = files - {e.path for e in MANIFEST}
        if missing:
            raise SampleDataError(f"not in the manifest: {sorted(missing)}")
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
    if target.is_file() and sha256_of(target) == entry.sha256:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fill(tmp)
        actual = sha256_of(tmp)
        if actual != entry.sha256:
            raise SampleDataError(f"{entry.path}: SHA-256 mismatch (expected {entry.sha256}, "
                                  f"got {actual}) from {source}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
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


def download(dest, groups=None, base_url=None, files=None) -> list[str]:
    """Download the selected files; returns the paths skipped as ``local import only``."""
    dest = Path(dest)
    base = (base_url or os.environ.get("SAMPLE_DATA_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    entries = select(groups, files)
    local = [e.path for e in entries if e.local_only]

    def one(e: Entry) -> str:
        url = f"{base}/{e.repo}/{e.commit}/{e.origin}"

        def fill(tmp: Path) -> None:
            try:
                with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
            except urllib.error.HTTPError as exc:  # the server answered: this file is the problem
                raise SampleDataError(f"{e.path}: download of {url} failed: {exc}") from exc
            except urllib.error.URLError as exc:  # no answer: no network, or the host is down
                raise NoNetworkError(f"cannot reach {base} ({exc.reason}); {LOCAL_COPY_HINT}") from exc
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


def import_from(src, dest, groups=None, files=None) -> None:
    """Copy the selected files from a local folder laid out like the data root."""
    src, dest = Path(src), Path(dest)

    def one(e: Entry) -> str:
        source = src / e.path
        if not source.is_file():
            raise SampleDataError(f"{e.path}: missing in {src}")
        return "import" if _place(e, dest, lambda tmp: shutil.copyfile(source, tmp), str(source)) else "present"

    _run(select(groups, files), dest, one)


def verify(dest, groups=None) -> list[str]:
    """Re-hash the selected files under ``dest``; returns one line per missing or wrong file."""
    problems = []
    for e in select(groups):
        p = Path(dest) / e.path
        if not p.is_file():
            problems.append(f"missing: {e.path}")
        elif (actual := sha256_of(p)) != e.sha256:
            problems.append(f"mismatch: {e.path} (expected {e.sha256}, got {actual})")
    return problems


CONTRASTS = ("t1", "t1c", "t2", "flair")
_BRATS = {"t1": "t1n", "t1c": "t1c", "t2": "t2w", "flair": "t2f"}  # canonical contrast -> BraTS 2023 suffix


def _named(pattern: str, names: dict[str, str]) -> dict[str, str]:
    return {key: pattern.format(name) for key, name in names.items()}


# subject -> (folder under the data root, {key: file name in that folder}). Keys are the canonical contrasts
# the subject has (a contrast that was not acquired is simply absent) plus, optionally, "mask".
_SUBJECTS: dict[str, tuple[str, dict[str, str]]] = {
    "BraTS-MET-00110-000": ("brain_mri/BraTS-MET-00110-000", _named("BraTS-MET-00110-000-{}.nii.gz", _BRATS)),
    "BraTS-GLI-00001-000": ("brain_mri/BraTS-GLI-00001-000", _named("BraTS-GLI-00001-000-{}.nii.gz", _BRATS)),
    "CSTAR-stroke": ("brain_mri/CSTAR-stroke", {"t1": "T1.nii.gz", "t2": "T2.nii.gz", "flair": "FLAIR.nii.gz"}),
    "TCGA-DU-7294": ("brain_mri/TCGA-DU-7294", {
        **_named("TCGA-DU-7294_{}_bet_normalized.nii.gz", {"t1": "t1", "t1c": "t1c", "t2": "t2", "flair": "fla"}),
        "mask": "atlas_bet_t1c_mask.nii.gz"}),
}


def _subject(name: str) -> dict:
    folder, files = _SUBJECTS[name]
    return {"subject": name, **{key: f"{folder}/{file}" for key, file in files.items()}}


def _freesurfer(folder: str, labels: str) -> dict:
    return {"subject": folder, "image": f"registration/{folder}/norm.mgz", "label": f"registration/{folder}/{labels}"}


def datalists() -> dict[str, dict]:
    """The datalists by file name; all paths are relative to the data root."""
    return {
        "brain_mri.json": {
            "description": "Multi-contrast brain MRI, contrasts co-registered within each subject. Training: "
                           "BraTS-MET-00110-000 (int16 raw units, RAS), BraTS-GLI-00001-000 (int16 raw units, LPS) "
                           "and CSTAR-stroke (8-bit, RAS; no T1c was acquired, so its entry has no 't1c' key); "
                           "held out: TCGA-DU-7294 (0..1 floats, LPS, with brain mask). Intensity ranges and "
                           "orientations differ between subjects.",
            "contrasts": list(CONTRASTS),
            "training": [_subject(s) for s in ("BraTS-MET-00110-000", "BraTS-GLI-00001-000", "CSTAR-stroke")],
            "validation": [_subject("TCGA-DU-7294")],
        },
        "ct_unpaired.json": {
            "description": "Unpaired CT: A = non-contrast, B = contrast-enhanced (different patients). "
                           "sub-spleen2_ct is the one contrast-enhanced abdomen, the body region of example_ct, and "
                           "the only contrast scan in training: the contrast chest crops (aorta, pulmonary) show "
                           "another body region, and with them the translation learnt to turn abdomen into chest "
                           "(measured: the unit_gmm model card). Each training entry pairs a non-contrast and a "
                           "contrast scan for co-located patch sampling. Validation: example_ct_sm, 30 slices of the "
                           "same non-contrast scan (not a held-out patient: the sample data has one non-contrast scan), "
                           "with its TotalSegmentator v2 organ labels (example_seg) for scoring the enhancement.",
            "training": [{"subject": "example_ct+sub-spleen2", "A": "ct/example_ct.nii.gz", "B": "ct/sub-spleen2_ct.nii.gz"}],
            "contrast_chest_crops": ["ct/aorta_report_test_result_models_ct_cropped.nii.gz",
                                     "ct/pulmonary_report_models_ct_cropped.nii.gz"],
            "validation": [{"subject": "example_ct_sm", "A": "ct/example_ct_sm.nii.gz", "label": "ct/example_seg.nii.gz"}],
        },
        "registration.json": {
            "description": "Brain registration: Colin27 T1 (ch2bet) with AAL labels in MNI space; "
                           "VoxelMorph test scan (npz: vol, seg) and its evaluated label ids; two FreeSurfer-"
                           "processed brains (norm.mgz: 256^3, 1 mm, LIA, uint8) with aparc+aseg and "
                           "aparc.a2009s+aseg labels, which share the aseg ids of the VoxelMorph scan's seg.",
            "training": [{"image": "registration/ch2bet.nii.gz", "label": "registration/aal.nii.gz"}],
            "testing": [{"npz": "registration/test_scan.npz", "labels": "registration/labels.npz"}],
            "freesurfer": [_freesurfer("freesurfer-mrtrix3-sub-01", "aparc+aseg.mgz"),
                           _freesurfer("freesurfer-niivue", "aparc.a2009s+aseg.mgz")],
        },
    }


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
        if all((dest / p).is_file() for p in _paths(parts)):
            out = dest / "datalists" / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
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
        p.add_argument("--only", default=None, help=f"comma-separated groups from {','.join(GROUPS)}")
        if name == "import":
            p.add_argument("--from", dest="src", required=True, help="local folder, e.g. ../shared/data")
    args = ap.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()] if args.only else None
    try:
        if args.cmd == "download":
            download(args.dest, groups)
        elif args.cmd == "import":
            import_from(args.src, args.dest, groups)
        else:
            problems = verify(args.dest, groups)
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
