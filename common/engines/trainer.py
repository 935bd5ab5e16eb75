"""One trainer for every method: any number of networks and optimisers, one method-specific ``step``."""

from __future__ import annotations

import contextlib
import numbers
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from ignite.engine import Events
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from monai.handlers import MLFlowHandler
from torch import nn

GRAD_SCALERS_KEY = "grad_scalers"  # where the trainer's state_dict keeps its GradScalers' states under AMP


class MultiNetworkTrainer(Trainer):
    """A MONAI ``Trainer`` whose iteration is ``step(engine, batch) -> dict``.

    GANs differ in which networks exist and in the order they are updated (CycleGAN: G_A+G_B then D_A+D_B;
    Deform-GAN: D, then G, then T), not in the machinery around them. That machinery lives here, once:
    device placement, train mode, freezing the networks a sub-step must not update, optimiser updates
    (with AMP), and all of MONAI/ignite's handlers (progress, TensorBoard, validation, checkpoints), which
    see ``engine.networks``/``engine.optimizers`` like any other attribute.

    Args:
        networks: name -> module, e.g. ``{"G_A": ..., "G_B": ..., "D_A": ..., "D_B": ...}``.
        optimizers: name -> optimiser, e.g. ``{"G": Adam(G_A + G_B params), "D": ...}``.
        step: callable ``(engine, batch) -> dict`` doing one iteration; the dict (losses as floats, images as
            tensors) becomes ``engine.state.output``. If it has ``required_networks`` / ``required_optimizers``
            attributes they are checked here, so a config that forgets one fails at construction.
        grad_clip_norm: the largest total gradient norm (``torch.nn.utils.clip_grad_norm_``) of each optimiser's
            parameters at each update: one number for all optimisers, a mapping name -> number for some (the others
            unclipped), or None (default) for none. A guard against the rare step that throws a network's weights
            far away (a GAN whose adversary wins at once); with it the norm before clipping joins the step's output
            as ``grad_norm_<name>`` (the largest of the iteration's updates of that optimiser), so the logs show how
            close the updates come to the limit. Under AMP a step the GradScaler skips (its gradients overflowed)
            reports an infinite or NaN norm; no update was made.
        other args: as for ``monai.engines.Trainer`` (``device``, ``max_epochs``, ``data_loader``,
            ``epoch_length``, ``handlers``, ``amp``, ...). ``decollate`` defaults to False: the output is losses.

    Experiment tracking (``python -m monai.bundle run ... --tracking mlflow``): MONAI's default trainer
    ``MLFlowHandler`` reads ``from_engine(['loss'])`` of the output and ``engine.optimizer``, which fit
    ``SupervisedTrainer``'s decollated output and single optimiser, not this dict of losses. So every
    ``MLFlowHandler`` among ``handlers`` that has no ``iteration_logger`` of its own gets
    :meth:`tracked_values` as its ``output_transform``: each iteration it logs every scalar of the step's
    output under its own name and each optimiser's learning rate in that step as ``lr_<name>``.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        data_loader: Any,
        networks: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        step: Callable[[MultiNetworkTrainer, dict], dict],
        decollate: bool = False,
        grad_clip_norm: float | Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(device=device, max_epochs=max_epochs, data_loader=data_loader, decollate=decollate, **kwargs)
        self._step_learning_rates: dict[str, float] = {}
        self.add_event_handler(Events.ITERATION_STARTED, self._record_learning_rates)
        for handler in kwargs.get("handlers") or ():
            if isinstance(handler, MLFlowHandler) and handler.iteration_logger is None:
                handler.output_transform = self.tracked_values
        for kind, given, required in (
            ("network", networks, getattr(step, "required_networks", ())),
            ("optimizer", optimizers, getattr(step, "required_optimizers", ())),
        ):
            missing = [name for name in required if name not in given]
            if missing:
                raise KeyError(f"{type(step).__name__} needs {kind}s {missing}; the config gives {sorted(given)}.")
        self.networks = dict(networks)
        self.optimizers = dict(optimizers)
        self.grad_clip_norms = _clip_norms(grad_clip_norm, self.optimizers)
        self._grad_norms: dict[str, torch.Tensor] = {}  # this iteration's, before clipping
        self.step = step
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        for net in self.networks.values():
            net.to(self.state.device)

    def _iteration(self, engine: MultiNetworkTrainer, batchdata: dict[str, Any]) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        # plain tensors on the device: MetaTensor bookkeeping would cost time in every network op
        batch = {
            k: (
                v.as_subclass(torch.Tensor).to(engine.state.device, non_blocking=engine.non_blocking)
                if isinstance(v, torch.Tensor)
                else v
            )
            for k, v in batchdata.items()
        }
        for net in engine.networks.values():
            net.train()
        engine._grad_norms = {}
        output = engine.step(engine, batch)
        if engine._grad_norms:
            output = {**output, **{f"grad_norm_{name}": float(norm) for name, norm in engine._grad_norms.items()}}
        engine.state.output = output
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return output

    def learning_rates(self) -> dict[str, float]:
        """Each optimiser's current learning rate, ``lr_<name>``; ``lr_<name>_group_<i>`` for an optimiser whose
        parameter groups run at different rates (groups that differ in other settings only, e.g. UNIT-GMM's prior
        without weight decay, share one entry)."""
        rates = {}
        for name, optimizer in self.optimizers.items():
            groups = [float(group["lr"]) for group in optimizer.param_groups]
            if len(set(groups)) == 1:
                rates[f"lr_{name}"] = groups[0]
            else:
                rates.update({f"lr_{name}_group_{i}": lr for i, lr in enumerate(groups)})
        return rates

    def _record_learning_rates(self, engine: MultiNetworkTrainer) -> None:
        # at ITERATION_STARTED, the rates the step runs with: a per-iteration LrScheduleHandler has stepped them by
        # the time the ITERATION_COMPLETED handlers log
        self._step_learning_rates = self.learning_rates()

    def tracked_values(self, output: Mapping[str, Any]) -> dict[str, float]:
        """What an ``MLFlowHandler`` on this trainer logs per iteration: the step's scalar outputs under their own
        names (its losses; images and other tensors are left out) and the learning rates the step ran with
        (:meth:`learning_rates` as the iteration started; the current ones before the first iteration)."""
        values = {
            k: float(v)
            for k, v in output.items()
            if isinstance(v, numbers.Real) or (isinstance(v, torch.Tensor) and v.numel() == 1)
        }
        return {**values, **(self._step_learning_rates or self.learning_rates())}

    @contextlib.contextmanager
    def updating(self, *names: str) -> Iterator[dict[str, nn.Module]]:
        """Within the block only the named networks get gradients; the others are frozen (and restored after).

        Yields the networks to call inside the block: the updated ones as given (so under multi-GPU training
        their DistributedDataParallel wrapper averages the gradients) and the frozen ones unwrapped, because
        a DDP module run forward with frozen parameters waits for gradients that never come. Freezing also
        saves the backward pass through networks a sub-step must not change, e.g. D while G learns.
        """
        unknown = [n for n in names if n not in self.networks]
        if unknown:
            raise KeyError(f"unknown networks {unknown}; this trainer has {sorted(self.networks)}.")
        before = {n: [p.requires_grad for p in net.parameters()] for n, net in self.networks.items()}
        try:
            for n, net in self.networks.items():
                net.requires_grad_(n in names)
            yield {n: net if n in names else _unwrap(net) for n, net in self.networks.items()}
        finally:
            for n, net in self.networks.items():
                for p, flag in zip(net.parameters(), before[n]):
                    p.requires_grad_(flag)

    def state_dict(self) -> OrderedDict:
        """ignite's engine state (iteration, epoch, ...), for checkpoints, and under AMP each optimiser's GradScaler
        state (its loss scale and growth tracker): without it a resumed run would start again from the initial
        scale of 65536 and skip steps until it had found the scale the interrupted run had reached."""
        state = super().state_dict()
        if self.scalers:
            state[GRAD_SCALERS_KEY] = {name: scaler.state_dict() for name, scaler in self.scalers.items()}
        return state

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restores what ``state_dict`` saved; checkpoints written without AMP (no scalers) load as before, and a
        trainer without AMP leaves an AMP checkpoint's scalers out (it would never use them)."""
        state = OrderedDict(state_dict)
        scalers = state.pop(GRAD_SCALERS_KEY, {})
        super().load_state_dict(state)
        for name, scaler_state in scalers.items() if self.amp else ():
            self.scalers.setdefault(name, torch.amp.GradScaler(self.state.device.type)).load_state_dict(scaler_state)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward passes when the trainer was built with ``amp=True``."""
        return torch.autocast(self.state.device.type, enabled=self.amp, **self.amp_kwargs)

    def optimise(self, optimizer_name: str, loss: torch.Tensor) -> None:
        """Zero the optimiser's gradients, back-propagate ``loss``, clip the gradients' norm where ``grad_clip_norm``
        asks and step (through a GradScaler under AMP, which unscales the gradients before they are clipped)."""
        optimizer = self.optimizers[optimizer_name]
        optimizer.zero_grad(set_to_none=True)
        scaler = self.scalers.get(optimizer_name) if self.amp else None
        if self.amp and scaler is None:  # built once per optimiser, on its first update
            scaler = self.scalers[optimizer_name] = torch.amp.GradScaler(self.state.device.type)
        (scaler.scale(loss) if scaler else loss).backward()
        max_norm = self.grad_clip_norms.get(optimizer_name)
        if max_norm is not None:
            if scaler:
                scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm).detach()
            # an optimiser updated several times in one iteration (MedGAN's generator_updates) reports its largest
            previous = self._grad_norms.get(optimizer_name)
            self._grad_norms[optimizer_name] = norm if previous is None else torch.maximum(previous, norm)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()


def _clip_norms(grad_clip_norm: float | Mapping[str, float] | None, optimizers: Mapping) -> dict[str, float]:
    """``grad_clip_norm`` as optimiser name -> largest gradient norm, checked against the trainer's optimisers."""
    if grad_clip_norm is None:
        return {}
    norms = grad_clip_norm if isinstance(grad_clip_norm, Mapping) else dict.fromkeys(optimizers, grad_clip_norm)
    unknown = sorted(set(norms) - set(optimizers))
    if unknown:
        raise KeyError(f"grad_clip_norm names optimisers {unknown}; this trainer has {sorted(optimizers)}.")
    bad = {
        name: norm
        for name, norm in norms.items()
        if norm is not None and (isinstance(norm, bool) or not isinstance(norm, numbers.Real) or not norm > 0)
    }
    if bad:
        raise ValueError(f"grad_clip_norm must be a positive number (or null for no clipping), got {bad}.")
    return {name: float(norm) for name, norm in norms.items() if norm is not None}


def _unwrap(net: nn.Module) -> nn.Module:
    """The module inside a (Distributed)DataParallel wrapper, or the module itself."""
    return net.module if isinstance(net, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else net
