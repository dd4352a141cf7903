"""Running one script on one device or under ``torchrun``: process context, data sharding
that can resume mid-epoch, device choice and cross-process means (nanoGPT's pattern)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from mmface4d.errors import InputError


@dataclass(frozen=True)
class DistContext:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or "RANK" in os.environ

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_env() -> DistContext:
        """Read ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (nanoGPT's DDP detection)."""
        if "RANK" not in os.environ:
            return DistContext()
        return DistContext(
            int(os.environ["RANK"]),
            int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)),
        )


class ResumableSampler(DistributedSampler):
    """:class:`DistributedSampler` that can start an epoch part-way (after a resume).

    Set :attr:`skip` to the number of this rank's samples of the epoch already used.
    """

    skip: int = 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.skip :])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def select_device(spec: str, ctx: DistContext) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU; ``cuda`` under
    torchrun -> ``cuda:LOCAL_RANK``; anything else as given."""
    if spec == "auto":
        return torch.device(f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu")
    if spec == "cuda" and ctx.enabled and torch.cuda.is_available():
        return torch.device(f"cuda:{ctx.local_rank}")  # one GPU per process
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise InputError(f"train.device: not a device {spec!r} (auto, cpu, cuda, cuda:0)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"train.device={spec}: CUDA is not available here")
    return device


def reduce_means(
    sums: dict[str, float], count: int, ctx: DistContext, device: torch.device
) -> dict[str, float]:
    """Mean of each summed quantity over the interval's steps and over all processes."""
    names = sorted(sums)
    values = torch.tensor([sums[n] / count for n in names], dtype=torch.float64)
    if ctx.enabled:
        values = values.to(device)
        dist.all_reduce(values)
        values = values.cpu() / ctx.world_size
    return dict(zip(names, values.tolist(), strict=True))
