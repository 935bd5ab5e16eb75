"""Run by the tests under ``torchrun``: trains a bundle with ``train.json`` + ``multi_gpu_train.json`` and writes what
each rank drew, iteration by iteration, to ``<bundle_root>/draws_rank<r>.json`` as [epoch, [[file, slice], ...]].

    python -m torch.distributed.run --nproc_per_node=2 tests/ddp_draws.py BUNDLE '{"bundle_root": ..., ...}'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ignite.engine import Events
from monai.bundle import ConfigWorkflow

ROOT = Path(__file__).resolve().parents[1]


def main(bundle: str, overrides: dict) -> None:
    sys.path.insert(0, str(ROOT))
    configs = [str(ROOT / "bundles" / bundle / "configs" / f"{n}.json") for n in ("train", "multi_gpu_train")]
    wf = ConfigWorkflow(config_file=configs, workflow_type="train", **overrides)
    wf.initialize()
    import torch.distributed as dist

    rank = dist.get_rank()
    draws = []

    def record(engine):
        image = engine.state.batch["image"]
        files = [Path(f).name for f in image.meta["filename_or_obj"]]
        slices = [int(i) for i in image.meta["slice_index"]]
        draws.append([engine.state.epoch, [list(p) for p in zip(files, slices)]])

    wf.train_trainer = wf.parser.get_parsed_content("train#trainer")
    wf.train_trainer.add_event_handler(Events.ITERATION_COMPLETED, record)
    wf.run()
    (Path(overrides["bundle_root"]) / f"draws_rank{rank}.json").write_text(json.dumps(draws), encoding="utf-8")
    wf.finalize()


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
