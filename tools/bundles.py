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
* ``sizes``: ``settings`` are config values baked into the released configs (top-level keys of
  ``train.json`` / ``inference.json``: the weights only fit a network of that size); ``schedule`` are the
  training-only overrides of that run (recorded in the metadata, not baked); its ``datalist``, where given, is
  also the evaluation's (the test size trains and evaluates on the test subset, ``TEST_DATALIST``).

``release`` is the documented release schedule of the published weights (CPU-feasible, on the sample data);
``test`` is the size CI trains and packs in seconds (the same as ``tests/bundle_utils.py``'s sizes).
"""

from __future__ import annotations

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
            # 2 mm slices (120x120 padded to 128), half the paper's filters, 6 residual blocks (the paper's choice
            # for 128x128): 2000 iterations (6 epochs constant + 2 decaying, 250 each), 18 min on 2 CPU cores
            "release": {
                "settings": {"num_filters": 32, "num_res_blocks": 6, "disc_filters": 32,
                             "pixdim": [2.0, 2.0, 2.0], "roi_size": [128, 128]},
                # no identity loss (it held the output T1-like) and source intensity augmentation, as the demo
                # (tools/demo.py, DEMOS["cyclegan"]["training"])
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
            # the demo's settings (tools/demo.py, DEMOS["medgan"]), three times as long: 3 mm slices (81x81 padded to
            # 96), 3 U-blocks of 5 levels with 32..256 filters, one generator update per iteration, learning rate 1e-3,
            # source-only intensity augmentation, no style and content losses (no ImageNet VGG-19 file here), on the 18
            # training subjects of brain_mri.json with Nyul-Udupa standardisation (landmarks saved with the weights)
            # and spatial augmentation: with 2.5D input as well, this length was above both baselines on both held-out
            # subjects (+1.2 and +1.0 dB, the model card); the 2.5D input is left out here because the metadata's
            # input description (num_channels) is not yet rewritten for it
            "release": {
                "settings": {"num_ublocks": 3, "gen_channels": [32, 64, 128, 256, 256], "disc_filters": 32,
                             "pixdim": [3.0, 3.0, 3.0], "roi_size": [96, 96], "intensity_scaling": "nyul"},
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
            # the demo's settings (tools/demo.py, DEMOS["ae_gan"]), three times as long, at twice its width: 3 mm
            # slices padded to 96x96, half the paper's filters (32: beat 16 and MedGAN's demo in two seeds, the model
            # card), its 6 residual blocks
            "release": {
                "settings": {"num_filters": 32, "num_res_blocks": 6, "pixdim": [3.0, 3.0, 3.0], "roi_size": [96, 96]},
                "schedule": {"iterations_per_epoch": 1500, "n_epochs": 3, "n_epochs_decay": 1, "val_interval": 1000,
                             "lr": 0.001, "input_augmentation": "@intensity_augmentation"},
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
            # the demo's settings (tools/demo.py, DEMOS["unit_gmm"]), three times as long: 3 mm (the non-contrast
            # scan's own spacing), 32x32 axial patches, half the paper's filters, its 4 residual blocks per side, no
            # normalisation in the VAEs (instance norm discards each tile's absolute HU: see the model card)
            "release": {
                "settings": {"num_filters": 32, "num_res_blocks": 4, "gen_norm": "none", "disc_filters": 32,
                             "disc_layers": 2, "pixdim": [3.0, 3.0, 3.0], "roi_size": [32, 32]},
                "schedule": {"iterations_per_epoch": 3000, "n_epochs": 3, "n_epochs_decay": 1, "val_interval": 1000},
            },
            # tests/bundle_utils.py's UNIT_GMM_TEST_SIZE: 4 mm, 32x32 patches, 8 filters, 2 blocks; 20 iterations
            "test": {
                "settings": {"num_filters": 8, "num_res_blocks": 2, "gen_norm": "none", "disc_filters": 8,
                             "pixdim": [4.0, 4.0, 4.0], "roi_size": [32, 32]},
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
            # the demo's settings (tools/demo.py, DEMOS["deform_gan"]), four times as long: 3 mm whole brains (64^3),
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
