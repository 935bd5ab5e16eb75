"""The one atomic-write helper and the one SHA-256 of a file (common/data/files.py), which every writer uses."""

from __future__ import annotations

import hashlib

import pytest

from common.data.files import atomic_path, sha256_of, write_text_atomic


def test_a_file_is_replaced_whole_or_left_as_it_was(tmp_path):
    target = tmp_path / "sub" / "out.csv"
    write_text_atomic(target, "old\n")
    assert target.read_text() == "old\n" and oct(target.stat().st_mode)[-3:] != "600"  # the usual permissions
    with pytest.raises(RuntimeError):
        with atomic_path(target, ".csv") as tmp:
            tmp.write_text("half of the new")
            assert tmp.parent == target.parent and tmp.name.endswith(".csv") and tmp != target
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n" and sorted(p.name for p in target.parent.iterdir()) == ["out.csv"]
    with atomic_path(target) as tmp:
        tmp.write_text("new\n")
        assert target.read_text() == "old\n"  # readers see the old file until the whole new one is in place
    assert target.read_text() == "new\n" and sorted(p.name for p in target.parent.iterdir()) == ["out.csv"]


def test_stale_partials_of_a_killed_run_are_cleared(tmp_path):
    target = tmp_path / "x.nii.gz"
    stale = tmp_path / ".x.nii.gz.abc123.partial.nii.gz"
    stale.write_bytes(b"truncated")
    other = tmp_path / ".y.nii.gz.abc123.partial.nii.gz"
    other.write_bytes(b"another output's")
    with atomic_path(target, ".partial.nii.gz", clear_stale=True) as tmp:
        tmp.write_bytes(b"whole")
    assert not stale.exists() and other.exists() and target.read_bytes() == b"whole"


def test_sha256_of_a_file_is_hashlibs(tmp_path):
    data = bytes(range(256)) * 5000  # over one 1 MiB read
    (tmp_path / "f").write_bytes(data)
    assert sha256_of(tmp_path / "f") == hashlib.sha256(data).hexdigest()
