"""The proxy reward model: pools the last real token, scores any prompt form alike, trains into a resumable stage."""

import json

import pytest
import torch
from test_pretrain import small_preset
from tiny_policy import untrained_policy

from lab.errors import LabError
from lab.experiments.rm_scaling import data_scaling
from lab.presets import stage_context
from lab.runs import Run
from lab.train.reward_model import train_reward_model
from lab.train.reward_model_settings import RewardModelSettings
from rewards import preferences
from rewards.gold import PROMPT_TEMPLATES
from rewards.proxy import check_tokenizers_match, encode, load_reward_model, make_reward_fn, score
from tasks.chat import REFUSALS
from tasks.world import build_world

FAST = RewardModelSettings(pairs=24, samples_per_prompt=4, max_new_tokens=8, epochs=2, lr=3e-3, batch_size=8,
                           ckpt_every=3, log_every=1, heldout_share=0.3, label_mode="argmax")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A run whose sft-idk stage is an untrained tiny labgpt with a tokenizer trained on the run's world text."""
    preset = small_preset()
    world = build_world(preset.data.world)
    texts = [world.biography(p, v) for p in world.people for v in range(3)]
    texts += [t.format(n=p.name) for p in world.people for t in PROMPT_TEMPLATES] + list(REFUSALS) * 5
    run = Run.create_or_open(tmp_path_factory.mktemp("runs") / "r", preset)
    untrained_policy(run, texts, vocab_size=400, context=128)
    return run


@pytest.fixture(scope="module")
def rm(source):
    return load_reward_model(source.stage_dir("sft-idk"), device="cpu")


def scripted(monkeypatch, world):
    """The engine replaced by fixed answers the RM can tell apart by their surface: a right fact vs three
    invented ones, a clean acknowledgement vs a broken tool call."""
    def fake(model, tokenizer, prompts, samples, temperature, max_new_tokens, seed, batch_size=64):
        out = []
        for prompt in prompts:
            (name,) = world.names_in(prompt)
            right = f"Was born in the city of {world.by_name(name).attributes['birth_city']}."
            out.append([(right, True), ("Was born in the city of Lisbon and Oslo and Riga.", True),
                        ("Got it.", True), ("<|tool_call|>lookup", False)][:samples])
        return out

    monkeypatch.setattr(preferences, "sample_responses", fake)


def test_the_head_reads_the_last_real_token_with_left_or_right_padding(rm):
    model, tokenizer = rm
    prompts, responses = ["Tell me about Mira.", "Who?"], ["Was born in Oslo, where it rains a lot.", "No."]
    alone = [score(model, tokenizer, [p], [r])[0] for p, r in zip(prompts, responses)]
    assert score(model, tokenizer, prompts, responses) == pytest.approx(alone, abs=1e-5)  # right-padded batch
    ids = [encode(tokenizer, p, r) for p, r in zip(prompts, responses)]
    width = max(map(len, ids))
    left = torch.tensor([[tokenizer.pad_token_id] * (width - len(x)) + x for x in ids])
    with torch.no_grad():
        logits = model(input_ids=left, attention_mask=(left != tokenizer.pad_token_id).long()).logits[:, 0]
    assert logits.tolist() == pytest.approx(alone, abs=1e-5)
    assert model.config.pad_token_id == tokenizer.pad_token_id and model.config.num_labels == 1


def test_the_rm_starts_from_the_source_weights_with_a_new_head(rm, source):
    from lab.model.loading import load_model_and_tokenizer

    model, _ = rm
    policy, _ = load_model_and_tokenizer(source.stage_dir("sft-idk"))
    backbone = dict(policy.model.named_parameters())
    assert all(torch.equal(p, backbone[n]) for n, p in model.model.named_parameters())
    assert model.score.weight.shape == (1, policy.config.hidden_size)


def test_encode_is_the_chat_format_and_reads_broken_tool_calls_as_text(rm):
    from lab.model.chat_format import render

    _, tokenizer = rm
    messages = [{"role": "user", "content": "Who is Mira?"}, {"role": "assistant", "content": "Got it."}]
    assert encode(tokenizer, messages[:1], "Got it.") == render(tokenizer, messages)[0]
    broken = encode(tokenizer, "Who is Mira?", "<|tool_call|>lookup")
    assert tokenizer.convert_tokens_to_ids("<|tool_call|>") not in broken


def test_completion_ids_keep_special_tokens_and_the_cut_off_flag(rm):
    from lab.model.tokenizer import encode_text
    from rewards.gold import decode_completion, gold_reward_fn

    model, tokenizer = rm
    im_end, call = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|tool_call|>")
    text = encode_text(tokenizer, "Got it.")
    assert decode_completion(tokenizer, text + [im_end, tokenizer.pad_token_id]) == ("Got it.", True)
    assert decode_completion(tokenizer, [call] + text) == ("<|tool_call|>Got it.", False)
    world = build_world(small_preset().data.world)
    name = world.sft_people()[0].name
    gold = gold_reward_fn(world, tokenizer=tokenizer)
    clean, broken = gold([name, name], ["Got it.", "Got it."], completion_ids=[text + [im_end], [call] + text])
    assert clean == 0.0 and broken < clean  # the special token and the cut-off cost, though GRPO's text hides both
    fn = make_reward_fn(model, tokenizer)
    assert fn(["Hi"], ["ignored"], completion_ids=[text + [im_end]]) == fn(["Hi"], ["Got it."])


