"""The gpu preset, ready without a GPU: every stage of the pipeline at the preset's real model shape.

d=768, 12 layers, 12 query / 4 key-value heads, a 32,768-token vocabulary and a 1,024-token context:
100.7M parameters, the shape the gpu preset asks for (its own corpus fills 26k of the 32k tokens, see
lab/presets.py), trained and evaluated on CPU with
steps, batches, sequence lengths, eval sizes and data cut to the minimum by the settings below (`--set`
overrides of the gpu preset; the model's shape is never touched). What a GPU run would trip over first at
this size (a 32k-token embedding and tied head, a 400 MB model saved and loaded by every stage, a reference,
value and reward model held beside the policy) is caught here, in `make test`, in about a minute and a half
on one core.

Two stand-ins, both for time, neither for the shape:
- the tokenizer stage trains no 32k BPE (a 32k vocabulary needs a corpus far bigger than this test's): its
  BPE is the committed tests/fixtures/tokenizer-32k, which the same stage made on a bigger world corpus
  (tests/fixtures/make_tokenizer_32k.py); the stage itself runs and saves it.
- one training step leaves the model babbling, and the gold judge scores babble alike (no fact, unfinished),
  so the rm stage could find no comparison to learn from: its real samples (drawn by the engine at this
  shape) get two scripted answers beside them per prompt, a right fact and a wrong one.

Weights only: a checkpoint with AdamW state is 1.2 GB at this shape, so every stage runs with ckpt_every=0
(its finished weights, no resume checkpoints). The run's weights are deleted at the end, so pytest's kept
temporary folders stay small.

Run alone: .venv/bin/python -m pytest tests/test_gpu_preset.py --durations=0
"""

import json
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "tokenizer-32k"
GPU_SHAPE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 4,
             "vocab_size": 32768, "max_position_embeddings": 1024}

