"""labgpt as a transformers model: each gotcha from DESIGN.md pinned by a test."""

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from lab.model.cache import CACHE_FIELD
from lab.model.hf_generate import use_engine
from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM, LabGPTModel
from lab.model.labgpt_rm import LabGPTForSequenceClassification


def ids(batch=2, length=12, vocab=97, seed=0):
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_config_carries_what_trl_and_generate_read(tiny_config):
    assert (tiny_config.pad_token_id, tiny_config.bos_token_id, tiny_config.eos_token_id) == (0, 1, 2)
    assert tiny_config.tie_word_embeddings is True and tiny_config.use_cache is True
    assert tiny_config.num_hidden_layers == 2
    assert LabGPTConfig.auto_map == {}
    assert isinstance(LabGPTForCausalLM._tied_weights_keys, dict)


def test_parameter_count_formula_matches_the_module(tiny_config):
    model = LabGPTForCausalLM(tiny_config)
    assert sum(p.numel() for p in model.parameters()) == tiny_config.num_parameters()
    untied = LabGPTConfig(**{**tiny_config.to_dict(), "tie_word_embeddings": False})
    assert sum(p.numel() for p in LabGPTForCausalLM(untied).parameters()) == untied.num_parameters()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="multiple"):
        LabGPTConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="multiple"):
        LabGPTConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=3)


def test_auto_classes_load_a_saved_model(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LabGPTConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), LabGPTModel)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(reloaded, LabGPTForCausalLM)
    x = ids()
    # RoPE is computed in forward, not held in a buffer that from_pretrained leaves uninitialised.
    assert torch.equal(reloaded(x).logits, tiny_model(x).logits)
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=1)
    assert isinstance(classifier, LabGPTForSequenceClassification)


def test_left_padding_without_position_ids_matches_the_unpadded_sequence(tiny_model):
    # GRPO passes left-padded batches with a mask and no position ids.
    x = ids(1, 10)
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), x], 1)
    mask = torch.cat([torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 10, dtype=torch.long)], 1)
    alone = tiny_model(x).logits
    batched = tiny_model(padded, attention_mask=mask).logits[:, 4:]
    assert torch.allclose(alone, batched, atol=1e-5)
    assert tiny_model(x, attention_mask=None).logits.shape == (1, 10, 97)


def test_kv_cache_matches_full_forward(tiny_model):
    x = ids(2, 9)
    full = tiny_model(x, use_cache=False).logits
    out = tiny_model(x[:, :5], use_cache=True)
    step = tiny_model(x[:, 5:], use_cache=True, **{CACHE_FIELD: getattr(out, CACHE_FIELD)})
    assert torch.allclose(step.logits, full[:, 5:], atol=1e-5)


def test_a_left_padded_batch_decodes_through_the_cache_like_a_full_forward(tiny_model):
    # what generate and TRL pass: a 2-D padding mask over every key, past ones included, no position ids
    x = ids(2, 9)
    mask = torch.ones_like(x)
    mask[0, :3] = 0
    full = tiny_model(x, attention_mask=mask, use_cache=False).logits
    out = tiny_model(x[:, :6], attention_mask=mask[:, :6], use_cache=True)
    cache = getattr(out, CACHE_FIELD)
    for t in range(6, 9):
        out = tiny_model(x[:, t : t + 1], attention_mask=mask[:, : t + 1], use_cache=True, cache=cache)
        assert torch.allclose(out.logits[:, -1], full[:, t], atol=1e-5)
    with pytest.raises(ValueError, match="attention_mask covers 4 positions, but the cache holds 9 and the input 1"):
        tiny_model(x[:, :1], attention_mask=mask[:, :4], cache=cache)


def test_the_loss_is_next_token_cross_entropy_over_trained_positions(tiny_model):
    x = ids(2, 7)
    labels = x.clone()
    labels[0, :3] = -100  # e.g. a prompt that is not trained on
    logits = tiny_model(x).logits
    pairs = [(b, t) for b in range(2) for t in range(6) if labels[b, t + 1] != -100]
    by_hand = torch.stack([-logits[b, t].log_softmax(-1)[labels[b, t + 1]] for b, t in pairs])
    assert torch.allclose(tiny_model(x, labels=labels).loss, by_hand.mean(), atol=1e-5)
    # gradient accumulation: a sum over this micro-batch over the whole batch's token count
    summed = tiny_model(x, labels=labels, num_items_in_batch=torch.tensor(20)).loss
    assert torch.allclose(summed, by_hand.sum() / 20, atol=1e-5)


