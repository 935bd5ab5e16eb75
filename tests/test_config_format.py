"""The bundles' JSON files in the model zoo's format: what its pre-commit hook `pretty-format-json --indent=4
--no-sort-keys` would leave unchanged (json.dumps with an indent of 4, keys in their order, ASCII, one final newline)."""

import json

import pytest

from bundle_utils import BUNDLES

FILES = sorted(BUNDLES.glob("*/configs/*.json"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_json_in_the_model_zoo_format(path):
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=4) + "\n", f"reformat {path}: json.dumps(..., indent=4)"


def test_every_bundle_has_its_configs_checked():
    assert {p.parent.parent.name for p in FILES} == {"cyclegan", "medgan", "ae_gan", "unit_gmm", "deform_gan"}
    assert len(FILES) == 26  # metadata, train, evaluate, inference, multi_gpu_train each, and the motion overlay


@pytest.mark.parametrize("bundle", ["cyclegan", "medgan", "ae_gan", "unit_gmm", "deform_gan"])
def test_model_card_has_the_zoo_templates_overview_and_a_data_licence(bundle):
    card = (BUNDLES / bundle / "docs/README.md").read_text(encoding="utf-8")
    overview = card[card.index("## Overview"):card.index("## Method as configured")]
    for field in ("**Authors**", "**Tags**", "**Intended use**", "**Data licence**", "**TorchScript**", "**Requirements**"):
        assert field in overview, field
    licence = (BUNDLES / bundle / "docs/data_license.txt").read_text(encoding="utf-8")
    sources = ["BraTS", "TCIA", "OpenMS", "C-STAR"] if bundle != "unit_gmm" else ["TotalSegmentator", "Decathlon", "IRCADb"]
    assert all(s in licence for s in sources) and "Research only" in licence


@pytest.mark.parametrize("bundle", ["cyclegan", "medgan", "ae_gan", "unit_gmm", "deform_gan"])
def test_metadata_packages_survive_monais_renaming_of_the_older_field(bundle):
    """The schema the metadata names (meta_schema_20220324) requires ``optional_packages_version``; MONAI 1.6 reads it
    as a deprecated name and moves it onto ``required_packages_version``: both must hold the same packages, or reading
    the metadata through MONAI would replace the required ones."""
    from monai.bundle import ConfigParser

    meta = json.loads((BUNDLES / bundle / "configs/metadata.json").read_text(encoding="utf-8"))
    assert meta["optional_packages_version"] == meta["required_packages_version"] != {}
    parser = ConfigParser()
    parser.read_meta(str(BUNDLES / bundle / "configs/metadata.json"))
    assert parser.get_parsed_content("_meta_#required_packages_version") == meta["required_packages_version"]
