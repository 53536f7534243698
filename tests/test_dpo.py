"""DPO (lab/train/dpo.py) learns its comparisons: after training, the policy prefers each chosen answer over its
rejected one by more than the reference does, measured with our own log-likelihoods, not TRL's logged rewards."""

import pytest
from test_pretrain import small_preset
from test_reward_model import source  # noqa: F401  (fixture rm_run builds on)
from test_rl import at, copy_run
from test_rlhf import rm_run  # noqa: F401  (fixture: a tiny run with sft-idk and rm stages)

from evals.loglik import continuation_logprobs
from lab.model.chat_format import render
from lab.model.labgpt import LabGPTForCausalLM
from lab.model.tokenizer import load_tokenizer
from lab.train.dpo import dpo
from lab.train.rl_settings import DPOSettings
from rewards.preferences import load_preferences


def preference_margins(model_dir, pairs, tokenizer) -> list[float]:
    """log p(chosen) − log p(rejected) of each pair's answers (ending the turn), under the model in model_dir."""
    model = LabGPTForCausalLM.from_pretrained(model_dir).eval()
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    prompts = [render(tokenizer, row["prompt"], add_generation_prompt=True)[0] for row in pairs]

    def answers(key):
        # tokenized as DPO's trainer sees them: the answer text, then the eos that ends the turn
        return [tokenizer(row[key][-1]["content"], add_special_tokens=False)["input_ids"] + [end] for row in pairs]

    chosen = continuation_logprobs(model, prompts, answers("chosen"), tokenizer.pad_token_id)
    rejected = continuation_logprobs(model, prompts, answers("rejected"), tokenizer.pad_token_id)
    return [sum(c) - sum(r) for c, r in zip(chosen, rejected)]


@pytest.mark.parametrize("swap", [False, True])
def test_dpo_moves_the_policy_towards_the_chosen_answers(rm_run, tmp_path, swap):  # noqa: F811
    """With the labels swapped, the same training must move the margins the other way."""
    run = copy_run(rm_run, tmp_path)
    path = run.stage_dir("rm") / "preferences"
    pairs = load_preferences(path)
    if swap:  # a broken label or loss sign: chosen and rejected trade places
        pairs = pairs.rename_columns({"chosen": "rejected", "rejected": "chosen"})
        pairs.save_to_disk(str(tmp_path / "swapped"))
        import shutil

        shutil.rmtree(path)
        shutil.copytree(tmp_path / "swapped", path)
        run.refresh_manifest("rm")  # the swap is the stage's output now, not damage
    dpo(DPOSettings(epochs=4, lr=1e-3, batch_size=8, log_every=1, ckpt_every=0), at(run, "dpo", preset=small_preset()))
    tokenizer = load_tokenizer(run.stage_dir("sft-idk"))
    train = list(load_preferences(path)["train"])
    before = preference_margins(run.stage_dir("sft-idk"), train, tokenizer)
    after = preference_margins(run.stage_dir("dpo"), train, tokenizer)
    gained = sum(a - b for a, b in zip(after, before)) / len(train)
    assert gained > 0.5, gained  # nats of margin per pair, measured on the (possibly swapped) labels it trained on
