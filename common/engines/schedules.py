"""Learning-rate schedules of the GAN papers, stepped once per iteration so that short runs follow them too."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR


class LinearDecayLR(LambdaLR):
    """Constant learning rate for ``constant_steps``, then a linear decay over ``decay_steps`` towards zero.

    The factor of step ``k`` (0-based) is 1 while ``k < constant_steps`` and then
    ``1 - (k - constant_steps + 1) / (decay_steps + 1)``: the first decaying step already runs below the base rate
    and the last at ``1 / (decay_steps + 1)`` of it, as in the CycleGAN reference implementation (which applies the
    same rule per epoch). Step it per iteration (``LrScheduleHandler(epoch_level=False)``): the papers' schedules are
    given in epochs of thousands of iterations, and a per-epoch step would hold a short run's rate constant for a
    whole epoch after the decay should have begun. Its ``state_dict`` (the step count) resumes with the checkpoint.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, constant_steps: int, decay_steps: int, last_epoch: int = -1):
        if constant_steps < 0 or decay_steps < 0:
            raise ValueError(f"constant_steps and decay_steps must be >= 0, got {constant_steps} and {decay_steps}.")
        self.constant_steps, self.decay_steps = int(constant_steps), int(decay_steps)
        super().__init__(optimizer, self.factor, last_epoch=last_epoch)

    def factor(self, step: int) -> float:
        if step < self.constant_steps:
            return 1.0
        return max(0.0, 1.0 - (step - self.constant_steps + 1) / (self.decay_steps + 1))

    def state_dict(self) -> dict:
        # LambdaLR would try to store ``self.factor``; the bound method carries no state of its own
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)
