"""Every bundle's ``network_def`` compiles with ``torch.jit.script`` (what the release exports as ``model.ts``) and
the scripted network gives the eager network's output on a real input: the bundle's own inference preprocessing of
a sample image, cut to the test size's patch as the inferer would (middle axial slice, padded/cropped to ``roi_size``
with the background value); the same after ``torch.jit.save`` and ``torch.jit.load``. Untrained networks at the
test sizes: seconds on a CPU."""

from __future__ import annotations

import pytest
import torch
from monai.transforms import ResizeWithPadOrCrop

from bundle_utils import (
    AE_GAN_TEST_SIZE, DEFORM_GAN_TEST_SIZE, MEDGAN_TEST_SIZE, TEST_SIZE, UNIT_GMM_TEST_SIZE, workflow,
)
from tools.bundles import BUNDLES

SIZES = {"cyclegan": TEST_SIZE, "medgan": MEDGAN_TEST_SIZE, "ae_gan": AE_GAN_TEST_SIZE, "unit_gmm": UNIT_GMM_TEST_SIZE,
         "deform_gan": DEFORM_GAN_TEST_SIZE}
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def test_every_bundle_is_checked():
    assert set(SIZES) == set(BUNDLES)


def _network_and_input(bundle: str, data_dir, tmp_path) -> tuple[torch.nn.Module, torch.Tensor]:
    """``network_def`` of the bundle's inference config at the test size, in eval mode, and a (1, C, *roi) input made
    by the config's ``preprocessing`` from the release's sample image(s) (``tools/bundles.py``)."""
    spec = BUNDLES[bundle]
    wf = workflow(bundle, (spec["inference"],), "infer", bundle_root=str(tmp_path), **SIZES[bundle])
    files = {spec["image_key"]: str(data_dir / spec["sample_input"]),
             **{k: str(data_dir / v) for k, v in spec.get("extra_inputs", {}).items()}}
    image = wf.parser.get_parsed_content("preprocessing")(files)[spec["image_key"]]  # (C, H, W, D), scaled as inferred
    image = torch.as_tensor(image.as_tensor() if hasattr(image, "as_tensor") else image).float()
    roi = [int(r) for r in wf.parser.get_parsed_content("roi_size")]
    if len(roi) == 2:  # a 2D network: the middle axial slice, padded with the background as the slice inferer does
        image = image[..., image.shape[-1] // 2]  # (C, H, W, D) -> (C, H, W)
        image = torch.as_tensor(ResizeWithPadOrCrop(roi, mode="constant", value=float(image.min()))(image))
    # 3D (Deform-GAN's T): the whole pair, already padded to T's divisor by the preprocessing
    net = wf.parser.get_parsed_content("network_def")
    if bundle == "deform_gan":
        # T's field layer starts at N(0, 1e-5): a field of about 1e-5 voxels would pass any tolerance; larger
        # weights give displacements up to about a voxel, as a trained T's
        flow = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)][-1]
        torch.manual_seed(0)
        torch.nn.init.normal_(flow.weight, 0.0, 1.0)
    return net.eval(), image.float()[None]


@pytest.mark.parametrize("bundle", sorted(SIZES))
def test_network_def_scripts_and_equals_eager_on_real_input(bundle, data_dir, tmp_path):
    net, x = _network_and_input(bundle, data_dir, tmp_path)
    assert float((x > x.min()).float().mean()) > 0.05, "the check input is almost all background"
    scripted = torch.jit.script(net)
    path = tmp_path / "model.ts"
    torch.jit.save(scripted, str(path))
    loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        eager = net(x)
        script_out = scripted(x)
        loaded_out = loaded(x)
    assert eager.shape[0] == 1 and eager.shape[2:] == x.shape[2:]
    assert float(eager.std()) > 1e-3  # a real output, not a constant that any network would match
    torch.testing.assert_close(script_out, eager, **TOLERANCE)
    torch.testing.assert_close(loaded_out, eager, **TOLERANCE)

    # the input check is compiled in (a traced module would have lost it): a size the network cannot take is refused
    odd = x[..., :-1]
    with pytest.raises(torch.jit.Error, match="divisible|multiples"):
        loaded(odd)


def test_scripted_ae_gan_returns_the_features_too(data_dir, tmp_path):
    # the training step calls S(x, return_features=True) through forward; the scripted S keeps that call
    net, x = _network_and_input("ae_gan", data_dir, tmp_path)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        eager, eager_features = net(x, return_features=True)
        out, features = scripted(x, True)
    torch.testing.assert_close(out, eager, **TOLERANCE)
    assert len(features) == len(eager_features) == 2
    for f, e in zip(features, eager_features):
        torch.testing.assert_close(f, e, **TOLERANCE)
