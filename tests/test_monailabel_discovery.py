"""Which bundles the MONAI Label app serves (tools/monailabel/bundle_discovery.py; no MONAI Label needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bundle_utils import BUNDLES
from tools.monailabel import bundle_discovery as bd


def _bundle(root: Path, name: str, inputs=("image",), weights: str | None = "model.pt") -> Path:
    path = root / name
    (path / "configs").mkdir(parents=True)
    (path / "configs/inference.json").write_text("{}", encoding="utf-8")
    meta = {"network_data_format": {"inputs": {k: {} for k in inputs}, "outputs": {"pred": {}}}}
    (path / "configs/metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    if weights:
        (path / "models").mkdir()
        (path / "models" / weights).write_bytes(b"weights")
    return path


def test_given_folders_come_before_the_repositorys_and_the_first_holding_a_name_wins(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    a = _bundle(first, "cyclegan")
    _bundle(second, "cyclegan")
    b = _bundle(second, "other", weights="model.ts")
    dirs = bd.bundle_dirs(f"{first},{second}")
    assert dirs == [first, second, BUNDLES]
    repository = {p.parent.parent.name: p.parent.parent for p in BUNDLES.glob("*/configs/metadata.json")}
    assert "medgan" in repository  # the repository's other bundles are found after the given folders'
    assert bd.find_bundles(dirs) == {**repository, "cyclegan": a, "other": b}
    chosen = [(e.name, e.path, e.problem) for e in bd.select_bundles("all", dirs) if e.name in ("cyclegan", "other")]
    assert chosen == [("cyclegan", a, None), ("other", b, None)]
    # without bundle_dirs: the repository's bundles/ (cyclegan has no weights in a fresh clone or in CI)
    assert bd.bundle_dirs(None) == [BUNDLES]
    assert bd.find_bundles([BUNDLES])["cyclegan"] == BUNDLES / "cyclegan"


def test_extra_inputs_and_what_keeps_a_bundle_from_serving(tmp_path):
    pair = bd.inspect_bundle("pair", _bundle(tmp_path, "pair", inputs=("image", "moving")))
    assert (pair.extra_inputs, pair.optional_inputs, pair.problem) == (["moving"], [], None)
    # the repository's AE-GAN: T1 is the request's image, T1c and FLAIR optional image ids
    ae_gan = bd.inspect_bundle("ae_gan", BUNDLES / "ae_gan")
    assert ae_gan.extra_inputs == ae_gan.optional_inputs == ["t1c", "flair"]
    bare = bd.inspect_bundle("bare", _bundle(tmp_path, "bare", weights=None))
    assert bare.problem.startswith(f"no weights: neither {tmp_path / 'bare/models/model.pt'} nor model.ts exists.")
    odd = bd.inspect_bundle("odd", _bundle(tmp_path, "odd", inputs=("fixed", "moving")))
    assert odd.problem == (f"{tmp_path / 'odd/configs/metadata.json'}: the first network_data_format input must be "
                           "'image', got ['fixed', 'moving'].")
    broken = _bundle(tmp_path, "broken")
    (broken / "configs/metadata.json").write_text("{not json", encoding="utf-8")
    assert bd.inspect_bundle("broken", broken).problem.startswith(f"{broken / 'configs/metadata.json'}: no readable")


def test_unknown_names_and_missing_folders_stop_the_app(tmp_path):
    _bundle(tmp_path, "cyclegan")
    with pytest.raises(ValueError, match=r"no bundle named \['cyclgan'\] \(--conf models\) in .*found: \['cyclegan'\]"):
        bd.select_bundles("cyclegan, cyclgan", [tmp_path])
    with pytest.raises(ValueError, match="bundle folder '.*nowhere' .* does not exist"):
        bd.bundle_dirs(str(tmp_path / "nowhere"))
