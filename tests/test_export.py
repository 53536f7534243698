"""Export to Llama format: plain transformers loads it and gives the same logits."""

import json

import pytest
import torch
from transformers import LlamaForCausalLM

from lab.errors import LabError
from lab.model.export import export
from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM


@pytest.mark.parametrize("tied", [True, False])
def test_llama_export_gives_the_same_logits(tmp_path, tied):
    torch.manual_seed(0)
    config = LabGPTConfig(vocab_size=101, hidden_size=48, num_hidden_layers=2, num_attention_heads=6,
                          num_key_value_heads=2, tie_word_embeddings=tied, rope_theta=5000.0)
    model = LabGPTForCausalLM(config).eval()
    with torch.no_grad():  # a trained model has a non-trivial norm weight; make sure it is carried over
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp_path / "stage")
    export(tmp_path / "stage", tmp_path / "llama")
    llama = LlamaForCausalLM.from_pretrained(tmp_path / "llama", dtype=torch.float32).eval()
    assert "labgpt" not in (tmp_path / "llama" / "config.json").read_text()
    x = torch.randint(0, 101, (3, 20), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(x)
    mask[0, :6] = 0
    with torch.no_grad():
        diff = (llama(x, attention_mask=mask).logits - model(x, attention_mask=mask).logits)[:, 6:].abs().max()
        assert diff <= 1e-4
        assert (llama(x).logits - model(x).logits).abs().max() <= 1e-4


def test_export_of_a_folder_without_a_model_is_one_clear_error(tmp_path):
    with pytest.raises(LabError, match="holds no model"):
        export(tmp_path, tmp_path / "out")
    with pytest.raises(LabError, match="unknown export format"):
        export(tmp_path, tmp_path / "out", fmt="gguf")


def test_the_export_stage_writes_a_llama_checkpoint_that_answers_as_labgpt_does(tmp_path):
    from lab.model.export import export_sections
    from lab.model.tokenizer import save_tokenizer, train_tokenizer
    from lab.pipeline import run_stage
    from lab.presets import get_preset
    from lab.runs import Run
    from lab.stages import by_name

    tokenizer = train_tokenizer(["Who are you? I am the lab's assistant, made here. 17 + 25 = 42."] * 50, vocab_size=300,
                                model_max_length=128)
    torch.manual_seed(0)
    model = LabGPTForCausalLM(LabGPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128))
    preset = get_preset("tiny", ["export.check_prompts=3", "export.max_new_tokens=6"])
    run = Run.create_or_open(tmp_path / "run", preset)
    model.save_pretrained(run.stage_dir("sft-idk"))
    save_tokenizer(tokenizer, run.stage_dir("sft-idk"))
    run.mark_complete("sft-idk")
    run_stage(by_name()["export"], run, preset)
    assert run.is_complete("export") and "labgpt" not in (run.stage_dir("export") / "config.json").read_text()
    assert LlamaForCausalLM.from_pretrained(run.stage_dir("export")).config.model_type == "llama"
    summary = json.loads((run.stage_dir("export") / "summary.json").read_text())
    assert summary["checked"] == 3 and summary["same_answers"] == 3
    assert all(len(r["labgpt"]) > 0 for r in summary["answers"])  # they answered, and alike
    (title, blocks), = export_sections(run, "export")
    assert title == "Export (run)" and "3 of 3 the same" in blocks[0][1] and len(blocks[1][1][1]) == 3


@pytest.mark.parametrize("setting, message", [("export.format=gguf", "unknown export.format 'gguf'; valid: llama"),
                                              ("export.check_prompts=99", "export.check_prompts must be within")])
def test_bad_export_settings_are_refused_at_preset_load(setting, message):
    from lab.presets import get_preset

    with pytest.raises(LabError, match=message):
        get_preset("tiny", [setting])
