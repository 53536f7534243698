"""The generation engine: greedy equals step-by-step argmax, padding changes nothing, sampling is seeded."""

import pytest
import torch

from lab.model.engine import SamplingParams, generate, sample_next

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
    from lab.model.export import to_llama

    llama = to_llama(tiny_model)
    assert generate(llama, PROMPTS, SamplingParams(max_new_tokens=6)) == generate(
        tiny_model, PROMPTS, SamplingParams(max_new_tokens=6))


def test_prompt_longer_than_the_context_is_refused(tiny_model):
    with pytest.raises(ValueError, match="exceeds the context"):
        generate(tiny_model, [[1] * 60], SamplingParams(max_new_tokens=10))
