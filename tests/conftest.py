import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the lab downloads; a test that tries must fail
torch.set_num_threads(1)  # pytest -n 2 already uses both cores

# CI sets LAB_REQUIRE_SANDBOX=1 (.ci/run): there a security test that would skip for want of a protection
# (root, a network namespace, a private /tmp) fails instead, so a machine that lost one cannot pass quietly.
REQUIRE_SANDBOX = os.environ.get("LAB_REQUIRE_SANDBOX") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SANDBOX and report.skipped and item.get_closest_marker("sandbox"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"LAB_REQUIRE_SANDBOX=1, so this security test may not skip: {reason}"


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
