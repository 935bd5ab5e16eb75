"""The shared training scaffolding (``common.engines.scaffold``) that every bundle's train.json calls."""

from __future__ import annotations

import pytest
import torch
from monai.data import Dataset

from common.engines import (
    LinearDecayLR,
    checkpoint_contents,
    epoch_loader,
    group_weights,
    linear_decay_schedules,
    training_handlers,
    validation_handlers,
)


def _optimiser(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=lr)


def test_schedules_are_one_linear_decay_per_optimiser_counted_in_iterations():
    optimisers = {"G": _optimiser(), "D": _optimiser(2.0)}
    schedules = linear_decay_schedules(optimisers, n_epochs=2, n_epochs_decay=1, iterations_per_epoch=3)
    assert list(schedules) == ["G", "D"] and all(isinstance(s, LinearDecayLR) for s in schedules.values())
    rates = []
    for _ in range(9):
        rates.append(optimisers["D"].param_groups[0]["lr"])
        schedules["D"].step()
    # 6 constant iterations, then 1 - k/4 for the 3 decaying ones (k = 1, 2, 3), as the paper's rule per iteration
    assert rates == [2.0] * 6 + [1.5, 1.0, 0.5]


def test_checkpoint_holds_networks_optimisers_schedules_and_extras_under_their_usual_keys():
    g, d = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    opt = {"G": _optimiser(), "D": _optimiser()}
    sched = linear_decay_schedules(opt, 1, 1, 1)
    pool = object()
    contents = checkpoint_contents({"G": g, "D": d}, opt, sched, step=pool)
    assert list(contents) == ["G", "D", "optimizer_G", "optimizer_D", "scheduler_G", "scheduler_D", "step"]
    assert contents["G"] is g and contents["optimizer_D"] is opt["D"] and contents["scheduler_G"] is sched["G"]
    assert contents["step"] is pool


def test_an_epoch_is_iterations_per_epoch_batches_drawn_with_replacement():
    torch.manual_seed(0)
    loader = epoch_loader([torch.tensor([0.0]), torch.tensor([1.0])], iterations_per_epoch=5, batch_size=3)
    batches = list(loader)
    assert len(batches) == 5 and all(b.shape == (3, 1) for b in batches)
    drawn = torch.cat(batches).flatten()
    assert set(drawn.tolist()) == {0.0, 1.0}  # 15 draws from 2 items: with replacement


def test_balance_by_draws_each_pipeline_equally_often():
    """Six subjects of one pipeline, two of another, one of a third: each pipeline gets a third of the draws and
    its subjects share it; without ``balance_by`` the draws follow the subjects (6/9, 2/9, 1/9)."""
    entries = ([{"subject": f"b{i}", "pipeline": "brats"} for i in range(6)]
               + [{"subject": f"m{i}", "pipeline": "openms"} for i in range(2)] + [{"subject": "s", "pipeline": "cstar"}])
    assert group_weights(entries, "pipeline") == [1 / 6] * 6 + [1 / 2] * 2 + [1.0]
    dataset = Dataset(entries)
    for balance_by, expected in ((None, [6 / 9, 2 / 9, 1 / 9]), ("pipeline", [1 / 3] * 3)):
        torch.manual_seed(0)
        loader = epoch_loader(dataset, iterations_per_epoch=3000, batch_size=1, balance_by=balance_by)
        drawn = [b["pipeline"][0] for b in loader]
        share = [drawn.count(p) / len(drawn) for p in ("brats", "openms", "cstar")]
        assert share == pytest.approx(expected, abs=0.03)
        if balance_by:  # within a pipeline its subjects are drawn alike
            openms = [b["subject"][0] for b in loader if b["pipeline"][0] == "openms"]
            assert abs(openms.count("m0") - openms.count("m1")) < 0.2 * len(openms)
    with pytest.raises(ValueError, match=r"balance_by 'pipeline': the datalist entries \['x'\] have no 'pipeline'"):
        group_weights([*entries, {"subject": "x"}], "pipeline")


def test_training_handlers_resume_only_when_asked_and_append_the_configs_extras(tmp_path):
    net = torch.nn.Linear(1, 1)
    opt = {"G": _optimiser()}
    checkpoint = checkpoint_contents({"G": net}, opt, linear_decay_schedules(opt, 1, 1, 1))
    extra = type("MyHandler", (), {})()
    args = dict(validator=None, network=net, checkpoint=checkpoint, schedules={}, seed=0, device="cpu",
                ckpt_dir=str(tmp_path), network_path=str(tmp_path / "model.pt"), tb_dir=str(tmp_path / "logs"),
                extra=[extra])
    fresh = training_handlers(resume_from=None, **args)
    assert [type(h).__name__ for h in fresh] == ["EpochSeeder", "AtomicCheckpointSaver", "ValidationHandler",
                                                 "ProgressLogger", "StatsHandler", "TensorBoardStatsHandler", "MyHandler"]
    resumed = training_handlers(resume_from=tmp_path / "checkpoint_3.pt", **args)
    loader = resumed[1]
    assert type(loader).__name__ == "ResumeCheckpointLoader" and loader.load_path == str(tmp_path / "checkpoint_3.pt")
    assert loader.load_dict["G"] is net and loader.load_dict["optimizer_G"] is opt["G"]


def test_validation_handlers_put_the_first_ones_before_the_logs_and_the_rest_after(tmp_path):
    first, panel = type("PairOutputs", (), {})(), type("PanelSaver", (), {})()
    handlers = validation_handlers(str(tmp_path), [panel], before=[first])
    assert [type(h).__name__ for h in handlers] == ["PairOutputs", "StatsHandler", "TensorBoardStatsHandler", "PanelSaver"]
