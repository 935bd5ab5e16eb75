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
def test_metadata_names_the_schema_it_follows_and_monai_reads_it_without_a_warning(bundle):
    """The metadata follows the zoo's meta_schema_20240725 (packages under ``required_packages_version``), and names it;
    the older 20220324 schema's ``optional_packages_version`` is a name MONAI 1.6 warns about on every command."""
    import warnings

    from monai.bundle import ConfigParser

    meta = json.loads((BUNDLES / bundle / "configs/metadata.json").read_text(encoding="utf-8"))
    assert meta["schema"].endswith("/meta_schema_20240725.json") and "optional_packages_version" not in meta
    assert {"nibabel", "pytorch-ignite"} <= set(meta["required_packages_version"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConfigParser().read_meta(str(BUNDLES / bundle / "configs/metadata.json"))