# Everything but the model's shape, cut to the least each stage accepts.
CUT = [
    # data: 4 people (one sft and one held-out person at k = 0 and at k = 16), a few documents
    "data.world.people_per_exposure=2", "data.world.exposures=0,16", "data.corpus.narratives=4",
    "data.corpus.heldout_docs=2", "data.corpus.extra_sources=math:2,spelling:2",
    # base: one step of one 16-token window, one held-out batch, a 2-token sample
    "pretrain.seq_len=16", "pretrain.batch_size=1", "pretrain.grad_accum=1", "pretrain.max_steps=1",
    "pretrain.warmup_steps=1", "pretrain.eval_every=1", "pretrain.eval_batches=1", "pretrain.log_every=1",
    "pretrain.ckpt_every=0", "pretrain.reading_probes=false", "sample.prompts=Mira", "sample.max_new_tokens=2",
    # knowledge: one item per reading probe
    "reading.induction_length=4", "reading.induction_rows=1", "reading.copy_lengths=3", "reading.copy_kinds=digits",
    "reading.copy_per_cell=1", "reading.open_book_people=1", "reading.layout_per_cell=1", "reading.two_people_pairs=1",
    "reading.induction_lengths=4",
    # sft, sft-idk: one step on two Q&A conversations; the probe samples each question once
    "sft.epochs=1", "sft.batch_size=2", "sft.mixture.qa=2", "sft.mixture.math=0", "sft.mixture.spelling=0",
    "sft.mixture.tool_use=0", "sft.mixture.identity=0", "sft.mixture.context=0", "sft.probe_samples=1",
    "sft.ckpt_every=0",
    # sft-math: one step of one problem and one replayed conversation
    "math_sft.problems=1", "math_sft.replay=1", "math_sft.batch_size=2", "math_sft.ckpt_every=0",
    # rl-math: one step of one prompt x 2 samples of 2 tokens, one held-out problem graded greedily
    "rl.steps=1", "rl.num_generations=2", "rl.batch_size=2", "rl.max_completion_length=2", "rl.train_problems=2",
    "rl.eval_problems=1", "rl.eval_samples=0", "rl.ckpt_every=0",
    # rm: comparisons from both sft people (share 0.5 puts one in each split; a prompt gives at most 6), one epoch
    "rm.pairs=8", "rm.samples_per_prompt=2", "rm.max_new_tokens=2", "rm.heldout_share=0.5", "rm.epochs=1",
    "rm.batch_size=2", "rm.ckpt_every=0",
    "dpo.epochs=1", "dpo.batch_size=2", "dpo.ckpt_every=0",
    # rlhf-grpo, rlhf-rloo, rlhf-ppo: one step of 2 answers of 2 tokens, no snapshots
    "rlhf.steps=1", "rlhf.num_generations=2", "rlhf.batch_size=2", "rlhf.max_completion_length=2",
    "rlhf.snapshot_every=0", "rlhf.ckpt_every=0",
    "ppo.steps=1", "ppo.batch_size=2", "ppo.minibatch_size=2", "ppo.ppo_epochs=1", "ppo.max_completion_length=2",
    "ppo.snapshot_every=0", "ppo.ckpt_every=0",
    "rlhf_methods.prompts=2", "rlhf_methods.max_new_tokens=2", "rlhf_methods.batch_size=2",
    # experiments/rm-gamed: the least RM, one GRPO step, both ends judged
    "rm_gamed.pairs=8", "rm_gamed.seeds=0", "rm_gamed.steps=1", "rm_gamed.snapshot_every=1",
    # experiments/guessing: one step a reward of one question x 2 answers of 2 tokens, one question of each kind
    "guessing.steps=1", "guessing.num_generations=2", "guessing.batch_size=2", "guessing.max_completion_length=2",
    "guessing.unseen_questions=1", "guessing.known_questions=1", "guessing.ckpt_every=0",
    # experiments/demonstrator: one SFT step on two traces, one RL step (rl.* above), two problems graded a split
    "demonstrator.problems=2", "demonstrator.replay=0", "demonstrator.batch_size=2", "demonstrator.rl_steps=1",
    "demonstrator.rl_problems=4", "demonstrator.rl_check_problems=1", "demonstrator.eval_problems=2",
    "demonstrator.eval_max_new_tokens=2", "demonstrator.ckpt_every=0",
    # experiments/scaling: two small sizes (the sweep's own shapes), one step each
    "scaling.sizes=32x1,64x1", "scaling.warmup_steps=0", "scaling.steps=1",
    # experiments/wording: its twin trains as sft-idk above; one question asked of each, in every wording
    "wording.limit=1",
    # experiments/chat: one scripted question a check, 2-token answers
    "chat_transcript.per_check=1", "chat_transcript.max_new_tokens=2",
    # export: one checked prompt of 2 tokens (the 100M model is exported whole)
    "export.check_prompts=1", "export.max_new_tokens=2",
    # evals: one sample of every suite, 2-token answers
    "evals.limit=1", "evals.max_new_tokens=2",
]
# Files that hold optimizer state: HF Trainer checkpoints, pretraining's and PPO's resume checkpoints.
OPTIMIZER_STATE = ("optimizer.pt", "trainer_state.pt", "checkpoint.pt")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gpu-preset")]  # one worker; the other runs the rest


def use_fixture_bpe(monkeypatch):
    """The tokenizer stage, with the committed 32k BPE in place of training one on this test's tiny corpus."""
    import lab.model.tokenizer as tokenizer_module

    def fixture_bpe(texts, vocab_size, min_frequency=2, model_max_length=2048):
        tokenizer = tokenizer_module.load_tokenizer(FIXTURE)
        assert len(tokenizer) == vocab_size and tokenizer.model_max_length == model_max_length
        return tokenizer

    monkeypatch.setattr(tokenizer_module, "train_tokenizer", fixture_bpe)


