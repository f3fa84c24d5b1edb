"""Distributed data-parallel training under ``torchrun`` (one process per GPU).

``torchrun --standalone --nproc_per_node=N -m jointseg train ...`` sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`init_distributed` then joins the process
group (NCCL when the run's device is CUDA, gloo on the CPU) and pins each process
to GPU ``LOCAL_RANK``. Without those variables the run is a single process and
nothing here touches ``torch.distributed``.

Sampling is sharded by :func:`shard`: every rank draws the same global permutation
of crops from ``(seed, epoch)`` and takes every ``world_size``-th item, padded by
wrapping so all ranks run the same number of steps (DDP needs matching
all-reduces). Only rank 0 writes checkpoints, history and logs.

A run ends with :func:`shutdown` (a final barrier) only when it succeeded on this rank;
a rank that fails calls :func:`abort`, which leaves the group without waiting, so one
failing rank ends the job at once with its own error instead of hanging the others.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the run.

    Attributes:
        rank: global rank (0 = the writer).  world_size: number of processes.
        local_rank: rank on this node (the GPU index).  device: this process's device.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that writes outputs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when ``WORLD_SIZE`` > 1 is in the environment (torchrun / SLURM launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> DistEnv:
    """Join the process group when launched by torchrun; a single-process env otherwise.

    Args:
        device: the device the config asks for (its type picks NCCL or gloo).

    Raises:
        RuntimeError: if CUDA is asked for but this node has fewer GPUs than
            ``LOCAL_RANK`` + 1.
    """
    if not launched_by_torchrun():
        return DistEnv(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    log.info("rank %d/%d (local %d) on %s, backend %s", rank, world, local, device, backend)
    return DistEnv(rank, world, local, device)


def shutdown(env: DistEnv) -> None:
    """Leave the process group after a run that succeeded on this rank: a final barrier
    (every rank has finished), then the group is destroyed. After a failure call
    :func:`abort` instead."""
    if env.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def abort(env: DistEnv, exc: BaseException | None = None) -> None:
    """Leave the process group at once after this rank failed, so the job ends now.

    No barrier: the other ranks wait in a collective (DDP's all-reduce) that this rank
    will never join, and a barrier would wait with them until NCCL's watchdog fires
    (10 minutes) and buries the error under its own. The communicators are aborted
    (NCCL; the gloo group is destroyed), this rank logs its error and exits, and
    torchrun then stops the other ranks and reports this one.
    """
    if not (env.distributed and dist.is_initialized()):
        return
    if exc is not None:
        log.error("rank %d of %d failed (%s: %s); aborting the process group",
                  env.rank, env.world_size, type(exc).__name__, exc)
    try:
        abort_group = getattr(dist.distributed_c10d, "_abort_process_group", None)
        if env.device.type == "cuda" and abort_group is not None:
            abort_group()  # ncclCommAbort: returns even with collectives in flight
        else:
            dist.destroy_process_group()
    except Exception as err:  # noqa: BLE001 - the run's own error is what matters
        log.warning("rank %d: leaving the process group failed too (%s)", env.rank, err)


def shard(order: np.ndarray, env: DistEnv, batch_size: int) -> tuple[np.ndarray, int]:
    """This rank's share of a global sample ``order`` and the steps every rank runs.

    The global order is padded (by wrapping) to ``steps * batch_size * world_size``
    items, then rank r takes items r, r + world, r + 2 world, ... (DistributedSampler's
    layout). With one process the order is returned unpadded.
    """
    per_rank = -(-len(order) // env.world_size)
    steps = -(-per_rank // batch_size)
    if not env.distributed:
        return order, steps
    total = steps * batch_size * env.world_size
    padded = np.resize(order, total) if len(order) < total else order[:total]
    return padded[env.rank::env.world_size], steps


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum ``values`` (float64) over ranks; unchanged in a single process."""
    if not env.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if env.device.type == "cuda":
        t = t.to(env.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def broadcast_buffers(module: torch.nn.Module, env: DistEnv) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so all ranks
    validate, and rank 0 saves, the same model."""
    if not env.distributed:
        return
    for buf in module.buffers():
        dist.broadcast(buf, src=0)


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op in a single process)."""
    if env.distributed:
        dist.barrier()


def broadcast_flag(flag: bool, env: DistEnv) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not env.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    if env.device.type == "cuda":
        t = t.to(env.device)
    dist.broadcast(t, src=0)
    return bool(int(t.item()))


def average_gradients(module: torch.nn.Module, env: DistEnv) -> None:
    """Average ``module``'s gradients over ranks (the discriminator is not DDP-wrapped:
    its generator-side forward would break DDP's one-forward-one-backward contract)."""
    if not env.distributed:
        return
    import torch.distributed as dist

    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= env.world_size