def test_hf_generate_with_cache_equals_argmax_without(tiny_model):
    from transformers import GenerationMixin

    x = ids(1, 6)
    seq = x
    for _ in range(8):
        nxt = tiny_model(seq, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
    # labgpt's generate (the engine takes this call) and GenerationMixin's (HF's loop and DynamicCache)
    for generate in (use_engine(tiny_model).generate, lambda *a, **k: GenerationMixin.generate(tiny_model, *a, **k)):
        generated = generate(x, attention_mask=torch.ones_like(x), max_new_tokens=8, do_sample=False, eos_token_id=None)
        assert torch.equal(generated, seq)


def test_eager_attention_matches_sdpa_and_returns_weights(tiny_config):
    torch.manual_seed(0)
    sdpa = LabGPTForCausalLM(tiny_config).eval()
    eager = LabGPTForCausalLM(tiny_config).eval()
    eager.load_state_dict(sdpa.state_dict())
    eager.set_attn_implementation("eager")
    x = ids(2, 11)
    mask = torch.ones_like(x)
    mask[0, :3] = 0
    out = eager(x, attention_mask=mask, output_attentions=True)
    assert torch.allclose(out.logits[1], sdpa(x, attention_mask=mask).logits[1], atol=1e-5)
    assert torch.allclose(out.logits[0, 3:], sdpa(x, attention_mask=mask).logits[0, 3:], atol=1e-5)
    weights = out.attentions[0]
    assert weights.shape == (2, 4, 11, 11)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 11), atol=1e-5)
    assert weights[1].triu(1).abs().max() == 0  # causal


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config):
    torch.manual_seed(0)
    model = LabGPTForCausalLM(tiny_config).train()
    x = ids(2, 12)
    model(x, labels=x, use_cache=False).loss.backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    model(x, labels=x, use_cache=False).loss.backward()
    for a, p in zip(plain, model.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6)


def test_sequence_classification_scores_the_last_real_token(tiny_config):
    torch.manual_seed(0)
    rm = LabGPTForSequenceClassification(LabGPTConfig(**{**tiny_config.to_dict(), "num_labels": 1})).eval()
    x = ids(1, 8)
    right_padded = torch.cat([x, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = (right_padded != 0).long()
    assert torch.allclose(rm(x).logits, rm(right_padded, attention_mask=mask).logits, atol=1e-5)


def test_lora_with_explicit_target_modules(tiny_model):
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(tiny_model, LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                      "gate_proj", "up_proj", "down_proj"]))
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    x = ids()
    lora(x, labels=x).loss.backward()
    assert all(p.grad is not None for n, p in lora.named_parameters() if p.requires_grad)


def test_the_lab_calls_no_deprecated_transformers_or_trl_api():
    """Forward, HF generate, the engine and one TRL GRPO step in a fresh interpreter: any deprecation
    notice raised by a call from the lab's own code fails here, so the next rename is seen in CI."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).with_name("deprecation_worker.py")
    proc = subprocess.run([sys.executable, str(worker)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["ours"] == []
    print("deprecations inside other libraries (not the lab's to fix):", *seen["upstream"], sep="\n  ")


def test_a_deprecation_is_blamed_on_the_code_that_called_the_package():
    from tests.deprecation_worker import REPO, culprit

    site = "/venv/lib/python3.11/site-packages"
    ours = [f"{REPO}/lab/train/rl_math.py", f"{site}/trl/trainer/grpo_config.py", "/usr/lib/python3.11/dataclasses.py",
            f"{site}/transformers/training_args.py"]
    assert culprit(ours[:1] + ours[3:]) == "lab"  # the lab called transformers itself
    assert culprit(ours) == "trl"  # TRL's config called transformers with its own default
    assert culprit([f"{REPO}/lab/model/labgpt.py", "<string>", f"{site}/transformers/utils/generic.py"]) == "lab"


def test_under_cpu_autocast_attention_runs_in_fp32_and_logits_stay_close(tiny_model):
    from lab.model.attention import sdpa_attention

    q, k, v = (torch.randn(2, heads, 5, 8, dtype=torch.bfloat16) for heads in (4, 2, 2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = sdpa_attention(q, k, v, None, 8**-0.5, 2)
        logits = tiny_model(ids(2, 7)).logits
    assert out.dtype == torch.float32  # bf16 flash-attention backward is ~2.5x slower on CPU
    reference, _ = sdpa_attention(q.float(), k.float(), v.float(), None, 8**-0.5, 2)
    assert torch.equal(out, reference)
    torch.testing.assert_close(logits.float(), tiny_model(ids(2, 7)).logits, atol=0.05, rtol=0.05)


def test_pretraining_precision_on_cpu_is_bf16_exactly_where_native():
    from lab.errors import LabError
    from lab.train.pretrain import autocast_dtype, cpu_has_native_bf16

    cpu = torch.device("cpu")
    assert autocast_dtype("float32", cpu) is None
    # the explicit rule: native bf16 matmuls -> bf16, else float32
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_native_bf16() else None)
    if cpu_has_native_bf16():
        assert autocast_dtype("bfloat16", cpu) == torch.bfloat16
    else:
        with pytest.raises(LabError, match="no native bf16"):
            autocast_dtype("bfloat16", cpu)
    with pytest.raises(LabError, match="unknown pretrain.dtype 'fp8'"):
        autocast_dtype("fp8", cpu)
