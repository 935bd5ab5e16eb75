"""Multi-process training under torchrun: the process group, each rank's device, DDP wrapping, and which handlers
a rank runs. ``multi_gpu_train.json`` calls these; a single process never needs them."""

from __future__ import annotations

import torch
from torch import nn


def process_rank() -> int:
    """This process's rank under torch.distributed (0 when it is not initialised: a single process)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def start_distributed() -> None:
    """Joins torchrun's process group (NCCL on GPUs, gloo on CPUs) and, on GPUs, selects this rank's device."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(rank_device())


def end_distributed() -> None:
    """Waits for every rank, then leaves the process group."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank_device() -> torch.device:
    """This rank's device: ``cuda:<rank>`` on GPUs, else the CPU."""
    return torch.device(f"cuda:{process_rank()}") if torch.cuda.is_available() else torch.device("cpu")


def ddp_network(network: nn.Module, device: torch.device) -> nn.parallel.DistributedDataParallel:
    """``network`` on ``device`` inside DistributedDataParallel (device ids only on GPUs)."""
    return nn.parallel.DistributedDataParallel(
        network.to(device), device_ids=[device] if device.type == "cuda" else None
    )


# trainer handlers that only rank 0 runs under multi-process training: validation, and what writes logs or files
RANK_ZERO_ONLY = ("ValidationHandler", "ProgressLogger", "StatsHandler", "TensorBoardStatsHandler", "MLFlowHandler")


def handlers_for_rank(handlers, rank: int | None = None) -> list:
    """``handlers`` as this rank runs them: all on rank 0 (and in a single process), on the others all but those of
    ``RANK_ZERO_ONLY`` (chosen by type, not by place, so that a reordered or longer list stays right). Checkpoint
    saving stays on every rank: ignite synchronises it and writes from rank 0."""
    rank = process_rank() if rank is None else rank
    return list(handlers) if rank == 0 else [h for h in handlers if type(h).__name__ not in RANK_ZERO_ONLY]
