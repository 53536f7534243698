"""Log-likelihood scoring agrees with a plain forward pass, whatever the batching and padding."""

import math

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from evals.loglik import choose, continuation_logprobs, perplexity


def _model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval()


def test_batched_logprobs_equal_one_unpadded_forward_each():
    model = _model()
    prompts, continuations = [[1, 5, 6, 7], [1, 9]], [[8, 9], [10, 11, 12, 13]]
    batched = continuation_logprobs(model, prompts, continuations)
    for p, c, got in zip(prompts, continuations, batched):
        with torch.no_grad():
            logits = model(torch.tensor([p + c])).logits[0].log_softmax(-1)
        want = [logits[len(p) - 1 + j, t].item() for j, t in enumerate(c)]
        assert len(got) == len(c) and max(abs(a - b) for a, b in zip(got, want)) < 1e-4


def test_choose_returns_the_most_probable_option_and_perplexity_is_exp_of_mean_nll():
    model = _model()
    prompt, options = [1, 5], [[7], [8, 9], [10]]
    best, scores = choose(model, prompt, options)
    with torch.no_grad():  # each option's total log-probability from its own unpadded forward pass
        want = []
        for option in options:
            logits = model(torch.tensor([prompt + option])).logits[0].log_softmax(-1)
            want.append(sum(logits[len(prompt) - 1 + j, t].item() for j, t in enumerate(option)))
    assert max(abs(a - b) for a, b in zip(scores, want)) < 1e-4
    assert best == max(range(3), key=want.__getitem__) and all(s < 0 for s in scores)
    texts = [[1, 4, 5, 6], [1, 7, 8]]
    lps = continuation_logprobs(model, [[1], [1]], [[4, 5, 6], [7, 8]])
    assert perplexity(model, texts) == math.exp(-sum(map(sum, lps)) / 5)
    assert 1 < perplexity(model, texts) < 200  # a random model over 50 tokens: near uniform
