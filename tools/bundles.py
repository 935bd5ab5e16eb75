"""The one list of bundles that the release tool (``tools/release.py``) and its tests iterate over.

A new bundle under ``bundles/<name>/`` joins every release check (metadata schema, network in/out, TorchScript
and ONNX equal to eager on a real patch, evaluation metrics, packaging, download and inference from the zip)
by adding one entry here. Keys of an entry:

* ``network_key``: the deployable network's (``network_def``'s) entry in a training checkpoint
  (``models/checkpoints/checkpoint_<iteration>.pt``), for ``--checkpoint`` and as a fallback after training.
* ``train`` / ``evaluate`` / ``inference``: config names (``configs/<name>.json``) of each workflow; the
  evaluate run must leave ``metrics.csv`` (MONAI's ``MetricsSaver``) in ``output_dir``.
* ``metrics``: the names in that ``metrics.csv`` reported in the model card, the metadata and the index.
* ``sample_input``: a held-out image under the dataset root, used for the export checks and the end-to-end
  test; ``image_key``: the key that the inference ``preprocessing`` reads and returns it under; ``input_arg``: the
  ``inference.json`` value that takes it on the command line (``--input FILE``; ``--t1 FILE`` for a bundle that
  names each input contrast).
* ``extra_inputs`` (optional): further input files of the sample, ``{name: file under the dataset root}``; each
  name is both the ``inference.json`` value that takes it on the command line and the key its ``preprocessing``
  reads (Deform-GAN's ``--moving``; MONAI Label passes it as a request parameter).
* ``torchscript`` (optional, default ``"script"``): how the release exports ``models/model.ts``; ``"script"`` is
  ``torch.jit.script`` of ``network_def`` (tests/test_torchscript.py checks that every bundle's scripts), ``"trace"``
  is ``torch.jit.trace`` at the patch size, only for a network that cannot script (a traced module keeps neither
  its input checks nor data-dependent branches).
* ``output_glob`` (optional, default ``*.nii.gz``): the inference output that is the result (MONAI Label's
  answer), where inference writes more than one file (Deform-GAN: the warped image beside the field).
* ``sizes``: the one record of the bundle's named sizes, which the demo, the benchmark, the release tool and the
  tests look up by name (``size_settings``, ``training_overrides``). ``settings`` are config values baked into the
  released configs (top-level keys of ``train.json`` / ``inference.json``: the weights only fit a network of that
  size); ``schedule`` are the training-only overrides of that run (recorded in the metadata, not baked); its
  ``datalist``, where given, is also the evaluation's (the test size trains and evaluates on the test subset,
  ``TEST_DATALIST``); ``iterations``, where given, is the run's length, split into epochs as the paper's schedule
  shortened (``training_overrides``).

``default`` is the paper's (``train.json`` as shipped); ``demo`` the quick start (``python -m tools.demo``, 10-15
minutes on two CPU cores); ``release`` the documented release schedule of the published weights (CPU-feasible, on
the sample data); ``test`` the size CI trains and packs in seconds.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the brain bundles' test size reads the sample data's test subset (tools/sample_datalists.py), not the full set
TEST_DATALIST = "$@dataset_dir + '/datalists/brain_mri_test.json'"

BUNDLES: dict[str, dict] = {
    "cyclegan": {
        "network_key": "G_A",
        "train": ["train"],
        "evaluate": ["train", "evaluate"],
        "inference": "inference",
        "metrics": ["val_psnr", "val_ssim", "val_mae", "val_ncc"],
        "sample_input": "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz",
        "image_key": "image",
        "input_arg": "input",
        "sizes": {
            # the paper's: train.json as shipped (size_settings reads the values there)
            "default": {"settings": {}, "schedule": {}},
            # the quick start (python -m tools.demo cyclegan, 10-15 min on two CPU cores): 3 mm slices (81x81, padded to
            # 84), half the paper's filters and 6 residual blocks (the paper's choice for small images). On the held-out
            # subject this beat 2 mm slices at the same wall-clock budget (more iterations fit: 2000 here against 600):
            # see the bundle's model card. No identity loss (the bundle's default 0.5 is the reference
            # implementation's): T1 and T2 intensities are anti-correlated inside the brain, and the identity term held
            # the generator near the identity mapping for the whole short run (output correlated with the T1, r = +0.55,
            # against the T2 r = -0.19); without it the output takes on T2 contrast (r = +0.28 against the T2).
            # Source-only intensity augmentation (random gamma and histogram shifts of the T1 against the sites'
            # different contrasts): +0.5 dB PSNR and r +0.09 on the held-out subject, in both of two seeds
            "demo": {
                "settings": {"pixdim": [3.0, 3.0, 3.0], "roi_size": [84, 84], "num_filters": 32, "num_res_blocks": 6,
                             "disc_filters": 32},
                "schedule": {"lambda_identity": 0.0, "source_augmentation": "@intensity_augmentation"},
                "iterations": 2000,
            },
            # 2 mm slices (120x120 padded to 128), half the paper's filters, 6 residual blocks (the paper's choice
            # for 128x128): 2000 iterations (6 epochs constant + 2 decaying, 250 each), 18 min on 2 CPU cores
            "release": {
                "settings": {"num_filters": 32, "num_res_blocks": 6, "disc_filters": 32,
                             "pixdim": [2.0, 2.0, 2.0], "roi_size": [128, 128]},
                # no identity loss (it held the output T1-like) and source intensity augmentation, as the demo
                "schedule": {"iterations_per_epoch": 250, "n_epochs": 6, "n_epochs_decay": 2, "val_interval": 1000,
                             "lambda_identity": 0.0, "source_augmentation": "@intensity_augmentation"},
            },
            # tests/bundle_utils.py's TRAIN_TEST_SIZE: 4 mm slices, 8 filters, 2 blocks; 20 iterations (seconds)
            "test": {
                "settings": {"num_filters": 8, "num_res_blocks": 2, "disc_filters": 8,
                             "pixdim": [4.0, 4.0, 4.0], "roi_size": [64, 64]},
                "schedule": {"datalist": TEST_DATALIST, "iterations_per_epoch": 10, "n_epochs": 1, "n_epochs_decay": 1, "val_interval": 1000},
            },
        },
    },
    "medgan": {
        "network_key": "G",
        "train": ["train"],
        "evaluate": ["train", "evaluate"],
        "inference": "inference",
        "metrics": ["val_psnr", "val_ssim", "val_mae", "val_ncc"],
        "sample_input": "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz",
        "image_key": "image",
        "input_arg": "input",
        "sizes": {
            # the paper's: train.json as shipped (size_settings reads the values there)
            "default": {"settings": {}, "schedule": {}},
            # the quick start: 3 mm slices padded to 96x96, 3 U-blocks of 5 levels (32..256 filters). Measured on the
            # two held-out subjects (the model card's "What generalises"): Nyul-Udupa standardisation with landmarks
            # learned on the 18 training subjects and spatial augmentation of T1 and T2 together brought the model from
            # 1.0 dB below the oracle line on TCGA-DU-7294 (3 subjects, percentiles) to its level. The learning rate
            # 1e-3 and source-only intensity augmentation (random gamma and histogram shifts against the sites'
            # different contrasts) lifted the correlation with the real T2 from +0.17 (the paper's settings, 800
            # iterations) to +0.49. No style and content losses: without the ImageNet VGG-19 file (never downloaded
            # here) a random VGG-19 gave terms below 1e-4 of the generator loss at the paper's weights while costing
            # 60 % of each iteration. 2000 iterations without 2.5D input missed the oracle line on TCGA-DU-7294 in
            # three seeds out of three (one collapsed into a grid pattern, 3 dB below); 4000 with 2.5D input (3
            # slices, the release's) beat it in two out of two (+0.6 and +1.1 dB), 7 min of training on 2 CPU cores;
            # with the release's input skip (gen_input_skip "local") seed 0 gained 0.8 dB on TCGA-DU-7294 and 1.0 on
            # OpenMS-patient26 (still below the line there)
            "demo": {
                "settings": {"pixdim": [3.0, 3.0, 3.0], "roi_size": [96, 96], "num_ublocks": 3,
                             "gen_channels": [32, 64, 128, 256, 256], "disc_filters": 32, "intensity_scaling": "nyul",
                             "context_slices": 3, "gen_input_skip": "local"},
                "schedule": {"generator_updates": 1, "lr": 0.001, "lambda_style": 0.0, "lambda_content": 0.0,
                             "source_augmentation": "@intensity_augmentation", "spatial_augmentation": "@random_affine"},
                "iterations": 4000,
            },
            # the demo's settings, one and a half times as long: 3 mm slices (81x81 padded to
            # 96), 3 U-blocks of 5 levels with 32..256 filters, one generator update per iteration, learning rate 1e-3,
            # source-only intensity augmentation, no style and content losses (no ImageNet VGG-19 file here), on the 18
            # training subjects of brain_mri.json with Nyul-Udupa standardisation (landmarks saved with the weights)
            # and spatial augmentation and 2.5D input (3 slices; the release's metadata says 3 input channels): this
            # length was 1.2 dB above the oracle line on TCGA-DU-7294 (1.2 dB below it on OpenMS-patient26 scored
            # inside its brain, the model card); twice as long (12000) gave the same validation mean: converged at
            # this size. The input skip (gen_input_skip "local": the T1's centre slice times a gain map the network
            # outputs, beside its image) beat the plain CasNet on both held-out subjects in both seeds tried (the
            # model card's "An input skip")
            "release": {
                "settings": {"num_ublocks": 3, "gen_channels": [32, 64, 128, 256, 256], "disc_filters": 32,
                             "pixdim": [3.0, 3.0, 3.0], "roi_size": [96, 96], "intensity_scaling": "nyul",
                             "context_slices": 3, "gen_input_skip": "local"},
                "schedule": {"iterations_per_epoch": 1500, "n_epochs": 3, "n_epochs_decay": 1, "val_interval": 1000,
                             "generator_updates": 1, "lr": 0.001, "lambda_style": 0.0, "lambda_content": 0.0,
                             "source_augmentation": "@intensity_augmentation", "spatial_augmentation": "@random_affine"},
            },
            # tests/bundle_utils.py's MEDGAN_TEST_SIZE: 4 mm slices, 2 U-blocks of 3 levels, 8 filters; 20 iterations
            "test": {
                "settings": {"num_ublocks": 2, "gen_channels": [8, 16, 32], "disc_filters": 8,
                             "pixdim": [4.0, 4.0, 4.0], "roi_size": [64, 64]},
                "schedule": {"datalist": TEST_DATALIST, "iterations_per_epoch": 10, "n_epochs": 1, "n_epochs_decay": 1, "val_interval": 1000,
                             "generator_updates": 1, "vgg_weights": "random"},
            },
        },
    },
    "ae_gan": {
        "network_key": "S",
        "train": ["train"],
        "evaluate": ["train", "evaluate"],
        "inference": "inference",
        "metrics": ["val_psnr", "val_ssim", "val_mae", "val_ncc"],
        "sample_input": "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz",
        "image_key": "image",
        "input_arg": "t1",
        "sizes": {
            # the paper's: train.json as shipped (size_settings reads the values there)
            "default": {"settings": {}, "schedule": {}},
            # the quick start: 3 mm slices padded to 96x96, a quarter of the paper's filters (16; the release trains
            # 32) and its 6 residual blocks. Measured on the held-out subject (the model card): the learning rate made
            # no difference (1e-3 and the authors' 2e-4 within 0.05 dB); per-contrast intensity augmentation of the
            # inputs raised the three-input PSNR from 14.99 to 15.18 dB; training on every contrast a subject has (the
            # paper's setting, the bundle's default) rather than on random subsets raised it to 15.35 dB and r from
            # +0.38 to +0.48, and still served the other combinations as well on average (CSTAR-stroke, without T1c,
            # teaches the mask vector). On the two held-out subjects (the model card): the 21 training subjects of
            # brain_mri.json with Nyul-Udupa standardisation and spatial augmentation of inputs and target together,
            # 3000 iterations, took T1 + T1c + FLAIR from the oracle line (percentiles: 1.1 dB below) to 0.4 dB above it
            # on TCGA-DU-7294 (on OpenMS-patient26, scored inside its brain, it stays 1.9 dB below)
            "demo": {
                "settings": {"pixdim": [3.0, 3.0, 3.0], "roi_size": [96, 96], "num_filters": 16, "num_res_blocks": 6,
                             "intensity_scaling": "nyul"},
                "schedule": {"lr": 0.001, "input_augmentation": "@intensity_augmentation",
                             "spatial_augmentation": "@random_affine"},
                "iterations": 3000,
            },
            # the demo's settings, twice as long, at twice its width: 3 mm slices padded to 96x96, half the paper's
            # filters (32: beat 16 and MedGAN's demo in two seeds, the model card), its 6 residual blocks, Nyul-Udupa
            # standardisation and spatial augmentation (what lifted the demo, and MedGAN's release, on the held-out
            # subjects), and 2.5D input (3 slices a contrast: on both held-out subjects it lifted every input
            # combination, T1 + T1c + FLAIR on TCGA-DU-7294 from 17.58 dB, r +0.69 to 17.94 dB, r +0.71, the model card)
            "release": {
                "settings": {"num_filters": 32, "num_res_blocks": 6, "pixdim": [3.0, 3.0, 3.0], "roi_size": [96, 96],
                             "intensity_scaling": "nyul", "context_slices": 3},
                "schedule": {"iterations_per_epoch": 1500, "n_epochs": 3, "n_epochs_decay": 1, "val_interval": 1000,
                             "lr": 0.001, "input_augmentation": "@intensity_augmentation",
                             "spatial_augmentation": "@random_affine"},
            },
            # tests/bundle_utils.py's AE_GAN_TEST_SIZE: 4 mm slices, 8 filters, 2 residual blocks; 20 iterations
            "test": {
                "settings": {"num_filters": 8, "num_res_blocks": 2, "pixdim": [4.0, 4.0, 4.0], "roi_size": [64, 64]},
                "schedule": {"datalist": TEST_DATALIST, "iterations_per_epoch": 10, "n_epochs": 1, "n_epochs_decay": 1, "val_interval": 1000},
            },
        },
    },
    "unit_gmm": {
        "network_key": "G",
        "train": ["train"],
        "evaluate": ["train", "evaluate"],
        "inference": "inference",
        # HU inside the TotalSegmentator labels of the non-contrast scan, before and after (common.ct_evaluation)
        "metrics": ["val_vessel_gain_hu", "val_vessel_hu", "val_organ_gain_hu", "val_stable_change_hu", "val_cycle_mae_hu"],
        "sample_input": "ct/example_ct_sm.nii.gz",
        "image_key": "image",
        "input_arg": "input",
        "sizes": {
            # the paper's: train.json as shipped (size_settings reads the values there)
            "default": {"settings": {}, "schedule": {}},
            # the quick start: 3 mm (the non-contrast scan's own spacing: no domain is upsampled, so sharpness tells
            # the discriminators nothing), 32x32 axial patches (96 mm: inside the smallest contrast scan), half the
            # paper's filters and its 4 residual blocks per side, no normalisation in the VAEs (instance norm
            # normalises each 32x32 tile on its own, so a tile inside the liver loses its HU level: blocky, shifted
            # output); and without normalisation no final tanh (a decoder's tanh saturated and never recovered on the
            # extended CT set: the translations are clamped instead). See the bundle's model card for what was measured
            "demo": {
                "settings": {"pixdim": [3.0, 3.0, 3.0], "roi_size": [32, 32], "num_filters": 32, "num_res_blocks": 4,
                             "gen_norm": "none", "gen_output_activation": "none", "disc_filters": 32, "disc_layers": 2},
                "schedule": {},
                "iterations": 3000,
            },
            # the demo's settings, three times as long: 3 mm (the non-contrast
            # scan's own spacing), 32x32 axial patches, half the paper's filters, its 4 residual blocks per side, no
            # normalisation in the VAEs (instance norm discards each tile's absolute HU: see the model card) and no
            # final tanh (it can saturate for good without normalisation)
            "release": {
                "settings": {"num_filters": 32, "num_res_blocks": 4, "gen_norm": "none", "gen_output_activation": "none",
                             "disc_filters": 32, "disc_layers": 2, "pixdim": [3.0, 3.0, 3.0], "roi_size": [32, 32]},
                "schedule": {"iterations_per_epoch": 3000, "n_epochs": 3, "n_epochs_decay": 1, "val_interval": 1000},
            },
            # tests/bundle_utils.py's UNIT_GMM_TEST_SIZE: 4 mm, 32x32 patches, 8 filters, 2 blocks; 20 iterations
            "test": {
                "settings": {"num_filters": 8, "num_res_blocks": 2, "gen_norm": "none", "gen_output_activation": "none",
                             "disc_filters": 8, "pixdim": [4.0, 4.0, 4.0], "roi_size": [32, 32]},
                "schedule": {"iterations_per_epoch": 10, "n_epochs": 1, "n_epochs_decay": 1, "val_interval": 1000},
            },
        },
    },
    "deform_gan": {
        "network_key": "T",
        "train": ["train"],
        "evaluate": ["train", "evaluate"],
        "inference": "inference",
        # against the known synthetic deformation of the held-out pair (common.registration.registration_figures)
        "metrics": ["val_network_epe_mm", "val_network_epe_p95_mm", "val_network_dice_after", "val_network_seconds",
                    "val_epe_mm", "val_epe_p95_mm", "val_epe_before_mm", "val_dice_before", "val_dice_after",
                    "val_folding_percent", "val_seconds"],
        "sample_input": "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t2_bet_normalized.nii.gz",
        "image_key": "image",
        "input_arg": "fixed",
        "extra_inputs": {"moving": "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz"},
        "output_glob": "*_warped.nii.gz",
        "sizes": {
            # the paper's: train.json as shipped (size_settings reads the values there)
            "default": {"settings": {}, "schedule": {}},
            # the quick start: 3 mm whole brains (64^3), VoxelMorph's T, a smaller G (16..64 filters) and D (16). The
            # local gradient neighbourhood keeps the paper's extent in mm (n = 7 at 1 mm; 3 voxels at 3 mm: with 7
            # voxels, 21 mm, it barely moved the field, measured in the model card); learning rate 1e-3 (see there
            # too); 100 steps of test-time optimisation after T (refine_steps): the short CPU training alone does not
            # generalise. Same-subject pairs only, as every figure of the demo in the model card was measured; the
            # bundle's default mixes in inter-subject pairs (inter_subject_ratio 0.5), not yet measured at this length
            "demo": {
                "settings": {"pixdim": [3.0, 3.0, 3.0], "roi_size": [64, 64, 64], "gen_channels": [16, 32, 64],
                             "disc_filters": 16, "lg_kernel_size": 3, "refine_steps": 100},
                "schedule": {"lr": 0.001, "inter_subject_ratio": 0.0},
                "iterations": 300,
            },
            # the demo's settings, four times as long: 3 mm whole brains (64^3),
            # VoxelMorph's T, a smaller G and D, the local gradient neighbourhood at the paper's extent in mm
            "release": {
                "settings": {"pixdim": [3.0, 3.0, 3.0], "roi_size": [64, 64, 64], "gen_channels": [16, 32, 64],
                             "disc_filters": 16, "lg_kernel_size": 3, "refine_steps": 100},
                "schedule": {"iterations_per_epoch": 300, "n_epochs": 3, "n_epochs_decay": 1, "val_interval": 4,
                             "lr": 0.001},
            },
            # tests/bundle_utils.py's DEFORM_GAN_TRAIN_TEST_SIZE: 4 mm, 48^3, a two-level T; 20 iterations
            "test": {
                "settings": {"t_channels": [8, 16, 16, 16], "t_final_channels": [8], "pixdim": [4.0, 4.0, 4.0],
                             "roi_size": [48, 48, 48], "gen_channels": [8, 16, 32], "disc_filters": 8},
                "schedule": {"datalist": TEST_DATALIST, "iterations_per_epoch": 10, "n_epochs": 1, "n_epochs_decay": 1, "val_interval": 1000},
            },
        },
    },
}


def datalist_override(bundle: str, size: str = "test") -> dict:
    """``{"datalist": ...}`` where the size's schedule names the datalist (evaluation and speed runs read the same
    subjects as its training), else ``{}`` (the config's own default)."""
    return {k: v for k, v in BUNDLES[bundle]["sizes"][size]["schedule"].items() if k == "datalist"}


@cache
def shipped_value(bundle: str, key: str):
    """The value ``train.json`` ships for the top-level ``key`` (expressions evaluated)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(ROOT / "bundles" / bundle / "configs" / "train.json"))
    return parser.get_parsed_content(key)


def config_keys(bundle: str, config: str) -> set[str]:
    """Top-level keys of ``bundles/<bundle>/configs/<config>.json``."""
    return set(json.loads((ROOT / "bundles" / bundle / "configs" / f"{config}.json").read_text(encoding="utf-8")))


def size_settings(bundle: str, size: str, config: str | None = None) -> dict:
    """A named size's network settings (``default``: the values ``train.json`` ships for every key another size
    sets), only those that ``config`` (``"inference"``, say) has at its top level when given."""
    sizes = BUNDLES[bundle]["sizes"]
    settings = dict(sizes[size]["settings"])
    if size == "default":
        keys = sorted({k for entry in sizes.values() for k in entry["settings"]})
        settings = {k: shipped_value(bundle, k) for k in keys}
    if config is not None:
        settings = {k: v for k, v in settings.items() if k in config_keys(bundle, config)}
    return settings


def training_overrides(bundle: str, size: str, iterations: int | None = None) -> dict:
    """What a training run of the named size overrides beyond its settings: its schedule, and where the size gives
    a length (``iterations``, or the argument), 3/4 of it at the full learning rate and 1/4 decaying linearly to zero
    (the papers' schedule, shortened), validated once at the end."""
    entry = BUNDLES[bundle]["sizes"][size]
    overrides = dict(entry["schedule"])
    iterations = iterations or entry.get("iterations")
    if iterations:
        overrides.update(iterations_per_epoch=max(1, iterations // 4), n_epochs=3, n_epochs_decay=1, val_interval=4)
    return overrides
