"""The per-iteration learning-rate schedule against the rule written out by hand, and through a real trainer."""

import pytest
import torch

from common.engines import LinearDecayLR


def _lrs(constant, decay, steps, base=2e-4):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched = LinearDecayLR(opt, constant, decay)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs, sched


def test_constant_then_linear_decay_by_hand():
    lrs, _ = _lrs(constant=3, decay=2, steps=5)
    # the reference implementation's rule 1 - (k - n_const + 1) / (n_decay + 1): 1, 1, 1, 2/3, 1/3
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3])


def test_decay_starts_right_after_the_constant_part():
    """The defect this replaces: SequentialLR -> LinearLR(start_factor=1) ran the first decaying epoch at the full rate."""
    lrs, _ = _lrs(constant=30, decay=10, steps=40)
    assert lrs[29] == 2e-4 and lrs[30] < 2e-4 and lrs[39] == pytest.approx(2e-4 / 11)
    assert all(a > b for a, b in zip(lrs[30:], lrs[31:]))


def test_state_dict_resumes_the_schedule():
    _, sched = _lrs(constant=3, decay=4, steps=5)
    state = sched.state_dict()
    torch.save(state, buf := __import__("io").BytesIO())
    buf.seek(0)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    resumed = LinearDecayLR(opt, 3, 4)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    opt.step()
    resumed.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-4 * (1 - 4 / 5))  # step 6 of the schedule: k=6 -> 1 - 4/5
    with pytest.raises(ValueError, match="must be >= 0"):
        LinearDecayLR(opt, -1, 3)


def test_resume_follows_the_configs_lengths_and_refuses_another_schedule():
    _, sched = _lrs(constant=3, decay=4, steps=5)
    state = sched.state_dict()
    assert "constant_steps" not in state and state["last_epoch"] == 5
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    longer = LinearDecayLR(opt, 10, 10)  # the run extended on resume: the new lengths hold
    longer.load_state_dict(state)
    assert (longer.constant_steps, longer.decay_steps, longer.last_epoch) == (10, 10, 5)
    legacy = torch.optim.lr_scheduler.SequentialLR(
        opt, [torch.optim.lr_scheduler.ConstantLR(opt, 1.0, 2), torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.0, 2)], [2])
    with pytest.raises(ValueError, match="not a LinearDecayLR's"):
        LinearDecayLR(opt, 3, 4).load_state_dict(legacy.state_dict())
