"""An untrained tiny labgpt (32 wide, 2 layers, seeded) with a tokenizer trained on the texts a test gives, saved as
a run's stage (marked complete) or into a folder: the policy the stage tests start from when only the plumbing is
under test, not what a trained model would say."""

from pathlib import Path

import torch

from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM
from lab.model.tokenizer import train_tokenizer
from lab.runs import Run
from lab.stage_names import SFT_IDK


def untrained_policy(where: Run | Path, texts: list[str], vocab_size: int = 300, context: int = 1024,
                     stage: str = SFT_IDK) -> Path:
    """Save the model and tokenizer as `where`'s complete `stage` (a Run) or into `where` (a folder); the folder."""
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    torch.manual_seed(0)
    model = LabGPTForCausalLM(LabGPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=2,
                                           max_position_embeddings=context))
    folder = where.stage_dir(stage) if isinstance(where, Run) else Path(where)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if isinstance(where, Run):
        where.mark_complete(stage)
    return folder
