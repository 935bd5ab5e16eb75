"""Tests for tools/sample_data.py on the real sample data (no internet: downloads use a local server)."""

import functools
import gzip
import json
import shutil
import struct
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import SHARED

from tools import sample_data as sd
from tools.sample_datalists import HELD_OUT, QUICK_TRAINING, SUBJECTS, TEST_TRAINING, TRAINING, pipeline
from tools.sample_manifest import GROUPS, LISTS, SETS

ENTRY = {e.path: e for e in sd.MANIFEST}
SMALL_CT = "ct/example_ct_sm.nii.gz"
LABELS = "registration/labels.npz"
AAL = "registration/aal.nii.gz"


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and (p.name.startswith(".") or p.suffix == ".part")]


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_manifest_matches_sha256sums():
    sums = {}
    for line in (SHARED / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.removeprefix("./")] = digest
    assert {e.path: e.sha256 for e in sd.MANIFEST} == sums
    assert [e.path for e in sd.MANIFEST if e.local_only] == ["registration/mricron-data.copyright"]
    # every file in exactly one group, and the sets are unions of groups
    assert {e.group for e in sd.MANIFEST} == set(GROUPS) and len({e.path for e in sd.MANIFEST}) == len(sd.MANIFEST)
    # the opt-in sets (ct_extended) come from lists of their own, not from the shared copy's manifest
    assert {g for groups in SETS.values() for g in groups} == set(GROUPS) | set(sd.OPT_IN_SETS)
    quick = {e.path.split("/")[1] for e in sd.select(["brain_mri_quick"])}
    assert quick == {*QUICK_TRAINING, *HELD_OUT}
    assert {e.path.split("/")[1] for e in sd.select(["brain_mri"])} == set(SUBJECTS)
    assert len(sd.select(["brain_mri_raw"])) == 14


def test_extended_lists_are_the_published_ones_and_check_git_blob_ids():
    for name in ("more_brain_subjects.tsv", "open_ms_data_cross_sectional_MNI.tsv"):
        assert (LISTS / name).read_bytes() == (SHARED / name).read_bytes()
    extended = sd.select(["ct"], extended=True)[len(sd.select(["ct"])):]
    people = {e.path.rsplit("/", 1)[0] for e in extended}
    assert len(people) == 34 and not people & {f"brain_mri/{s}" for s in SUBJECTS}  # no person twice
    assert sum(e.sha256 is not None for e in extended) == 36 and sum(e.git_blob_sha1 is not None for e in extended) == 135
    # the blob ids of the OpenMS files at hand are what the list says (git's own hash, computed here)
    listed = {row.split("\t")[0]: row.split("\t")[1] for row in (LISTS / "open_ms_data_cross_sectional_MNI.tsv").read_text().splitlines()[1:]}
    for e in sd.select(["brain_mri"]):
        if e.repo == "muschellij2/open_ms_data":
            assert sd.git_blob_sha1_of(SHARED / e.path) == listed[e.origin], e.path


def test_import_all_and_datalists(tmp_path):
    sd.import_from(SHARED, tmp_path)
    for e in sd.MANIFEST:
        assert sd.sha256_of(tmp_path / e.path) == e.sha256
    assert sd.verify(tmp_path) == []
    assert not _leftovers(tmp_path)
    assert sorted(p.name for p in (tmp_path / "datalists").iterdir()) == [
        "brain_mri.json", "brain_mri_quick.json", "brain_mri_raw.json", "brain_mri_test.json", "ct_unpaired.json",
        "registration.json"]  # not brain_mri_extended.json: its 34 further people are not at hand
    raw = json.loads((tmp_path / "datalists" / "brain_mri_raw.json").read_text(encoding="utf-8"))
    assert [e["subject"] for e in raw["raw"]] == ["OpenMS-long-patient03-study2", "OpenMS-long-patient04-study1"]
    assert all((tmp_path / p).is_file() for e in raw["raw"] for k, p in e.items() if k != "subject")

    ct = json.loads((tmp_path / "datalists" / "ct_unpaired.json").read_text(encoding="utf-8"))
    assert ct["training"][0]["A"] == "ct/example_ct.nii.gz" and "non-contrast" in ct["description"]
    assert [item["B"] for item in ct["training"]] == ["ct/sub-spleen2_ct.nii.gz"]  # the one contrast abdomen
    assert ct["validation"] == [{"subject": "example_ct_sm", "A": "ct/example_ct_sm.nii.gz", "label": "ct/example_seg.nii.gz"}]
    assert all((tmp_path / p).is_file() for p in ct["contrast_chest_crops"])
    reg = json.loads((tmp_path / "datalists" / "registration.json").read_text(encoding="utf-8"))
    assert reg["training"] == [{"image": "registration/ch2bet.nii.gz", "label": AAL}]
    assert reg["freesurfer"] == [
        {"subject": "freesurfer-mrtrix3-sub-01", "image": "registration/freesurfer-mrtrix3-sub-01/norm.mgz",
         "label": "registration/freesurfer-mrtrix3-sub-01/aparc+aseg.mgz"},
        {"subject": "freesurfer-niivue", "image": "registration/freesurfer-niivue/norm.mgz",
         "label": "registration/freesurfer-niivue/aparc.a2009s+aseg.mgz"}]
    for d in (ct, reg):
        for group in ("training", "validation", "testing", "freesurfer"):
            for item in d.get(group, []):
                assert all((tmp_path / rel).is_file() for key, rel in item.items() if key != "subject")

    # a second run skips everything; the CLI agrees
    sd.import_from(SHARED, tmp_path)
    assert sd.main(["verify", "--dest", str(tmp_path)]) == 0
    (tmp_path / LABELS).unlink()
    _corrupt(tmp_path / SMALL_CT)
    problems = sd.verify(tmp_path)
    assert any(p.startswith("missing: " + LABELS) for p in problems)
    assert any(p.startswith("mismatch: " + SMALL_CT) for p in problems)
    assert sd.main(["verify", "--dest", str(tmp_path)]) == 1


