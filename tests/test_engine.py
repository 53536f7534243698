"""The generation engine: greedy equals step-by-step argmax, padding changes nothing, sampling is seeded."""

import pytest
import torch
from transformers import GenerationConfig, GenerationMixin, LogitsProcessorList, set_seed

import lab.model.hf_generate as hf_generate
from lab.model.decode_step import DecodeStep
from lab.model.engine import KVCache, SamplingParams, _kv_shape, generate, sample_next, sampling_logprobs
from lab.model.export import to_llama
from lab.model.hf_generate import use_engine

PROMPTS = [[1, 5, 6, 7, 8, 9], [1, 20, 21], [1, 33, 34, 35, 36, 37, 38, 39, 40]]


def argmax_reference(model, prompt, n):
    seq, out = torch.tensor([prompt]), []
    for _ in range(n):
        nxt = model(seq, use_cache=False).logits[0, -1].argmax().item()
        out.append(nxt)
        seq = torch.cat([seq, torch.tensor([[nxt]])], 1)
    return out


def test_greedy_equals_stepwise_argmax_without_cache(tiny_model):
    outs = generate(tiny_model, PROMPTS, SamplingParams(max_new_tokens=10))
    for prompt, out in zip(PROMPTS, outs):
        assert out == argmax_reference(tiny_model, prompt, 10)


def test_a_padded_batch_equals_each_sequence_alone(tiny_model):
    batched = generate(tiny_model, PROMPTS, SamplingParams(max_new_tokens=10))
    alone = [generate(tiny_model, [p], SamplingParams(max_new_tokens=10))[0] for p in PROMPTS]
    assert batched == alone


def test_rows_stop_independently_at_their_stop_token(tiny_model):
    full = generate(tiny_model, PROMPTS, SamplingParams(max_new_tokens=10))
    stop = full[0][3]  # row 0 stops at its first occurrence of this token, at the 4th token at the latest
    outs = generate(tiny_model, PROMPTS, SamplingParams(max_new_tokens=10, stop_token_ids=(stop,)))
    for ref, out in zip(full, outs):
        expected = ref[: ref.index(stop) + 1] if stop in ref else ref
        assert out == expected
    assert len(outs[0]) <= 4


def test_sampling_is_reproducible_with_a_seed_and_varies_without(tiny_model):
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=123)
    assert generate(tiny_model, PROMPTS, params) == generate(tiny_model, PROMPTS, params)
    other = generate(tiny_model, PROMPTS, SamplingParams(max_new_tokens=12, temperature=1.0, seed=7))
    assert other != generate(tiny_model, PROMPTS, params)


def test_top_k_one_is_greedy(tiny_model):
    greedy = generate(tiny_model, PROMPTS, SamplingParams(max_new_tokens=8))
    assert generate(tiny_model, PROMPTS, SamplingParams(max_new_tokens=8, temperature=1.0, top_k=1, seed=0)) == greedy


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    draws = {sample_next(logits, SamplingParams(temperature=1.0, top_p=0.7), gen).item() for _ in range(300)}
    assert draws == {0, 1}


def test_engine_runs_transformers_llama_too(tiny_model):
    llama = to_llama(tiny_model)
    assert generate(llama, PROMPTS, SamplingParams(max_new_tokens=6)) == generate(
        tiny_model, PROMPTS, SamplingParams(max_new_tokens=6))


