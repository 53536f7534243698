"""How much memory a training method holds: the model-state bytes every RL/RLHF stage reports side by side
(weights of every model held, gradients and optimizer moments of what is trained), and the process's peak."""

from __future__ import annotations

import resource

import torch


def state_bytes(models: list, optimizer) -> int:
    """Bytes of the weights of every model held, plus a gradient and the optimizer's moments for each parameter
    the optimizer updates (frozen models may still say requires_grad: they get no gradient)."""
    weights = {id(p): p.numel() * p.element_size() for m in models for p in m.parameters()}
    grads = sum(p.numel() * p.element_size() for g in optimizer.param_groups for p in g["params"])
    moments = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                  if torch.is_tensor(t))
    return sum(weights.values()) + grads + moments


def peak_memory_mb() -> float:
    """Peak GPU memory allocated, or this process's peak resident memory on CPU (the whole process's)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def training_memory(trainer, held=()) -> dict:
    """Model-state memory of a TRL trainer (policy, reference if any, optimizer) plus models `held` beside it."""
    models = [trainer.model, *([trainer.ref_model] if getattr(trainer, "ref_model", None) is not None else []), *held]
    return memory_of(models, trainer.optimizer)


def memory_of(models: list, optimizer) -> dict:
    """The memory figure every method reports: model state in MB, and the process's peak."""
    return {"state_mb": state_bytes(models, optimizer) / 2**20, "peak_mb": peak_memory_mb()}