def test_brain_mri_datalists(tmp_path):
    sd.import_from(SHARED, tmp_path, groups=["brain_mri"])
    assert sorted(p.name for p in (tmp_path / "datalists").iterdir()) == [
        "brain_mri.json", "brain_mri_quick.json", "brain_mri_test.json"]
    lists = {n: json.loads((tmp_path / "datalists" / f"{n}.json").read_text(encoding="utf-8"))
             for n in ("brain_mri", "brain_mri_quick", "brain_mri_test")}
    full = lists["brain_mri"]
    assert full["contrasts"] == ["t1", "t1c", "t2", "flair"]
    # 21 training subjects, two held out, none on both sides; the subsets draw from the same split
    train = {item["subject"]: item for item in full["training"]}
    assert len(train) == 21 and [v["subject"] for v in full["validation"]] == ["TCGA-DU-7294", "OpenMS-patient26"]
    assert not set(train) & {"TCGA-DU-7294", "OpenMS-patient26"} and set(train) == set(TRAINING)
    for name, training, held_out in (("brain_mri_quick", QUICK_TRAINING, HELD_OUT), ("brain_mri_test", TEST_TRAINING, HELD_OUT[:1])):
        assert [v["subject"] for v in lists[name]["training"]] == list(training) and set(training) <= set(train)
        assert [v["subject"] for v in lists[name]["validation"]] == list(held_out)
    for item in [*train.values(), *full["validation"]]:
        assert set(item) - {"subject", "pipeline", "mask", "seg", "lesion"} <= set(full["contrasts"])
        assert item["pipeline"] == pipeline(item["subject"])
        for key, rel in item.items():
            if key in ("subject", "pipeline"):
                continue
            assert not Path(rel).is_absolute() and rel.startswith(f"brain_mri/{item['subject']}/")
            resolved = (tmp_path / rel).resolve()
            assert resolved.is_file() and resolved.is_relative_to(tmp_path.resolve())
    for name in ("BraTS-MET-00110-000", "BraTS-GLI-00001-000"):
        prefix = f"brain_mri/{name}/{name}"
        assert train[name] == {"subject": name, "pipeline": "brats2023", "t1": f"{prefix}-t1n.nii.gz", "t1c": f"{prefix}-t1c.nii.gz",
                               "t2": f"{prefix}-t2w.nii.gz", "flair": f"{prefix}-t2f.nii.gz"}
    # each naming scheme onto the canonical contrasts: BraTS 2018 (t1ce), BRATS 2012 (.mha, T1C, truth), OpenMS
    # (T1POST, the manual lesion mask)
    b18 = "brain_mri/Brats18_CBICA_ABM_1/Brats18_CBICA_ABM_1"
    assert train["Brats18_CBICA_ABM_1"] == {"subject": "Brats18_CBICA_ABM_1", "pipeline": "brats2018", "t1": f"{b18}_t1.nii.gz", "t1c": f"{b18}_t1ce.nii.gz",
                                            "t2": f"{b18}_t2.nii.gz", "flair": f"{b18}_flair.nii.gz", "seg": f"{b18}_seg.nii.gz"}
    # the BraTS 2013 cases' thick-slice T1s are left out; their other contrasts stay
    for subject in ("Brats18_2013_3_1", "Brats18_2013_11_1", "Brats18_2013_20_1"):
        assert set(train[subject]) == {"subject", "pipeline", "t1c", "t2", "flair", "seg"}
    assert sum("t1" in item for item in train.values()) == 18
    b12 = "brain_mri/BRATS2012-HG0015/BRATS_HG0015"
    assert train["BRATS2012-HG0015"] == {"subject": "BRATS2012-HG0015", "pipeline": "brats2012", "t1": f"{b12}_T1.mha", "t1c": f"{b12}_T1C.mha",
                                         "t2": f"{b12}_T2.mha", "flair": f"{b12}_FLAIR.mha", "seg": f"{b12}_truth.mha"}
    ms = train["OpenMS-patient07"]
    assert Path(ms["t1c"]).name.startswith("T1POST_") and Path(ms["t1"]).name.startswith("T1_")
    assert Path(ms["lesion"]).name.startswith("GOLD_STANDARD_") and "seg" not in ms
    # CSTAR-stroke has no T1c: its entry lacks the key, and the description says so
    assert train["CSTAR-stroke"] == {"subject": "CSTAR-stroke", "pipeline": "cstar", "t1": "brain_mri/CSTAR-stroke/T1.nii.gz",
                                     "t2": "brain_mri/CSTAR-stroke/T2.nii.gz",
                                     "flair": "brain_mri/CSTAR-stroke/FLAIR.nii.gz"}
    assert "CSTAR-stroke has no T1c" in full["description"]
    val = full["validation"][0]
    assert val["t1"].endswith("_t1_bet_normalized.nii.gz") and val["t1c"].endswith("_t1c_bet_normalized.nii.gz")
    assert val["t2"].endswith("_t2_bet_normalized.nii.gz") and val["flair"].endswith("_fla_bet_normalized.nii.gz")
    assert val["mask"] == "brain_mri/TCGA-DU-7294/atlas_bet_t1c_mask.nii.gz"
    assert "lesion" in full["validation"][1]
    # each subject's pipeline, what balance_by "pipeline" draws equally often: five of them in training
    pipelines = [item["pipeline"] for item in train.values()]
    assert {p: pipelines.count(p) for p in set(pipelines)} == {
        "brats2018": 14, "brats2023": 3, "openms": 2, "brats2012": 1, "cstar": 1}
    assert [v["pipeline"] for v in full["validation"]] == ["tcga", "openms"]


