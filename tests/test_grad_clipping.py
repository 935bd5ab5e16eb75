"""``MultiNetworkTrainer(grad_clip_norm=...)``: each optimiser's update clipped to a total gradient norm, the norm
before clipping reported in the step's output, and every bundle's ``train.json`` passing the value through."""

from __future__ import annotations

import pytest
import torch
from bundle_utils import configs
from ignite.engine import Events
from monai.bundle import ConfigParser

from common.engines import MultiNetworkTrainer
from tools.bundles import BUNDLES

X = torch.tensor([[3.0, 4.0]])  # loss = w . x: the gradient of w is x, norm 5


def _trainer(grad_clip_norm, amp: bool = False):
    """Two bias-free linear maps A and B with weights (1, 1), SGD at lr 1, each minimising its output on X."""
    nets = {name: torch.nn.Linear(2, 1, bias=False) for name in ("A", "B")}
    for net in nets.values():
        torch.nn.init.ones_(net.weight)
    optimizers = {name: torch.optim.SGD(net.parameters(), lr=1.0) for name, net in nets.items()}

    def step(engine, batch):
        for name in ("A", "B"):
            with engine.updating(name) as current:
                loss = current[name](batch["x"]).sum()
            engine.optimise(name, loss)
        return {"loss": float(loss)}

    trainer = MultiNetworkTrainer("cpu", 1, [{"x": X}], nets, optimizers, step=step, grad_clip_norm=grad_clip_norm, amp=amp)
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output))
    trainer.run()
    return nets, outputs


def test_one_norm_clips_every_optimiser_and_reports_the_norm_before_clipping():
    nets, outputs = _trainer(0.5)
    # w <- w - x * 0.5 / 5 = (1, 1) - (0.3, 0.4)
    for net in nets.values():
        assert torch.allclose(net.weight, torch.tensor([[0.7, 0.6]]), atol=1e-6)
    assert outputs[0]["grad_norm_A"] == pytest.approx(5.0) and outputs[0]["grad_norm_B"] == pytest.approx(5.0)
    assert outputs[0]["loss"] == pytest.approx(7.0)


def test_a_mapping_clips_only_the_named_optimisers_and_a_large_limit_changes_nothing():
    nets, outputs = _trainer({"A": 1.0})
    assert torch.allclose(nets["A"].weight, torch.tensor([[1 - 0.6, 1 - 0.8]]), atol=1e-6)
    assert torch.allclose(nets["B"].weight, torch.tensor([[-2.0, -3.0]]), atol=1e-6)  # the full step
    assert set(outputs[0]) == {"loss", "grad_norm_A"}
    nets, outputs = _trainer(100.0)
    assert torch.allclose(nets["A"].weight, torch.tensor([[-2.0, -3.0]]), atol=1e-6)
    nets, outputs = _trainer(None)
    assert set(outputs[0]) == {"loss"} and torch.allclose(nets["B"].weight, torch.tensor([[-2.0, -3.0]]))


def test_under_amp_the_gradients_are_unscaled_before_they_are_clipped():
    nets, outputs = _trainer(0.5, amp=True)
    assert outputs[0]["grad_norm_A"] == pytest.approx(5.0)  # not 5 x the GradScaler's 65536
    assert torch.allclose(nets["A"].weight, torch.tensor([[0.7, 0.6]]), atol=1e-6)


def test_the_norm_is_this_iterations_and_the_largest_of_its_updates():
    """An optimiser not updated in an iteration (Deform-GAN's D and G on a batch without an own pair) reports
    nothing there, not the last iteration's norm; one updated twice (MedGAN's generator_updates) its larger norm."""
    net = torch.nn.Linear(2, 1, bias=False)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: the gradient stays x * scale in every update

    def step(engine, batch):
        for scale in batch["scales"]:
            with engine.updating("A") as current:
                loss = scale * current["A"](X).sum()
            engine.optimise("A", loss)
        return {}

    batches = [{"scales": [1.0, 3.0, 2.0]}, {"scales": []}]
    trainer = MultiNetworkTrainer("cpu", 1, batches, {"A": net}, {"A": optimizer}, step=step, grad_clip_norm=1.0)
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output))
    trainer.run()
    assert outputs[0] == {"grad_norm_A": pytest.approx(15.0)} and outputs[1] == {}


@pytest.mark.parametrize(
    "value, error",
    [({"C": 1.0}, KeyError), (0.0, ValueError), ({"A": -1.0}, ValueError), (True, ValueError), ("1.0", ValueError)],
)
def test_bad_limits_are_refused_naming_them(value, error):
    with pytest.raises(error, match="grad_clip_norm"):
        _trainer(value)


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_every_bundle_passes_grad_clip_norm_to_its_trainer(bundle):
    """The trainer each train.json builds (at the test size, without its data and handlers) clips every optimiser
    at ``--grad_clip_norm``, and none by default."""
    size = {**BUNDLES[bundle]["sizes"]["test"]["settings"], **BUNDLES[bundle]["sizes"]["test"]["schedule"]}
    for value, expected in ((None, {}), (2.5, "every optimiser")):
        parser = ConfigParser()
        parser.read_config(configs(bundle, "train"))
        parser.update({**size, "grad_clip_norm": value, "train#trainer#data_loader": [], "train#trainer#handlers": []})
        trainer = parser.get_parsed_content("train#trainer")
        assert trainer.grad_clip_norms == (expected if expected == {} else dict.fromkeys(trainer.optimizers, 2.5))
