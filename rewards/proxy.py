"""The proxy reward model as a reward: load it, score (prompt, answer) pairs, hand TRL a reward function.

Its training (the rm stage, the data-scaling table) is lab/train/reward_model.py; the registry's "proxy"
reward (rewards/registry.py) is make_reward_fn on the rm stage's model.

In RLHF the policy is optimised against a learned reward, not against what people actually want; Gao
et al. (2022) measured what that costs by letting a programmatic "gold" reward play the people. Here
the gold judge is rewards/gold.py, the comparisons come from rewards/preferences.py, and lab/train/reward_model.py
trains the proxy (TRL's RewardTrainer, Bradley-Terry loss -log sigmoid(r_chosen - r_rejected)) and
says how good a stand-in it is: held-out pairwise accuracy, sign agreement with the gold judge, and
rank/linear correlation of proxy and gold scores on held-out answers, by a data-scaling table too.

The RM starts from the sft-idk weights (Ouyang et al. 2022 start theirs from the SFT model: it already
reads the chat format); the head sits on the last non-pad token. Every sequence is the conversation
rendered by lab/model/chat_format.render (the answer as plain text), for training and scoring alike, so the
RM scores exactly the ids it learned on. The RM must share the policy's tokenizer when it scores the
policy's text: a mismatch is refused (check_tokenizers_match).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

import lab.model.labgpt_rm  # noqa: F401  registers labgpt's reward head with the Auto classes
from lab.errors import LabError
from lab.model.chat_format import render, turn_footer
from lab.model.tokenizer import SPECIAL_TOKENS, encode_text, load_tokenizer
from rewards.completions import completion_text
from rewards.gold import decode_completion


def check_tokenizers_match(rm_tokenizer, policy_tokenizer) -> None:
    """The RM reads the policy's text through its own tokenizer; a different vocabulary reads other tokens."""
    checks = [("the vocabulary size", len(rm_tokenizer), len(policy_tokenizer))]
    checks += [(f"the id of {t}", rm_tokenizer.convert_tokens_to_ids(t), policy_tokenizer.convert_tokens_to_ids(t))
               for t in SPECIAL_TOKENS]
    mismatch = next((f"{what} is {a} for the reward model and {b} for the policy" for what, a, b in checks if a != b),
                    None)
    if mismatch is None and rm_tokenizer.get_vocab() != policy_tokenizer.get_vocab():
        mismatch = "the vocabularies differ"
    if mismatch:
        raise LabError(f"the reward model's tokenizer does not match the policy's: {mismatch}; "
                       "train the reward model from the policy's run")


def as_messages(prompt) -> list[dict]:
    """A prompt as chat messages: a message list, chat-rendered text (TRL text prompts), or a bare user message."""
    if isinstance(prompt, list):
        return [m for m in prompt if m.get("role") != "assistant" or m.get("content")]
    turns = re.findall(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>", prompt, flags=re.S)
    return [{"role": r, "content": c} for r, c in turns] if turns else [{"role": "user", "content": prompt}]


def encode(tokenizer, prompt, response: str) -> list[int]:
    """The conversation's ids as render() makes them, except that the response is read as plain text: a
    sampled answer can hold "<|tool_call|>" without its closing marker, which render() rightly refuses."""
    ids, _ = render(tokenizer, as_messages(prompt), add_generation_prompt=True)
    return ids + encode_text(tokenizer, response) + turn_footer(tokenizer)


def load_reward_model(path, device: str | None = None):
    """(model, tokenizer) of a trained RM stage, or a causal-LM stage to initialise one from (new head)."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise LabError(f"{path} holds no model (no config.json)")
    tokenizer = load_tokenizer(path)
    # from a causal LM the head is new: labgpt's reward head declares that, so loading says nothing of it
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id  # the head pools at the last non-pad token
    model.config.use_cache = False
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), tokenizer


def score(model, tokenizer, prompts: list, responses: list[str], batch_size: int = 64) -> list[float]:
    """Proxy reward of each (prompt, response), batched, right-padded (as RewardTrainer's collator pads)."""
    if len(prompts) != len(responses):
        raise LabError(f"score got {len(prompts)} prompts but {len(responses)} responses")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = [encode(tokenizer, p, r) for p, r in zip(prompts, responses)]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together: little padding
    out = [0.0] * len(ids)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(ids[i]) for i in rows)
        x = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(x)
        for r, i in enumerate(rows):
            x[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        with torch.no_grad():
            logits = model(input_ids=x.to(device), attention_mask=mask.to(device), use_cache=False).logits[:, 0]
        for r, i in enumerate(rows):
            out[i] = float(logits[r])
    model.train(was_training)
    return out


def make_reward_fn(model, tokenizer, batch_size: int = 64, policy_tokenizer=None, name: str = "proxy"):
    """A TRL reward function `fn(prompts, completions, **kw) -> list[float]` scoring with the RM.

    Takes text or conversational prompts/completions; `name` is what TRL logs it as (rewards/<name>)."""
    if policy_tokenizer is not None:
        check_tokenizers_match(tokenizer, policy_tokenizer)

    def reward(prompts, completions, completion_ids=None, **kwargs):
        # GRPO's completion text has special tokens stripped; its ids say what the policy really wrote
        texts = ([decode_completion(tokenizer, ids)[0] for ids in completion_ids] if completion_ids is not None
                 else [completion_text(c) for c in completions])
        return score(model, tokenizer, list(prompts), texts, batch_size)

    reward.__name__ = name
    return reward