def test_datalist_needs_all_its_files(tmp_path):
    # one brain file missing (CSTAR T2): write_datalists leaves out every brain datalist that lists it
    sd.import_from(SHARED, tmp_path, groups=["brain_mri_quick"])
    assert sorted(p.name for p in (tmp_path / "datalists").iterdir()) == ["brain_mri_quick.json", "brain_mri_test.json"]
    for p in (tmp_path / "datalists").iterdir():
        p.unlink()
    (tmp_path / "brain_mri/CSTAR-stroke/T2.nii.gz").unlink()
    assert sd.write_datalists(tmp_path) == []
    assert not (tmp_path / "datalists" / "brain_mri_quick.json").exists()


def test_import_only_group_writes_only_its_datalist(tmp_path):
    assert sd.main(["import", "--from", str(SHARED), "--dest", str(tmp_path), "--only", "ct"]) == 0
    assert sd.verify(tmp_path, ["ct"]) == []
    assert not (tmp_path / "brain_mri").exists()
    assert [p.name for p in (tmp_path / "datalists").iterdir()] == ["ct_unpaired.json"]


def test_import_refuses_corrupted_and_missing(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "ct").mkdir(parents=True)
    shutil.copy(SHARED / SMALL_CT, src / SMALL_CT)
    _corrupt(src / SMALL_CT)
    with pytest.raises(sd.SampleDataError) as err:
        sd.import_from(src, dest, files=[SMALL_CT, "ct/example_seg.nii.gz"])
    msg = str(err.value)
    assert SMALL_CT in msg and ENTRY[SMALL_CT].sha256 in msg and sd.sha256_of(src / SMALL_CT) in msg
    assert "ct/example_seg.nii.gz: missing" in msg
    assert not (dest / SMALL_CT).exists() and not (dest / "ct/example_seg.nii.gz").exists()
    assert not _leftovers(dest)


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www over HTTP on 127.0.0.1; yields (root folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _serve(root: Path, rel: str, data: bytes) -> None:
    e = ENTRY[rel]
    target = root / e.repo / e.commit / e.origin
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def test_download_good_and_corrupted(server, tmp_path, monkeypatch):
    root, base = server
    dest = tmp_path / "dest"
    _serve(root, SMALL_CT, (SHARED / SMALL_CT).read_bytes())
    bad = bytearray((SHARED / LABELS).read_bytes())
    bad[-1] ^= 0xFF
    _serve(root, LABELS, bytes(bad))
    monkeypatch.setenv("SAMPLE_DATA_BASE_URL", base)  # the override the CLI uses
    with pytest.raises(sd.SampleDataError) as err:
        sd.download(dest, files=[SMALL_CT, LABELS, "registration/test_scan.npz"])
    msg = str(err.value)
    assert LABELS in msg and ENTRY[LABELS].sha256 in msg and "mismatch" in msg
    assert "registration/test_scan.npz" in msg and "404" in msg  # not served
    assert sd.sha256_of(dest / SMALL_CT) == ENTRY[SMALL_CT].sha256
    assert not (dest / LABELS).exists() and not (dest / "registration/test_scan.npz").exists()
    assert not _leftovers(dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [SMALL_CT]

    # present with the right hash: skipped without touching the server
    shutil.rmtree(root / ENTRY[SMALL_CT].repo)
    sd.download(dest, files=[SMALL_CT], base_url=base)
    assert not any(SMALL_CT in p for p in sd.verify(dest, ["ct"]))


def test_download_rewrites_mricron_gzip_header_and_skips_local_only(server, tmp_path):
    root, base = server
    dest = tmp_path / "dest"
    # the MRIcron copy: same deflate stream, header with a stored file name and another mtime
    debian = (SHARED / AAL).read_bytes()
    mricron = b"\x1f\x8b\x08\x08" + struct.pack("<I", 0x440D8475) + b"\x00\x03aal.nii\x00" + debian[10:]
    assert gzip.decompress(mricron) == gzip.decompress(debian) and mricron != debian
    _serve(root, AAL, mricron)
    skipped = sd.download(dest, files=[AAL, "registration/mricron-data.copyright"], base_url=base)
    assert skipped == ["registration/mricron-data.copyright"]
    assert sd.sha256_of(dest / AAL) == ENTRY[AAL].sha256
    assert not (dest / "registration/mricron-data.copyright").exists()
    assert not _leftovers(dest)


def test_no_network_stops_at_once_with_one_line_saying_what_to_do(tmp_path, monkeypatch, capsys):
    from tools import demo

    monkeypatch.setenv("SAMPLE_DATA_BASE_URL", "http://127.0.0.1:9")  # the discard port: connection refused
    assert sd.main(["download", "--dest", str(tmp_path / "a"), "--only", "brain_mri"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot reach http://127.0.0.1:9 (")  # no per-file lines
    python = sd.python_command()  # the interpreter running, as typed from here: the printed commands use its packages
    assert f"{python} -m tools.sample_data import --from DIR" in err[0] and f"{python} -m tools.demo --data-from DIR" in err[0]
    assert "e.g. DIR/brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz" in err[0]
    assert not any((tmp_path / "a").rglob("*"))  # no file, and no empty folder either

    # the quick start's demo: the same line and the demo's own command, no traceback, nothing trained
    assert demo.main(["medgan", "--data-dir", str(tmp_path / "b"), "--output-dir", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [*err, f"this demo from a local copy: {python} -m tools.demo medgan --data-from DIR"]
    assert not (tmp_path / "out").exists()


def test_extended_download_checks_git_blob_ids_and_refuses_a_tampered_file(server, tmp_path, monkeypatch):
    """The extended set's OpenMS files are checked by git blob id: served here from the files at hand (patient07's,
    whose ids the published list gives), under the name of an extended person; one served tampered is refused."""
    root, base = server
    dest = tmp_path / "dest"
    listed = {row.split("\t")[0]: row.split("\t")[1] for row in (LISTS / "open_ms_data_cross_sectional_MNI.tsv").read_text().splitlines()[1:]}
    here = [e for e in sd.select(["brain_mri"]) if "OpenMS-patient07" in e.path]
    entries = [sd.Entry(e.path.replace("patient07", "patient99"), "brain_mri_extended", e.repo, e.commit, e.origin, None,
                        git_blob_sha1=listed[e.origin]) for e in here]
    monkeypatch.setattr(sd, "extended_manifest", lambda: entries)
    for e, entry in zip(here, entries):
        target = root / entry.repo / entry.commit / entry.origin
        target.parent.mkdir(parents=True, exist_ok=True)
        data = bytearray((SHARED / e.path).read_bytes())
        if Path(entry.path).name.startswith("FLAIR_"):  # ("regtoFLAIR" is in every name)
            data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    with pytest.raises(sd.SampleDataError) as err:
        sd.download(dest, groups=["ct"], files=[e.path for e in entries], base_url=base, extended=True)
    assert "git blob id mismatch" in str(err.value) and "OpenMS-patient99/FLAIR_" in str(err.value)
    kept = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.nii.gz"))
    assert len(kept) == 4 and not any(Path(p).name.startswith("FLAIR_") for p in kept) and not _leftovers(dest)
    assert all(sd.git_blob_sha1_of(dest / p) == listed[next(e.origin for e in entries if e.path == p)] for p in kept)