def test_engine_runs_a_plain_transformers_llama_as_hf_generate_does():
    """A model built by transformers alone (its mask helpers ask the cache for its query offset and mask sizes):
    greedy answers equal to HF generate's on a left-padded batch. to_llama's copy of labgpt above did not reach
    those helpers; a plain Llama did, and failed, until KVCache answered them."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                         pad_token_id=0)).eval()
    prompts = [[1, 5, 6, 9], [1, 7, 8], [1, 7, 8, 3]]
    ours = generate(llama, prompts, SamplingParams(max_new_tokens=5))
    ids = torch.tensor([[1, 5, 6, 9], [0, 1, 7, 8], [1, 7, 8, 3]])
    hf = GenerationMixin.generate(llama, input_ids=ids, attention_mask=(ids != 0).long(), max_new_tokens=5,
                                  do_sample=False, pad_token_id=0)
    assert ours == hf[:, 4:].tolist()


def test_prompt_longer_than_the_context_is_refused(tiny_model):
    with pytest.raises(ValueError, match="exceeds the context"):
        generate(tiny_model, [[1] * 60], SamplingParams(max_new_tokens=10))


# --- labgpt's decode step: the model's maths in fewer ops ---

def test_the_decode_step_gives_the_models_logits_with_and_without_padding(tiny_model):
    assert DecodeStep.supports(tiny_model)
    for prompts in (PROMPTS, [p[:3] for p in PROMPTS]):  # padded rows, then equal lengths (no mask)
        width = max(map(len, prompts))
        ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        nxt = torch.tensor([11, 12, 13])
        full_mask = torch.cat([mask, torch.ones(3, 1, dtype=mask.dtype)], 1)
        expected = tiny_model(torch.cat([ids, nxt[:, None]], 1), attention_mask=full_mask, use_cache=False).logits[:, -1]
        cache = KVCache(*_kv_shape(tiny_model.config)[:1], 3, *_kv_shape(tiny_model.config)[1:], width + 1,
                        torch.float32, "cpu")
        tiny_model(ids, attention_mask=mask, past_key_values=cache, use_cache=True)
        cache.advance(width)
        key_mask = full_mask.bool()[:, None, None, :] if not mask.all() else None
        got = DecodeStep(tiny_model)(nxt, full_mask.sum(-1) - 1, cache, key_mask)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_peft_adapter_keeps_the_model_forward(tiny_model):
    from peft import LoraConfig, get_peft_model  # lazy: only this test needs peft

    lora = get_peft_model(tiny_model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert not DecodeStep.supports(lora.base_model.model)
    assert not DecodeStep.supports(lora)  # the wrapper itself: its forward, as with isinstance


# --- HF generate's call on the engine (what TRL's rollouts make) ---

def _left_padded(prompts):
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    return ids, (torch.arange(width) >= width - torch.tensor([len(p) for p in prompts])[:, None]).long()


def _hf(model, ids, mask, config):
    return GenerationMixin.generate(model, input_ids=ids, attention_mask=mask, generation_config=config)


def test_greedy_generate_with_eos_equals_hf_generate_padding_included(tiny_model, monkeypatch):
    ids, mask = _left_padded(PROMPTS)
    free = generate(tiny_model, PROMPTS, SamplingParams(max_new_tokens=12))
    config = GenerationConfig(max_new_tokens=12, do_sample=False, eos_token_id=[free[0][2], free[1][5]], pad_token_id=0)
    calls = []
    monkeypatch.setattr(hf_generate, "generate", lambda *a, **k: calls.append(1) or generate(*a, **k))
    ours = use_engine(tiny_model).generate(input_ids=ids, attention_mask=mask, generation_config=config)
    assert calls and ours.tolist() == _hf(tiny_model, ids, mask, config).tolist()
    assert ours.shape[1] > ids.shape[1] + 3 and (ours[0, ids.shape[1] + 3 :] == 0).all()  # row 0 ended, then padding


@pytest.mark.parametrize("sampling", [dict(temperature=0.7, top_k=0, top_p=1.0),  # TRL's defaults, rl-math's temperature
                                      dict(temperature=1.0, top_k=20, top_p=0.9), dict(temperature=1.3, min_p=0.05)])
def test_sampling_draws_hf_generates_tokens_from_the_same_seed(tiny_model, sampling):
    # no eos anywhere (the model's generation config has one): once a row finishes, the engine drops it and
    # HF keeps drawing for it, so the two consume the RNG differently from there on
    tiny_model.generation_config.eos_token_id = None
    ids, mask = _left_padded(PROMPTS)
    config = GenerationConfig(max_new_tokens=16, do_sample=True, pad_token_id=0, **sampling)
    set_seed(5)
    ours = use_engine(tiny_model).generate(input_ids=ids, attention_mask=mask, generation_config=config)
    set_seed(5)
    assert ours.tolist() == _hf(tiny_model, ids, mask, config).tolist()


def test_the_sampled_tokens_log_probs_are_hf_generates(tiny_model):
    """HF's processed scores (output_scores goes to HF generate) against the engine's sampling_logprobs."""
    tiny_model.generation_config.eos_token_id = None
    ids, mask = _left_padded(PROMPTS)
    params = SamplingParams(max_new_tokens=8, temperature=0.8, top_k=30, top_p=0.95)
    config = GenerationConfig(max_new_tokens=8, do_sample=True, temperature=0.8, top_k=30, top_p=0.95,
                              pad_token_id=0, eos_token_id=None, output_scores=True, return_dict_in_generate=True)
    set_seed(0)
    out = tiny_model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    seq = out.sequences
    full_mask = torch.cat([mask, torch.ones(3, 8, dtype=mask.dtype)], 1)
    logits = tiny_model(seq, attention_mask=full_mask, use_cache=False).logits[:, ids.shape[1] - 1 : -1]
    for t, hf_scores in enumerate(out.scores):
        token = seq[:, ids.shape[1] + t]
        ours = sampling_logprobs(logits[:, t], params).gather(-1, token[:, None])
        torch.testing.assert_close(ours, hf_scores.log_softmax(-1).gather(-1, token[:, None]), rtol=1e-4, atol=1e-4)
        assert torch.equal(torch.isinf(sampling_logprobs(logits[:, t], params)), torch.isinf(hf_scores))


@pytest.mark.parametrize("extra", [dict(repetition_penalty=1.3), dict(num_beams=2), dict(no_repeat_ngram_size=2),
                                   dict(output_scores=True, return_dict_in_generate=True)])
def test_an_option_the_engine_lacks_goes_to_hf_generate(tiny_model, monkeypatch, extra):
    ids, mask = _left_padded(PROMPTS)
    config = GenerationConfig(max_new_tokens=6, do_sample=False, pad_token_id=0, **extra)
    assert hf_generate.hf_call_params(tiny_model, ids, mask, config) is None
    monkeypatch.setattr(hf_generate, "generate", lambda *a, **k: pytest.fail("the engine ran an option it lacks"))
    ours = use_engine(tiny_model).generate(input_ids=ids, attention_mask=mask, generation_config=config)
    hf = _hf(tiny_model, ids, mask, config)
    assert torch.equal(ours if torch.is_tensor(ours) else ours.sequences, hf if torch.is_tensor(hf) else hf.sequences)


def test_without_use_engine_labgpts_generate_is_hf_generate(tiny_model, monkeypatch):
    ids, mask = _left_padded(PROMPTS)
    config = GenerationConfig(max_new_tokens=6, do_sample=False, pad_token_id=0)
    monkeypatch.setattr(hf_generate, "generate", lambda *a, **k: pytest.fail("the engine ran without use_engine"))
    assert tiny_model.engine_generate is None
    ours = tiny_model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    assert torch.equal(ours, _hf(tiny_model, ids, mask, config))


def test_other_arguments_and_right_padding_go_to_hf_generate(tiny_model):
    ids, mask = _left_padded(PROMPTS)
    config = GenerationConfig(max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert hf_generate.hf_call_params(tiny_model, ids, mask, config) is not None
    assert hf_generate.hf_call_params(tiny_model, ids, mask, config, logits_processor=LogitsProcessorList()) is None
    assert hf_generate.hf_call_params(tiny_model, ids, mask.flip(-1), config) is None  # right padding
    assert hf_generate.hf_call_params(tiny_model, ids, None, config) is None
