"""Nyúl–Udupa histogram standardisation on the real volumes: landmarks learned on training subjects, the map
exact at the landmarks and invertible, saved and read back with a bundle trained with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Spacingd

from bundle_utils import (
    AE_GAN_TEST_SIZE, MEDGAN_TEST_SIZE, MEDGAN_TRAIN_TEST_SIZE, TEST_SIZE, TRAIN_TEST_SIZE, train, workflow,
)
from common.data import HistogramStandardised, WhiteMatterPeakScaled, load_landmarks, standard_landmarks, white_matter_peak
from common.data.harmonisation import PERCENTILES, fit_standard_landmarks, image_landmarks
from conftest import SHARED
from tools.sample_datalists import subject_entry

TRAIN = ("Brats18_CBICA_ABM_1", "OpenMS-patient07", "CSTAR-stroke")


def _load(path):
    t = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image"), Spacingd("image", [4.0] * 3)])
    return t({"image": str(SHARED / path)})["image"]


def test_landmarks_by_hand_and_the_map_hits_them():
    # a foreground of 1..100 (and a zero background): its 1st..99th percentiles are numpy's
    image = torch.cat([torch.zeros(50), torch.arange(1, 101, dtype=torch.float32)]).reshape(1, 10, 15, 1)
    np.testing.assert_allclose(image_landmarks(image), np.percentile(np.arange(1, 101), PERCENTILES))
    assert fit_standard_landmarks([image, torch.where(image > 0, image * 3 + 7, image)]) == pytest.approx(
        list((np.percentile(np.arange(1, 101), PERCENTILES) - 1.99) / (99.01 - 1.99) * 2 - 1), abs=1e-9)
    standard = [-1.0, -0.8, -0.6, -0.5, -0.3, 0.0, 0.1, 0.2, 0.4, 0.7, 1.0]
    out = HistogramStandardised("image", {"image": "t1"}, {"percentiles": list(PERCENTILES), "contrasts": {"t1": standard}})(
        {"image": image})["image"]
    assert float(out.flatten()[0]) == -1.0  # background
    # the foreground's landmarks land on the standard ones
    np.testing.assert_allclose(np.percentile(out[image > 0].numpy(), PERCENTILES), standard, atol=0.01)  # 100 values


@pytest.mark.parametrize("contrast", ["t1", "t2"])
def test_standardisation_of_a_held_out_volume_inverts_to_itself(contrast):
    items = [subject_entry(s) for s in TRAIN]
    landmarks = {"percentiles": list(PERCENTILES),
                 "contrasts": {contrast: fit_standard_landmarks(_load(i[contrast]) for i in items)}}
    volume = _load(subject_entry("TCGA-DU-7294")[contrast])
    transform = HistogramStandardised("image", {"image": contrast}, landmarks, clip=None)
    standardised = transform({"image": volume.clone()})
    # the held-out foreground's landmarks now sit on the standard ones learned on three other pipelines
    fg = torch.as_tensor(volume).abs() > 1e-3 * float(torch.as_tensor(volume).abs().max())
    np.testing.assert_allclose(np.percentile(standardised["image"][fg].numpy(), PERCENTILES), landmarks["contrasts"][contrast],
                               atol=1e-4)
    back = transform.inverse(standardised)["image"]
    np.testing.assert_allclose(back[fg].numpy(), volume[fg].numpy(), rtol=1e-5, atol=1e-5 * float(volume.abs().max()))


def test_white_matter_peak_by_hand():
    # two tissues drawn as narrow bumps: 3000 voxels at 30 (the larger) and 2000 at 80 (brighter), a zero background
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(30, 1, 3000), rng.normal(80, 1, 2000), np.full(20, 100.0)])
    image = torch.as_tensor(np.concatenate([np.zeros(1000), values]), dtype=torch.float32).reshape(1, -1, 1, 1)
    assert white_matter_peak(image, "t1") == pytest.approx(80, abs=1.0)  # T1: the brightest peak
    assert white_matter_peak(image, "t2") == pytest.approx(30, abs=1.0)  # T2: the highest peak
    out = WhiteMatterPeakScaled("image", {"image": "t2"}, levels={"t2": -0.4})({"image": image})["image"]
    assert float(out.flatten()[0]) == -1.0  # zero stays at the bottom
    peak = white_matter_peak(image, "t2")  # lands on the level -0.4: the slope is 0.6 / peak
    np.testing.assert_allclose(out.flatten()[1000:].numpy(), np.clip(values * 0.6 / peak - 1.0, -1, 1), atol=1e-5)
    with pytest.raises(ValueError, match="no white-matter level for \\['pd'\\]"):
        WhiteMatterPeakScaled("image", {"image": "pd"})


@pytest.mark.parametrize("contrast", ["t1", "t2"])
def test_white_matter_peak_scaling_of_a_held_out_volume_inverts_to_itself(contrast):
    volume = _load(subject_entry("TCGA-DU-7294")[contrast])
    transform = WhiteMatterPeakScaled("image", {"image": contrast}, clip=None)
    scaled = transform({"image": volume.clone()})
    slope = (transform.levels[contrast] + 1.0) / white_matter_peak(volume, contrast)
    np.testing.assert_allclose(scaled["image"].numpy(), volume.numpy() * slope - 1.0, rtol=1e-5, atol=1e-6)
    back = transform.inverse(scaled)["image"]
    np.testing.assert_allclose(back.numpy(), volume.numpy(), rtol=1e-5, atol=1e-5 * float(volume.abs().max()))


def test_landmarks_are_saved_once_and_read_back(tmp_path):
    items = [{"image": str(SHARED / subject_entry(s)["t1"]), "label": str(SHARED / subject_entry(s)["t2"])} for s in TRAIN[:2]]
    path = tmp_path / "models/landmarks.json"
    learned = standard_landmarks(path, items, {"image": "t1", "label": "t2"})
    assert set(learned["contrasts"]) == {"t1", "t2"} and learned["percentiles"] == list(PERCENTILES)
    assert learned["contrasts"]["t1"][0] == -1.0 and learned["contrasts"]["t1"][-1] == 1.0
    assert np.all(np.diff(learned["contrasts"]["t2"]) > 0)  # increasing, hence invertible
    assert load_landmarks(path) == learned == json.loads(path.read_text(encoding="utf-8"))
    assert standard_landmarks(path, [], {"image": "t1"}) == learned  # present: read, not refitted
    with pytest.raises(FileNotFoundError, match="no histogram landmarks at .*models/landmarks.json"):
        load_landmarks(tmp_path / "elsewhere/landmarks.json")


SIZES = {"medgan": (MEDGAN_TRAIN_TEST_SIZE, MEDGAN_TEST_SIZE), "cyclegan": (TRAIN_TEST_SIZE, TEST_SIZE),
         "ae_gan": (AE_GAN_TEST_SIZE, AE_GAN_TEST_SIZE)}


def _inference_inputs(bundle):
    tcga = subject_entry("TCGA-DU-7294")
    return {"t1": str(SHARED / tcga["t1"])} if bundle == "ae_gan" else {"input": str(SHARED / tcga["t1"])}


@pytest.mark.parametrize("bundle", ["medgan", "cyclegan", "ae_gan"])
def test_a_bundle_trained_with_it_keeps_its_landmarks_for_inference(tmp_path, bundle):
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [subject_entry(s) for s in TRAIN], "validation": [subject_entry("OpenMS-patient26")]}))
    train_size, infer_size = SIZES[bundle]
    train(bundle, SHARED, tmp_path, 4, train_size, datalist=str(datalist), intensity_scaling="nyul")
    landmarks = load_landmarks(tmp_path / "models/landmarks.json")
    assert {"t1", "t2"} <= set(landmarks["contrasts"])
    wf = workflow(bundle, ("inference",), "infer", bundle_root=str(tmp_path), intensity_scaling="nyul",
                  output_dir=str(tmp_path / "out"), **_inference_inputs(bundle), **infer_size)
    scaling = [t for t in wf.parser.get_parsed_content("preprocessing").transforms if isinstance(t, HistogramStandardised)]
    assert len(scaling) == 1 and scaling[0].landmarks == landmarks
    item = wf.parser.get_parsed_content("dataset")[0]
    image = item["image"][:1]  # AE-GAN stacks its inputs: the T1 comes first
    inside = image[image > -1].numpy()  # the foreground but its darkest 1 %, which maps to -1
    np.testing.assert_allclose(np.percentile(inside, PERCENTILES[1:-1]), landmarks["contrasts"]["t1"][1:-1], atol=0.05)
    wf.run()
    assert len(list((tmp_path / "out").glob("*synthetic_t2.nii.gz"))) == 1


@pytest.mark.parametrize("bundle", ["medgan", "cyclegan", "ae_gan"])
def test_each_translation_bundle_takes_the_white_matter_peak_scaling(data_dir, tmp_path, bundle):
    train_size, infer_size = SIZES[bundle]
    _, outputs = train(bundle, data_dir, tmp_path, 2, train_size, intensity_scaling="wm_peak")
    assert len(outputs) == 2 and not (tmp_path / "models/landmarks.json").exists()
    wf = workflow(bundle, ("inference",), "infer", bundle_root=str(tmp_path), intensity_scaling="wm_peak",
                  output_dir=str(tmp_path / "out"), **_inference_inputs(bundle), **infer_size)
    scaling = [t for t in wf.parser.get_parsed_content("preprocessing").transforms if isinstance(t, WhiteMatterPeakScaled)]
    assert len(scaling) == 1
    wf.run()
    assert len(list((tmp_path / "out").glob("*synthetic_t2.nii.gz"))) == 1
