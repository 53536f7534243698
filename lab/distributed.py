"""DDP when launched by torchrun (WORLD_SIZE > 1), a no-op wrapper otherwise.

NCCL on CUDA, gloo on CPU, so the multi-process path is exercised by CI on a 2-core machine."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @classmethod
    def from_env(cls, device_name: str = "auto") -> "Distributed":
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available() if device_name == "auto" else device_name.startswith("cuda")
        if use_cuda:
            device = torch.device("cuda", local_rank if world_size > 1 else 0)
            if device_name.startswith("cuda:"):
                device = torch.device(device_name)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if world_size > 1 and not torch_dist.is_initialized():
            torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        return cls(rank, world_size, local_rank, device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model):
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def no_sync(self, model, last: bool):
        """Skip the gradient all-reduce on every micro-batch but the last one of a step."""
        if self.world_size > 1 and not last:
            return model.no_sync()
        return nullcontext()

    def mean(self, value: float) -> float:
        if self.world_size == 1:
            return value
        t = torch.tensor([value], device=self.device)
        torch_dist.all_reduce(t)
        return t.item() / self.world_size

    def barrier(self) -> None:
        if self.world_size > 1:
            torch_dist.barrier()

    def close(self) -> None:
        if self.world_size > 1 and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
