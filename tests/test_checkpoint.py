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
