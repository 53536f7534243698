"""Export to Llama format: plain transformers loads it and gives the same logits."""

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