def with_scripted_pairs(monkeypatch, world):
    """The rm stage's samples, each prompt's real answers joined by a right and a wrong fact (see the docstring)."""
    from rewards import preferences

    real = preferences.sample_responses

    def sample_responses(model, tokenizer, prompts, samples, *args, **kwargs):
        out = real(model, tokenizer, prompts, samples, *args, **kwargs)
        for prompt, answers in zip(prompts, out):
            (name,) = world.names_in(prompt)
            city = world.by_name(name).attributes["birth_city"]
            wrong = next(c for c in ("Lisbon", "Oslo", "Riga") if c != city)
            answers += [(f"Was born in the city of {city}.", True), (f"Was born in the city of {wrong}.", True)]
        return out

    monkeypatch.setattr(preferences, "sample_responses", sample_responses)


def parameters_in(stage_dir: Path) -> int:
    """Parameters stored in a stage's safetensors files, read from their headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for f in stage_dir.glob("*.safetensors"):
        with safe_open(f, "pt") as weights:
            for name in weights.keys():
                n = 1
                for d in weights.get_slice(name).get_shape():
                    n *= d
                total += n
    return total


@pytest.fixture
def gpu_run(tmp_path, monkeypatch):
    from lab.pipeline import run_pipeline
    from lab.presets import get_preset
    from tasks.world import build_world

    preset = get_preset("gpu", CUT)
    use_fixture_bpe(monkeypatch)
    with_scripted_pairs(monkeypatch, build_world(preset.data.world))
    try:
        yield run_pipeline(preset, tmp_path, "gpu")
    finally:  # ~13 copies of a 400 MB model: keep the logs and summaries, never the weights
        for f in [*tmp_path.rglob("*.safetensors"), *tmp_path.rglob("*.pt")]:
            f.unlink()


def test_every_stage_of_the_gpu_preset_runs_at_its_real_shape(gpu_run):
    from lab.model.labgpt import LabGPTConfig
    from lab.pipeline import STAGE_NAMES

    run = gpu_run
    assert [s for s in STAGE_NAMES if not run.is_complete(s)] == []
    config = LabGPTConfig.from_pretrained(run.stage_dir("base"))
    assert {k: getattr(config, k) for k in GPU_SHAPE} == GPU_SHAPE
    assert config.intermediate_size == 2048 and config.tie_word_embeddings  # SwiGLU 8/3 x d, one embedding
    parameters = json.loads((run.stage_dir("base") / "summary.json").read_text())["parameters"]
    assert round(parameters / 1e6, 1) == 100.7  # the gpu preset's comment (lab/presets.py)
    for stage in ("base", "sft", "sft-idk", "sft-math", "rl-math", "dpo", "rlhf-grpo", "rlhf-ppo", "rlhf-rloo"):
        assert parameters_in(run.stage_dir(stage)) == parameters, stage  # every policy is the whole model
    # the reward model: the same backbone with a scalar head in place of the (tied) language-model head
    assert parameters_in(run.stage_dir("rm")) == parameters + GPU_SHAPE["hidden_size"]
    # weights only: no stage kept optimizer state
    assert [str(p.relative_to(run.root)) for p in run.root.rglob("*") if p.name in OPTIMIZER_STATE] == []
    assert not list(run.root.rglob("checkpoint-*"))  # no HF Trainer checkpoint folder either
    # every policy was evaluated, and the report was written from the run
    evals = json.loads((run.stage_dir("evals") / "summary.json").read_text())
    assert {key.split("/")[0] for key in evals} == {"base", "sft", "sft-idk", "sft-math", "rl-math", "dpo", "rlhf-grpo",
                                                    "rlhf-ppo"}  # base: the identity control
    assert (run.stage_dir("report") / "report.md").stat().st_size > 0
    rm = json.loads((run.stage_dir("rm") / "summary.json").read_text())
    assert rm["train_pairs"] > 0 and rm["heldout"]["pairs"] > 0


def test_the_fixture_is_a_32k_lab_tokenizer():
    from lab.model.tokenizer import SPECIAL_TOKENS, load_tokenizer

    tokenizer = load_tokenizer(FIXTURE)
    assert len(tokenizer) == GPU_SHAPE["vocab_size"] and tokenizer.model_max_length == 1024
    assert tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS) == list(range(len(SPECIAL_TOKENS)))
    assert sum(f.stat().st_size for f in FIXTURE.iterdir()) < 2_000_000  # small enough to commit
