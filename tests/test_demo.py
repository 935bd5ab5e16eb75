"""The demo's trained bundle folder: self-contained (common vendored), the demo's size baked into its configs."""

from __future__ import annotations

import json

import torch
from monai.bundle import ConfigParser

from common.networks import ResnetGenerator
from tools.demo import DEMO_SIZE, write_servable_bundle


def test_demo_bundle_fits_its_weights_and_replaces_an_older_one(tmp_path):
    torch.manual_seed(0)
    net = ResnetGenerator(2, 1, 1, num_filters=DEMO_SIZE["num_filters"], num_res_blocks=DEMO_SIZE["num_res_blocks"])
    torch.save(net.state_dict(), tmp_path / "model.pt")
    dest = tmp_path / "bundles"
    (dest / "cyclegan").mkdir(parents=True)
    (dest / "cyclegan" / "stale.txt").write_text("an older demo run")

    bundle = write_servable_bundle(tmp_path / "model.pt", dest)

    assert bundle == dest / "cyclegan" and [p.name for p in dest.iterdir()] == ["cyclegan"]
    assert not (bundle / "stale.txt").exists() and (bundle / "common" / "networks" / "resnet_generator.py").is_file()
    inference = json.loads((bundle / "configs" / "inference.json").read_text())
    assert {k: inference[k] for k in ("pixdim", "roi_size", "num_filters", "num_res_blocks")} == \
        {k: DEMO_SIZE[k] for k in ("pixdim", "roi_size", "num_filters", "num_res_blocks")}
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    served = parser.get_parsed_content("network_def")
    served.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))  # strict: the size fits
    x = torch.randn(1, 1, 84, 84)
    net.eval(), served.eval()
    with torch.no_grad():
        assert torch.equal(served(x), net(x))
