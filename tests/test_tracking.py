"""``--tracking mlflow``, as a user types it, for every bundle: a tiny training logs each of the step's losses per
iteration, each optimiser's learning rate, the validation metrics and the executed config; an evaluation logs its
metrics into MONAI's default store (a SQLite file under ``output_dir``). Needs ``requirements-tracking.txt``."""

from __future__ import annotations

import csv
import functools
import json
import math
import subprocess
import sys

import mlflow  # not skipped when missing: CI installs requirements-tracking.txt
import pytest
import torch
from bundle_utils import ROOT, configs
from ignite.engine import Events
from mlflow.tracking import MlflowClient
from monai.handlers import LrScheduleHandler
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common.engines import MultiNetworkTrainer
from tools.bundles import BUNDLES
from tools.release import _cli_list, _overrides

ITERATIONS = 2  # one epoch of two iterations, validated at its end
EVALUATED = "cyclegan"  # the bundle whose evaluate config is also run (the quickest to evaluate)


def _run(bundle: str, names: list[str], **overrides) -> str:
    """``python -m monai.bundle run --config_file ... --tracking mlflow`` at the bundle's test size; the log."""
    size = BUNDLES[bundle]["sizes"]["test"]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", _cli_list(configs(bundle, *names)),
           "--tracking", "mlflow", *_overrides({**size["settings"], **size["schedule"], **overrides})]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "Traceback" not in log and "Warning" not in log, log[-3000:]  # nothing repeated per iteration either
    mlflow_lines = [line for line in log.splitlines() if "mlflow." in line]
    assert all("database tables" in line for line in mlflow_lines), mlflow_lines  # only a new store's creation
    return log


def test_trainer_tracks_every_scalar_and_the_learning_rates_each_step_ran_with():
    """What MultiNetworkTrainer hands an MLFlowHandler per iteration: scalars only (a 0-d tensor too, no images),
    and ``lr_<optimiser>`` (per group where its groups run at different rates) as the step saw it, before a
    per-iteration scheduler moves it."""
    g, d = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    opt_g = torch.optim.SGD(g.parameters(), lr=0.1)
    opt_d = torch.optim.SGD([{"params": [d.weight], "lr": 0.2}, {"params": [d.bias], "lr": 0.3}])
    e = torch.nn.Linear(1, 1)  # two groups at one rate, differing in weight decay only: one entry
    opt_e = torch.optim.SGD([{"params": [e.weight]}, {"params": [e.bias], "weight_decay": 0.0}], lr=0.4, weight_decay=1e-4)
    halve = torch.optim.lr_scheduler.LambdaLR(opt_g, lambda k: 0.5**k)
    trainer = MultiNetworkTrainer(
        "cpu", 1, [{"x": torch.zeros(1)}] * 2, {"G": g, "D": d, "E": e}, {"G": opt_g, "D": opt_d, "E": opt_e},
        step=lambda engine, batch: {"loss_G": 1.5, "loss_D": torch.tensor(0.25), "n": 3, "fake": torch.zeros(1, 1, 4, 4)},
        handlers=[LrScheduleHandler(halve, epoch_level=False, print_lr=False)])
    seen = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.tracked_values(e.state.output)))
    trainer.run()
    assert seen == [{"loss_G": 1.5, "loss_D": 0.25, "n": 3.0, "lr_G": lr, "lr_D_group_0": 0.2, "lr_D_group_1": 0.3,
                     "lr_E": 0.4} for lr in (0.1, 0.05)]


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """``trained(bundle)``: (bundle root, tracking URI) of a tracked tiny training, run once per module; all the
    bundles log to one SQLite store, each to its own experiment."""
    store = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{store / 'mlruns.db'}"

    @functools.cache
    def train(bundle: str):
        root = tmp_path_factory.mktemp(f"{bundle}_tracked")
        _run(bundle, BUNDLES[bundle]["train"], dataset_dir=str(data_dir), bundle_root=str(root),
             iterations_per_epoch=ITERATIONS, n_epochs=1, n_epochs_decay=0, val_interval=1,
             tracking_uri=uri, experiment_name=f"{bundle}_train", run_name="tiny")
        return root, uri

    return train


def _only_run(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED", [(r.info.run_name, r.info.status) for r in runs]
    return runs[0]


def _history(client: MlflowClient, run, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}


def _config_artifact(client: MlflowClient, run, dest) -> dict:
    files = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert len(files) == 1 and files[0].startswith("config_") and files[0].endswith(".json"), files
    return json.loads(open(client.download_artifacts(run.info.run_id, files[0], str(dest)), encoding="utf-8").read())


@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_training_logs_losses_learning_rates_metrics_and_config(trained, bundle, tmp_path):
    root, uri = trained(bundle)
    client = MlflowClient(tracking_uri=uri)
    run = _only_run(client, f"{bundle}_train")
    assert run.info.run_name == "tiny" and run.data.params["epoch_length"] == str(ITERATIONS)
    metrics = set(run.data.metrics)

    # every scalar the step returns, per iteration: the same names TensorBoard gets from the train config
    tensorboard = EventAccumulator(str(root / "logs"), size_guidance={"scalars": 0}).Reload().Tags()["scalars"]
    val_metrics = set(BUNDLES[bundle]["metrics"])
    losses = set(tensorboard) - val_metrics
    assert len([k for k in losses if k.startswith("loss_")]) >= 2, losses
    assert losses <= metrics, losses - metrics
    for key in losses:
        history = _history(client, run, key)
        assert sorted(history) == list(range(1, ITERATIONS + 1)) and all(map(math.isfinite, history.values())), key

    # each optimiser's learning rate, the one its step ran with: constant and positive here (no decay epoch)
    optimizers = json.loads((ROOT / "bundles" / bundle / "configs/train.json").read_text(encoding="utf-8"))["optimizers"]
    lrs = {f"lr_{name}" for name in optimizers}
    assert metrics - losses - val_metrics == lrs
    for key in lrs:
        history = _history(client, run, key)
        assert sorted(history) == list(range(1, ITERATIONS + 1)) and len(set(history.values())) == 1, (key, history)
        assert next(iter(history.values())) > 0

    # the validation at the end of epoch 1: the bundle's own metrics (key metric and additional metrics)
    for key in val_metrics:
        history = _history(client, run, key)
        assert list(history) == [1] and math.isfinite(history[1]), (key, history)

    # the executed config, overrides included
    config = _config_artifact(client, run, tmp_path)
    assert config["tracking_uri"] == uri and config["iterations_per_epoch"] == ITERATIONS and "train" in config


def test_evaluation_logs_its_metrics_to_the_default_store(trained, data_dir, tmp_path):
    root, _ = trained(EVALUATED)  # its weights (models/model.pt)
    spec = BUNDLES[EVALUATED]
    _run(EVALUATED, spec["evaluate"], dataset_dir=str(data_dir), bundle_root=str(root), experiment_name="evaluate")
    store = root / "eval" / "mlruns.db"  # MONAI's default: <output_dir>/mlruns.db, artifacts in <output_dir>/mlruns
    assert store.is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    run = _only_run(client, "evaluate")
    saved = {k: float(v) for k, v in csv.reader(open(root / "eval" / "metrics.csv", encoding="utf-8"))}
    assert set(run.data.metrics) == set(spec["metrics"])
    for key, value in run.data.metrics.items():
        assert math.isfinite(value) and value == pytest.approx(saved[key], rel=1e-6), key
    config = _config_artifact(client, run, tmp_path)
    assert "evaluator" in config and "MetricsSaver" in json.dumps(config["handlers"])
