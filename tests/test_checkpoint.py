"""Checkpoints are written atomically, hold every object, and resume finds the newest."""

import os

import pytest
import torch
from ignite.engine import Engine, Events

from common.engines import AtomicCheckpointSaver, latest_checkpoint, resume_path


def _engine_and_objects():
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)

    def step(engine, _):
        opt.zero_grad()
        net(torch.ones(1, 2)).sum().backward()
        opt.step()

    return Engine(step), net, opt


def test_saves_everything_and_resume_finds_newest(tmp_path):
    engine, net, opt = _engine_and_objects()
    saver = AtomicCheckpointSaver(tmp_path / "ckpt", {"net": net, "opt": opt}, save_interval=2, epoch_level=False,
                                  n_saved=2, network=net, network_path=tmp_path / "models/model.pt")
    saver.attach(engine)
    engine.run([0] * 5, max_epochs=1)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["checkpoint_4.pt", "checkpoint_5.pt"]  # every 2 iterations, the final one, newest 2 kept
    assert latest_checkpoint(tmp_path / "ckpt").endswith("checkpoint_5.pt")
    ckpt = torch.load(latest_checkpoint(tmp_path / "ckpt"), weights_only=True)
    assert set(ckpt) == {"net", "opt", "trainer"} and ckpt["trainer"]["iteration"] == 5
    assert torch.equal(ckpt["net"]["weight"], net.weight)
    assert ckpt["opt"]["state"][0]["step"] == 5
    model = torch.load(tmp_path / "models/model.pt", weights_only=True)
    assert set(model) == {"weight", "bias"}  # plain state_dict of the deployable network
    assert resume_path("true", tmp_path / "ckpt") == latest_checkpoint(tmp_path / "ckpt")
    assert resume_path("false", tmp_path / "ckpt") is None and resume_path(False, tmp_path) is None
    with pytest.raises(FileNotFoundError, match="cannot resume: no checkpoint"):
        resume_path(True, tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="checkpoint 'nope.pt' does not exist"):
        resume_path("nope.pt", tmp_path)


def test_failed_write_leaves_the_good_file(tmp_path, monkeypatch):
    engine, net, opt = _engine_and_objects()
    saver = AtomicCheckpointSaver(tmp_path, {"net": net}, network=net, network_path=tmp_path / "model.pt")
    saver.attach(engine)
    engine.run([0], max_epochs=1)
    good = (tmp_path / "model.pt").read_bytes()
    before = sorted(os.listdir(tmp_path))

    def broken_save(obj, f, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    engine2, net2, _ = _engine_and_objects()
    AtomicCheckpointSaver(tmp_path, {"net": net2}, network=net2, network_path=tmp_path / "model.pt").attach(engine2)
    with pytest.raises(OSError, match="disk full"):
        engine2.run([0, 0], max_epochs=1)
    assert (tmp_path / "model.pt").read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == before  # no temporary or partial file left behind


def test_amp_grad_scalers_travel_with_the_trainers_checkpoint(tmp_path):
    """Under AMP the trainer's checkpoint holds each optimiser's GradScaler state, and resuming restores it: the
    loss scale the interrupted run reached (a scaler that doubles every step: 4 -> 32 after 3 steps), not a new
    scaler's. Training itself runs under CPU autocast (bfloat16) through the scaler."""
    from common.engines import MultiNetworkTrainer
    from common.engines.checkpoint import ResumeCheckpointLoader

    def trainer_and_objects(iterations: int):
        net = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)

        def step(engine, _):
            with engine.autocast():
                loss = net(torch.ones(1, 2)).float().square().mean()
            engine.optimise("net", loss)
            return {"loss": loss.item()}

        trainer = MultiNetworkTrainer("cpu", 1, [{}] * iterations, {"net": net}, {"net": opt}, step, amp=True)
        return trainer, net, opt

    trainer, net, opt = trainer_and_objects(3)
    trainer.scalers["net"] = torch.amp.GradScaler("cpu", init_scale=4.0, growth_interval=1)
    AtomicCheckpointSaver(tmp_path, {"net": net, "opt": opt}, epoch_level=False).attach(trainer)
    weight_before = net.weight.detach().clone()
    trainer.run()
    assert not torch.equal(net.weight, weight_before)  # the scaled, unscaled gradients stepped the weights
    assert trainer.scalers["net"].get_scale() == 32.0
    ckpt = torch.load(latest_checkpoint(tmp_path), weights_only=True)
    assert ckpt["trainer"]["grad_scalers"]["net"]["scale"] == 32.0

    resumed, net2, opt2 = trainer_and_objects(3)
    ResumeCheckpointLoader(latest_checkpoint(tmp_path), {"net": net2, "opt": opt2}).attach(resumed)
    resumed.fire_event(Events.STARTED)  # what run() fires first: the loader restores everything there
    assert resumed.state.iteration == 3 and torch.equal(net2.weight, net.weight)
    assert resumed.scalers["net"].state_dict() == trainer.scalers["net"].state_dict()
    # resumed without AMP: the checkpoint loads, its scalers are left out and not saved again
    plain, net3, opt3 = trainer_and_objects(3)
    plain.amp = False
    ResumeCheckpointLoader(latest_checkpoint(tmp_path), {"net": net3, "opt": opt3}).attach(plain)
    plain.fire_event(Events.STARTED)
    assert plain.state.iteration == 3 and plain.scalers == {} and "grad_scalers" not in plain.state_dict()
