"""`lab chat` (lab/chat_session.py): a real model answers through the CLI, and a tool call the model writes runs
in the sandbox, shows inline, and its result is what the model reads before it answers."""

import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import lab.chat_session as chat_session
from lab.cli.main import app
from lab.errors import LabError
from lab.model.chat_format import TOOL_CALL, TOOL_CALL_END
from lab.model.tokenizer import decode_ids, encode_text, load_tokenizer


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """An untrained tiny labgpt with a chat tokenizer, its context long enough for a tool round trip."""
    from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM
    from lab.model.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["What is 12 times 7? Let me compute. calculator It is 84."] * 40, vocab_size=300)
    torch.manual_seed(0)
    model = LabGPTForCausalLM(LabGPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024))
    folder = tmp_path_factory.mktemp("chat") / "sft-idk"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_real_model_answers_one_prompt_through_the_cli(stage):
    done = subprocess.run([sys.executable, "-m", "lab.cli", "chat", str(stage), "--prompt",
                           "What is 2 + 3?", "--max-new-tokens", "6"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("assistant>") == 1 and "Traceback" not in done.stderr


def test_a_tool_call_runs_shows_inline_and_its_result_reaches_the_model(stage, monkeypatch):
    tokenizer = load_tokenizer(stage)
    special = lambda token: tokenizer.convert_tokens_to_ids(token)  # noqa: E731
    turns = [encode_text(tokenizer, "Let me compute. ") + [special(TOOL_CALL)] + encode_text(tokenizer, "calculator\n12*7")
             + [special(TOOL_CALL_END)],
             encode_text(tokenizer, "It is 84.") + [special("<|im_end|>")]]
    seen = []

    def scripted(model, prompts, params, pad_token_id):  # the model's two turns, as an SFT'd one would write them
        seen.append(decode_ids(tokenizer, prompts[0]))
        return [turns[len(seen) - 1]]

    monkeypatch.setattr(chat_session, "generate", scripted)
    result = CliRunner().invoke(app, ["chat", str(stage), "--prompt", "What is 12 times 7?"])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines == ["tool call calculator: 12*7", "tool result: 84", "assistant> It is 84."]
    assert len(seen) == 2 and "84" in seen[1].rsplit("12*7", 1)[1]  # the second turn reads the tool's result


def test_a_run_or_a_stage_that_is_no_policy_is_one_line_naming_the_policies(stage, tmp_path):
    """The declarations say which stages hold a model to talk to; `lab chat` names them instead of failing to load."""
    import shutil

    from lab.presets import get_preset
    from lab.runs import Run

    run = Run.create_or_open(tmp_path / "run", get_preset("tiny"))
    shutil.copytree(stage, run.stage_dir("sft-idk"), dirs_exist_ok=True)
    run.mark_complete("sft-idk")
    run.open_stage("rm")
    run.mark_complete("rm")
    for folder, what in ((run.root, "is a run, not a stage"), (run.stage_dir("rm"), "holds no chat policy (stage 'rm')")):
        result = CliRunner().invoke(app, ["chat", str(folder), "--prompt", "hi"])  # main() prints a LabError as `error:`
        message = str(result.exception)
        assert isinstance(result.exception, LabError) and "\n" not in message
        assert what in message and message.endswith(f"{run.root}/STAGE for STAGE in sft-idk")
