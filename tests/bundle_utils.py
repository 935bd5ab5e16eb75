"""Running a bundle's configs in-process, as `python -m monai.bundle run` does, at test sizes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ignite.engine import Events
from monai.bundle import ConfigWorkflow

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "bundles"

# small networks on 4 mm volumes (60x60x39): seconds per bundle run on two CPU cores
TEST_SIZE = {"num_filters": 8, "num_res_blocks": 2, "pixdim": [4.0, 4.0, 4.0], "roi_size": [64, 64]}
TRAIN_TEST_SIZE = {**TEST_SIZE, "disc_filters": 8}
# MedGAN: 2 U-blocks of 3 levels (sizes divisible by 8), the frozen VGG-19 randomly initialised (no weights file in
# tests), one generator update per iteration
MEDGAN_TEST_SIZE = {"num_ublocks": 2, "gen_channels": [8, 16, 32], "pixdim": [4.0, 4.0, 4.0], "roi_size": [64, 64]}
MEDGAN_TRAIN_TEST_SIZE = {**MEDGAN_TEST_SIZE, "disc_filters": 8, "vgg_weights": "random", "generator_updates": 1}


def configs(bundle: str, *names: str) -> list[str]:
    return [str(BUNDLES / bundle / "configs" / f"{n}.json") for n in names]


def workflow(bundle: str, names: tuple[str, ...], workflow_type: str = "train", **overrides) -> ConfigWorkflow:
    """An initialised ConfigWorkflow of ``bundles/<bundle>/configs/<names>.json`` with ``overrides``."""
    wf = ConfigWorkflow(
        config_file=configs(bundle, *names),
        meta_file=str(BUNDLES / bundle / "configs" / "metadata.json"),
        logging_file=str(BUNDLES / bundle / "configs" / "logging.conf"),
        workflow_type=workflow_type,
        **overrides,
    )
    wf.initialize()
    return wf


def train(bundle: str, data_dir, bundle_root, iterations: int, size: dict, epochs: int = 1, **overrides):
    """Trains ``bundle`` at ``size`` for ``iterations`` x ``epochs`` (no decay epoch run, no validation); returns the
    workflow and each iteration's output (the step's losses)."""
    wf = workflow(bundle, ("train",), dataset_dir=str(data_dir), bundle_root=str(bundle_root),
                  iterations_per_epoch=iterations, n_epochs=epochs, n_epochs_decay=1, val_interval=100,
                  **{"train#trainer#max_epochs": epochs, **size, **overrides})
    outputs = []
    wf.train_trainer = wf.parser.get_parsed_content("train#trainer")
    wf.train_trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    wf.run()
    return wf, outputs


def check_metadata_and_network(bundle: str, *size_args: str) -> None:
    """The model zoo's checks: ``verify_metadata`` against the shipped schema and ``verify_net_in_out`` of
    ``network_def`` (at the size ``size_args`` give on the command line)."""
    meta = str(BUNDLES / bundle / "configs/metadata.json")
    for cmd in (
        ["verify_metadata", "--meta_file", meta, "--filepath", str(ROOT / "tools/schema/bundle_metadata.schema.json")],
        ["verify_net_in_out", "network_def", "--meta_file", meta, "--config_file", configs(bundle, "inference")[0], *size_args],
    ):
        result = subprocess.run([sys.executable, "-m", "monai.bundle", *cmd], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "verified with no error" in result.stdout + result.stderr


def error_chain(exc: BaseException) -> str:
    """All messages of an exception and its causes: MONAI wraps a config's error in 'Failed to evaluate ...'."""
    messages = []
    while exc is not None:
        messages.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(messages)


def source_files(*dirs: Path) -> set[str]:
    """Every file under ``dirs`` but Python caches, as paths relative to the repository."""
    return {p.relative_to(ROOT).as_posix() for d in dirs for p in d.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