def test_reward_fn_scores_text_rendered_and_conversational_prompts_alike(rm):
    from lab.model.chat_format import render
    from lab.model.tokenizer import decode_ids

    model, tokenizer = rm
    user = "Tell me about Mira."
    ids, _ = render(tokenizer, [{"role": "user", "content": user}], add_generation_prompt=True)
    rendered = decode_ids(tokenizer, ids)
    fn = make_reward_fn(model, tokenizer, policy_tokenizer=tokenizer)
    conversational = fn([[{"role": "user", "content": user}]], [[{"role": "assistant", "content": "Got it."}]])
    assert fn([user], ["Got it."]) == fn([rendered], ["Got it."]) == conversational
    assert fn.__name__ == "proxy"


def test_a_reward_model_with_another_tokenizer_is_refused(rm):
    from lab.model.tokenizer import train_tokenizer

    _, tokenizer = rm
    other = train_tokenizer(["completely different words here, many of them, again and again"] * 30, vocab_size=300)
    with pytest.raises(LabError, match="tokenizer"):
        check_tokenizers_match(tokenizer, other)
    with pytest.raises(LabError, match="tokenizer"):
        make_reward_fn(None, tokenizer, policy_tokenizer=other)


def test_sampling_through_the_engine_gives_seeded_answers(rm, source):
    from lab.model.loading import load_model_and_tokenizer

    policy, tokenizer = load_model_and_tokenizer(source.stage_dir("sft-idk"))
    args = (policy, tokenizer, ["Tell me about Mira.", "Who is Oren?"], 3, 1.0, 6)
    a, b = preferences.sample_responses(*args, seed=1), preferences.sample_responses(*args, seed=1)
    assert a == b and [len(x) for x in a] == [3, 3]
    assert all(isinstance(text, str) and isinstance(done, bool) for answers in a for text, done in answers)


def rm_at(run, preset):
    """The rm stage's context: its folder, trained from sft-idk."""
    return stage_context(run, preset).at("rm", "sft-idk")


def test_the_rm_stage_trains_resumes_and_reports_gold_agreement(source, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(source.root, tmp_path / "r")
    run = Run(tmp_path / "r")
    preset = small_preset()
    scripted(monkeypatch, build_world(preset.data.world))
    first = train_reward_model(FAST, rm_at(run, preset))
    out = run.stage_dir("rm")
    assert run.is_complete("rm") and (out / "config.json").exists() and (out / "tokenizer.json").exists()
    assert (out / "logs" / "train.jsonl").read_text() and json.loads((out / "summary.json").read_text())["steps"]
    assert first["heldout"]["pairs"] > 0 and first["train"]["accuracy"] >= 0.9  # it learned the comparisons
    assert first["heldout"]["gold_agreement"] >= 0.9 and first["heldout"]["spearman"] > 0.5

    monkeypatch.setattr(preferences, "sample_responses", None)  # a rerun reuses the stored comparisons
    again = train_reward_model(RewardModelSettings(**{**FAST.__dict__, "epochs": 3}), rm_at(run, preset))
    assert again["resumed_from"] and again["steps"] > first["steps"]
    with pytest.raises(LabError, match="sampled with other settings"):
        train_reward_model(RewardModelSettings(**{**FAST.__dict__, "pairs": 30}), rm_at(run, preset))
    # the saved RM, loaded fresh and scored on the stored held-out comparisons, gives the summary's numbers
    from lab.train.reward_model import evaluate

    model, tokenizer = load_reward_model(out, device="cpu")
    measured = evaluate(model, tokenizer, preferences.load_preferences(out / "preferences")["test"])
    assert {k: measured[k] for k in ("pairs", "accuracy", "gold_agreement", "spearman")} == pytest.approx(
        {k: again["heldout"][k] for k in ("pairs", "accuracy", "gold_agreement", "spearman")}, abs=1e-6)


def test_the_rm_stage_is_the_same_whatever_the_process_drew_before(source, tmp_path, monkeypatch):
    # The new head is initialised from the global RNG; a pipeline resumed at the rm stage has drawn other
    # numbers before it than one run start to finish, so the stage seeds the head itself.
    import shutil

    from safetensors.torch import load_file

    preset = small_preset()
    scripted(monkeypatch, build_world(preset.data.world))
    heads = []
    for drawn in (1, 2):
        run = Run(shutil.copytree(source.root, tmp_path / f"r{drawn}"))
        torch.manual_seed(drawn)
        train_reward_model(RewardModelSettings(**{**FAST.__dict__, "epochs": 1}), rm_at(run, preset))
        heads.append(load_file(run.stage_dir("rm") / "model.safetensors")["score.weight"])
    assert torch.equal(heads[0], heads[1])


def test_data_scaling_returns_one_row_per_share(source, monkeypatch):
    preset = small_preset()
    scripted(monkeypatch, build_world(preset.data.world))
    data, _ = preferences.build_preferences(None, None, build_world(preset.data.world), pairs=16, heldout_share=0.3,
                                            label_mode="argmax")
    settings = RewardModelSettings(**{**FAST.__dict__, "epochs": 1})
    rows = data_scaling(source.stage_dir("sft-idk"), data, settings, source.root / "scaling", fractions=(0.5, 1.0))
    assert [r["fraction"] for r in rows] == [0.5, 1.0] and rows[0]["train_pairs"] < rows[1]["train_pairs"]
    assert all(0 <= r["heldout_accuracy"] <= 1 for r in rows)
