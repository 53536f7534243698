"""Run in a fresh interpreter by tests/test_model.py: labgpt's forward (with a loss and a padded batch),
HF `generate`, the lab's engine and one GRPO step of TRL, collecting every FutureWarning and
DeprecationWarning, and every "deprecated" line transformers or TRL log (their `warning_once` fires
once a process, hence the fresh interpreter), each with the stack it was raised from.

A notice is the lab's when the code that called into the warning package is the lab's own (labgpt
returning an output under a renamed field, a stage passing a renamed argument); it is upstream when
another library made the call (TRL 1.16 reading a property transformers 5.24 deprecated). Prints one
JSON line: {"ours": [...], "upstream": [...]}."""

import json
import logging
import sys
import tempfile
import traceback
import warnings
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WATCHED = ("transformers", "trl", "peft", "accelerate")


def owner(filename: str) -> str:
    """'lab' for the repository's own code, a package name for site-packages, 'other' for the rest."""
    if not Path(filename).is_absolute():  # <string>, <frozen runpy>: generated or built-in code
        return "other"
    path = Path(filename).resolve()
    if "site-packages" in path.parts:
        return path.parts[path.parts.index("site-packages") + 1].removesuffix(".py")
    if path.is_relative_to(REPO):
        return "lab"
    return "other"


def culprit(stack: list[str]) -> str:
    """Who called into the package that raised the notice: its frames are innermost (last) in `stack`.

    Frames of the standard library (dataclass-generated __init__, contextlib, logging) are looked
    through; the first frame outside the raising package names the caller."""
    owners = [owner(f) for f in stack]
    raising = next((o for o in reversed(owners) if o in WATCHED), None)
    if raising is None:
        return "other"
    inside = False
    for o in reversed(owners):
        if o == raising:
            inside = True
        elif inside and o != "other":
            return o
    return "other"


def main() -> None:
    import torch

    # imported before the hooks: what libraries say at import time is not the lab's concern
    import transformers  # noqa: F401
    import trl  # noqa: F401
    from transformers import GenerationMixin

    from lab.model.engine import SamplingParams, generate
    from lab.model.hf_generate import use_engine
    from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM
    from lab.model.tokenizer import train_tokenizer
    from lab.presets import get_preset, stage_context
    from lab.runs import Run
    from lab.train.rl_math import rl_math
    from lab.train.rl_settings import RLSettings
    from tasks.math import MathConfig
    from tasks.math import generate as math_problems

    seen = {"ours": [], "upstream": []}

    def note(message: str, stack) -> None:
        files = [frame.filename for frame in stack]
        who = culprit(files)
        where = next((f"{fr.filename}:{fr.lineno}" for fr in reversed(stack) if owner(fr.filename) == who), "?")
        seen["ours" if who == "lab" else "upstream"].append(f"{message.strip()} (called from {where})")

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (FutureWarning, DeprecationWarning)):
            note(str(message), traceback.extract_stack()[:-1])

    class Collect(logging.Handler):
        def emit(self, record):
            if "deprecat" in record.getMessage().lower():
                note(record.getMessage(), traceback.extract_stack()[:-1])

    for name in WATCHED:
        logging.getLogger(name).addHandler(Collect())
    warnings.simplefilter("always")
    warnings.showwarning = show

    torch.manual_seed(0)
    texts = [f"{p.question}\n{p.solution}" for p in math_problems(MathConfig(bands=(1,)), 100)]
    tokenizer = train_tokenizer(texts, vocab_size=300)
    model = use_engine(LabGPTForCausalLM(LabGPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)))
    ids = torch.randint(3, len(tokenizer), (2, 10))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    model.train()
    model(ids, attention_mask=mask, labels=ids).loss.backward()
    model.eval()
    pad = tokenizer.pad_token_id
    model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=pad)  # the engine
    model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=True, top_k=5, pad_token_id=pad)
    # HF's own loop on labgpt (what a call the engine does not implement gets)
    GenerationMixin.generate(model, ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=pad)
    model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=True, repetition_penalty=1.2, pad_token_id=pad)
    generate(model, [[1, 5, 6], [1, 7]], SamplingParams(max_new_tokens=4))

    run = Run(Path(tempfile.mkdtemp()) / "r")
    model.save_pretrained(run.stage_dir("sft-idk"))
    tokenizer.save_pretrained(run.stage_dir("sft-idk"))
    run.mark_complete("sft-idk")
    one_step = RLSettings(steps=1, num_generations=4, batch_size=8, max_completion_length=8, train_problems=8,
                          eval_problems=2, ckpt_every=1, log_every=1, tasks=("arithmetic",), bands=(1,))
    # beta > 0: TRL's reference model too
    rl_math(replace(one_step, beta=0.05), stage_context(run, get_preset("tiny")).at("rl-math", "sft-idk"))
    json.dump(seen, sys.stdout)
    print()


if __name__ == "__main__":
    main()
