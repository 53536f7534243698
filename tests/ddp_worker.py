"""Run under torchrun by tests/test_pretrain.py: pretrain a few steps (DDP or FSDP, as the overrides say;
`stop_at=N` stops as if killed), write this rank's weight checksum (FSDP: the gathered model, rank 0 only)."""

import json
import os
import sys

import torch

from lab.presets import get_preset, stage_context
from lab.runs import Run
from lab.train.pretrain import pretrain

run_dir, overrides = sys.argv[1], [a for a in sys.argv[2:] if not a.startswith("stop_at=")]
stop_at = next((int(a.split("=")[1]) for a in sys.argv[2:] if a.startswith("stop_at=")), None)
rank = int(os.environ["RANK"])
preset = get_preset("tiny", overrides)
torch.manual_seed(preset.seed)
result = pretrain(preset.pretrain, stage_context(Run(run_dir), preset).at("base"), quiet=True, stop_at=stop_at)
model = result["model"]
if model is None:  # FSDP gathers the whole model on rank 0 only
    sys.exit(0)
checksum = float(sum(p.double().sum() * (i + 1) for i, p in enumerate(model.parameters())))
torch.manual_seed(preset.seed)
from lab.model.labgpt import LabGPTForCausalLM  # noqa: E402
from lab.model.tokenizer import load_tokenizer  # noqa: E402
from lab.train.pretrain import model_config  # noqa: E402

initial_model = LabGPTForCausalLM(model_config(preset.model, len(load_tokenizer(Run(run_dir).stage_dir("tokenizer")))))
initial = float(sum(p.double().sum() * (i + 1) for i, p in enumerate(initial_model.parameters())))
with open(os.path.join(run_dir, f"rank{rank}.json"), "w") as f:
    json.dump({"step": result["step"], "resumed_at": result["resumed_at"], "weights": checksum, "initial": initial}, f)
