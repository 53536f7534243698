"""Export to Llama format: a checkpoint any HF tool reads without our code.

labgpt keeps Llama's weight names and shapes, so the export is a new config plus the same tensors;
`transformers.LlamaForCausalLM` then gives the same logits (checked in tests/test_export.py).

- `lab export RUN/STAGE --format llama OUT`: any stage's model, once.
- The pipeline's `export` stage: the assistant (sft-idk) exported into RUN/export and checked there:
  plain transformers answers `export.check_prompts` chat prompts greedily, token for token as labgpt does
  on our engine (summary.json; the report's "Export" section).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.errors import LabError
from lab.runs import write_json

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
FORMATS = ("llama",)
# Questions a user might ask the assistant first: who it is, a fact, a sum, a spelling.
CHECK_QUESTIONS = ("Who are you?", "What can you do?", "What is 17 + 25?", "How many letters are in the word lantern?",
                   "Tell me about yourself.", "What is 9 times 7?", "Spell the word garden backwards.",
                   "Where were you made?")


@dataclass
class ExportSettings:
    format: str = "llama"  # the checkpoint format written (llama: plain transformers.LlamaForCausalLM)
    check_prompts: int = 8  # chat prompts answered greedily by both models; their answers must match
    max_new_tokens: int = 32  # tokens of each checked answer

    def __post_init__(self):
        if self.format not in FORMATS:
            raise LabError(f"unknown export.format '{self.format}'; valid: {', '.join(FORMATS)}")
        if not 0 <= self.check_prompts <= len(CHECK_QUESTIONS):
            raise LabError(f"export.check_prompts must be within [0, {len(CHECK_QUESTIONS)}], got {self.check_prompts}")


def llama_config(config):
    from transformers import LlamaConfig  # lazy, as every heavy import here: the presets hold ExportSettings

    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=config.head_dim,
        hidden_act="silu",
        max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=config.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        tie_word_embeddings=config.tie_word_embeddings,
        attention_bias=False,
        mlp_bias=False,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
    )


def to_llama(model):
    """The same weights in a `transformers.LlamaForCausalLM` (`model`: a LabGPTForCausalLM)."""
    from transformers import LlamaForCausalLM

    llama = LlamaForCausalLM(llama_config(model.config)).to(next(model.parameters()).dtype)
    missing, unexpected = llama.load_state_dict(model.state_dict(), strict=False)
    if unexpected or set(missing) - ({"lm_head.weight"} if model.config.tie_word_embeddings else set()):
        raise LabError(f"labgpt and Llama weights differ: missing {missing}, unexpected {unexpected}")
    llama.tie_weights()
    return llama.eval()


def export(stage_dir: Path, out: Path, fmt: str = "llama") -> Path:
    import torch

    from lab.model.labgpt import LabGPTForCausalLM

    if fmt not in FORMATS:
        raise LabError(f"unknown export format '{fmt}'; valid: {', '.join(FORMATS)}")
    stage_dir, out = Path(stage_dir), Path(out)
    if not (stage_dir / "config.json").exists():
        raise LabError(f"{stage_dir} holds no model (no config.json)")
    model = LabGPTForCausalLM.from_pretrained(stage_dir, dtype=torch.float32)
    if not isinstance(model, LabGPTForCausalLM):
        raise LabError(f"{stage_dir} is not a labgpt checkpoint")
    to_llama(model).save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (stage_dir / name).exists():
            shutil.copy(stage_dir / name, out / name)
    return out


def same_answers(stage_dir: Path, exported: Path, settings: ExportSettings) -> list[dict]:
    """Each checked question, answered greedily by labgpt on our engine and by the export on HF `generate`."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lab.model.chat_format import answer_stops, chat_prompts
    from lab.model.engine import SamplingParams, generate
    from lab.model.loading import load_model_and_tokenizer
    from lab.model.tokenizer import decode_ids

    model, tokenizer = load_model_and_tokenizer(stage_dir, device="cpu")
    llama = LlamaForCausalLM.from_pretrained(exported, dtype=torch.float32).eval()
    if AutoTokenizer.from_pretrained(exported).get_vocab() != tokenizer.get_vocab():
        raise LabError(f"{exported}'s tokenizer is not {stage_dir}'s")
    stops = list(answer_stops(tokenizer))
    rows = []
    for question, (_, ids) in zip(CHECK_QUESTIONS, chat_prompts(tokenizer, list(CHECK_QUESTIONS[: settings.check_prompts]))):
        ours = generate(model, [ids], SamplingParams(max_new_tokens=settings.max_new_tokens, stop_token_ids=tuple(stops)))[0]
        with torch.no_grad():
            theirs = llama.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                    max_new_tokens=settings.max_new_tokens, do_sample=False, eos_token_id=stops,
                                    pad_token_id=tokenizer.pad_token_id)[0, len(ids):].tolist()
        theirs = theirs[: next((i + 1 for i, t in enumerate(theirs) if t in stops), len(theirs))]
        rows.append({"question": question, "labgpt": decode_ids(tokenizer, ours, skip_special_tokens=True),
                     "llama": decode_ids(tokenizer, theirs, skip_special_tokens=True), "same": ours == theirs})
    return rows


def export_stage(settings: ExportSettings, context) -> None:
    """The `export` stage: `context.source` as a checkpoint plain transformers loads, checked answer for answer."""
    run = context.run
    out = run.open_stage(context.stage)
    export(run.require(context.source), out, settings.format)
    rows = same_answers(run.require(context.source), out, settings)
    same = sum(r["same"] for r in rows)
    write_json(out / "summary.json", {"source": context.source, "format": settings.format, "checked": len(rows),
                                      "same_answers": same, "answers": rows, "settings": asdict(settings)})
    if same != len(rows):
        first = next(r for r in rows if not r["same"])
        raise LabError(f"the {settings.format} export of {context.source} answers {len(rows) - same} of {len(rows)} "
                       f"checked prompts differently, first {first['question']!r}: {first['llama']!r} against "
                       f"labgpt's {first['labgpt']!r}")
    run.mark_complete(context.stage, {"format": settings.format, "same_answers": f"{same} of {len(rows)}"})


def export_sections(run, stage: str) -> list[tuple[str, list]]:
    """The report's "Export" section: where the checkpoint is, and the answers both models gave."""
    from lab.runs import read_json

    path = run.stage_dir(stage) / "summary.json"
    if not path.exists():
        return []
    s = read_json(path)
    rows = [[r["question"], " ".join(r["labgpt"].split()), "yes" if r["same"] else "no"] for r in s["answers"]]
    return [(f"Export ({run.name})", [
        ("text", f"{run.name}/{stage} holds {s['source']} as a {s['format']} checkpoint: "
                 "`transformers.LlamaForCausalLM.from_pretrained` loads it without this lab's code. Greedy answers "
                 f"to {s['checked']} chat prompts, by labgpt on the lab's engine and by the export on HF `generate`: "
                 f"{s['same_answers']} of {s['checked']} the same, token for token."),
        ("table", (["question", "answer", "the export's is the same"], rows)),
    ])]
