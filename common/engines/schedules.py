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
        """``LambdaLR``'s state (the step count) without the schedule's lengths: those come from the config, so a
        resumed run that extends the schedule follows the new one."""
        return {k: v for k, v in super().state_dict().items() if k not in ("constant_steps", "decay_steps")}

    def load_state_dict(self, state_dict: dict) -> None:
        if "_schedulers" in state_dict or "last_epoch" not in state_dict:
            raise ValueError(
                f"the checkpoint's learning-rate scheduler state is not a LinearDecayLR's (keys {sorted(state_dict)[:6]}); "
                "it was written by another schedule (e.g. the per-epoch SequentialLR of earlier versions): start afresh."
            )
        super().load_state_dict({k: v for k, v in state_dict.items() if k not in ("constant_steps", "decay_steps")})
