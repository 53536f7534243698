import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the lab downloads; a test that tries must fail
torch.set_num_threads(1)  # pytest -n 2 already uses both cores


@pytest.fixture
def tiny_config():
    from lab.model.labgpt import LabGPTConfig

    return LabGPTConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, max_position_embeddings=64)


@pytest.fixture
def tiny_model(tiny_config):
    from lab.model.labgpt import LabGPTForCausalLM

    torch.manual_seed(0)
    return LabGPTForCausalLM(tiny_config).eval()
