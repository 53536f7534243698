"""DDP or FSDP when launched by torchrun (WORLD_SIZE > 1), a no-op wrapper otherwise.

DDP keeps a whole model on every rank and all-reduces gradients; FSDP (PyTorch's FSDP2, `fully_shard`)
shards parameters, gradients and optimizer state across ranks, one group per decoder layer, for models
that do not fit one device. NCCL on CUDA, gloo on CPU, so both multi-process paths are exercised by CI
on a 2-core machine. Checkpoints hold full (unsharded) weights and an optimizer state keyed by parameter
name, whatever the strategy, so a run can resume on another number of ranks or strategy."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

from lab.errors import LabError


@dataclass
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    sharded: bool = False  # set by wrap(): FSDP owns the parameters

    @classmethod
    def from_env(cls, device_name: str = "auto") -> Distributed:
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

    def wrap(self, model, strategy: str = "ddp"):
        """The model to run forward/backward on: DDP's wrapper, or the model itself sharded in place (FSDP:
        build the optimizer after this, on the sharded parameters)."""
        if strategy not in ("ddp", "fsdp"):
            raise LabError(f"unknown parallel strategy '{strategy}'; valid: ddp, fsdp")
        self.sharded = self.world_size > 1 and strategy == "fsdp"
        if self.world_size == 1:
            return model
        if self.sharded:
            mesh = init_device_mesh(self.device.type, (self.world_size,))
            for layer in model.model.layers:  # one all-gather per layer: only one layer is ever whole
                fully_shard(layer, mesh=mesh)
            fully_shard(model, mesh=mesh)  # the rest: embeddings (tied to the head), final norm
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def no_sync(self, model, last: bool):
        """Skip the gradient all-reduce (reduce-scatter under FSDP) on every micro-batch but a step's last."""
        if self.sharded:
            model.set_requires_gradient_sync(last)
        elif self.world_size > 1 and not last:
            return model.no_sync()
        return nullcontext()

    def full_state_dict(self, model) -> dict:
        """Whole weights on the main rank (a collective under FSDP: every rank must call it); {} elsewhere."""
        if not self.sharded:
            return model.state_dict() if self.is_main else {}
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def full_optimizer_state(self, model, optimizer) -> dict:
        """The optimizer state keyed by parameter name, whole, on the main rank (collective under FSDP); {} elsewhere."""
        if not self.sharded and not self.is_main:  # DDP: every rank holds the same state; only the main writes it
            return {}
        return get_optimizer_state_dict(model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=self.sharded))

    def load_optimizer_state(self, model, optimizer, state: dict) -> None:
        if all(isinstance(k, int) for k in state.get("state", {})):  # a checkpoint from before name keys
            optimizer.load_state_dict(state)
            return
        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))

    @staticmethod
    def grad_norm(total) -> float:
        return float(total.full_tensor() if hasattr(total, "full_tensor") else total)  # a DTensor under FSDP

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
            # every rank leaves together: a rank that tore its gloo group down while the main rank was still
            # saving and sampling aborted now and then ("terminate called without an active exception")
            torch_dist.barrier()
            torch_dist.destroy_process_group()
