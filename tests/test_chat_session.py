"""`lab chat` (lab/chat_session.py): a real model answers through the CLI, and a tool call the model writes runs
in the sandbox, shows inline, and its result is what the model reads before it answers. The conversation fits
the model's context: a message too long for it is one `error:` line and the chat goes on, and a history that
outgrows it drops its oldest exchanges with a note."""

import io
import shutil
import subprocess
import sys

import pytest
from rich.console import Console
from tiny_policy import untrained_policy
from typer.testing import CliRunner

import lab.chat_session as chat_session
from lab.cli.main import app
from lab.errors import LabError
from lab.model.chat_format import TOOL_CALL, TOOL_CALL_END, render
from lab.model.labgpt import LabGPTForCausalLM
from lab.model.tokenizer import decode_ids, encode_text, load_tokenizer
from lab.presets import get_preset
from lab.runs import Run


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """An untrained tiny labgpt with a chat tokenizer, its context long enough for a tool round trip."""
    return untrained_policy(tmp_path_factory.mktemp("chat") / "sft-idk",
                            ["What is 12 times 7? Let me compute. calculator It is 84."] * 40)


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


@pytest.fixture(scope="module")
def small_stage(stage, tmp_path_factory):
    """The same tiny model with a 128-token context, so a few exchanges outgrow it."""
    model = LabGPTForCausalLM.from_pretrained(stage)
    model.config.max_position_embeddings = 128
    folder = tmp_path_factory.mktemp("small") / "sft-idk"
    model.save_pretrained(folder)
    load_tokenizer(stage).save_pretrained(folder)
    return folder


@pytest.fixture
def replies(small_stage, monkeypatch):
    """The model answers "Fine." to everything; the prompts it was given are recorded (as text)."""
    tokenizer = load_tokenizer(small_stage)
    seen = []

    def scripted(model, prompts, params, pad_token_id):
        assert len(prompts[0]) + params.max_new_tokens <= model.config.max_position_embeddings  # the engine's rule
        seen.append(decode_ids(tokenizer, prompts[0]))
        return [encode_text(tokenizer, "Fine.") + [tokenizer.convert_tokens_to_ids("<|im_end|>")]]

    monkeypatch.setattr(chat_session, "generate", scripted)
    return seen


def session_on(stage):
    out = io.StringIO()
    session = chat_session.ChatSession(stage, tools=False, system="You are the lab assistant.", max_new_tokens=8,
                                       console=Console(file=out, width=300))
    return session, out


def words(n):
    """About n tokens: " compute" is one token of this tokenizer."""
    return " ".join(["compute"] * n)


def test_a_message_longer_than_the_context_is_one_error_line_and_is_not_kept(small_stage, replies):
    session, _ = session_on(small_stage)
    session.ask("What is 2 + 3?")
    kept = list(session.messages)
    with pytest.raises(LabError) as err:
        session.ask(words(200))
    message = str(err.value)
    assert "\n" not in message and message.startswith("the message is too long for the model's context")
    assert "8 for the answer exceed 128" in message
    assert session.messages == kept and len(replies) == 1  # nothing generated, the history as it was
    assert session.ask("And 3 + 4?").answer == "Fine." and "compute" not in replies[-1]


def test_a_history_that_outgrows_the_context_drops_its_oldest_exchanges_with_a_note(small_stage, replies):
    session, out = session_on(small_stage)
    for i in range(12):
        session.ask(f"Question {i}: {words(4)}?")
    notes = [line for line in out.getvalue().splitlines() if line.startswith("note:")]
    assert notes and all(n == "note: dropped the oldest 1 turn to fit the 128-token context" for n in notes)
    assert session.messages[0]["role"] == "system" and "Question 11" in replies[-1] and "Question 0:" not in replies[-1]
    # whole exchanges go: the history still alternates user, assistant after the system message
    assert [m["role"] for m in session.messages[1:]] == ["user", "assistant"] * (len(session.messages[1:]) // 2)
    tokenizer, system, history = session.tokenizer, session.messages[:1], session.messages[1:]

    def tokens(text, dropped):  # the prompt with the oldest `dropped` exchanges (a user and an assistant turn) gone
        turns = system + history[2 * dropped:] + [{"role": "user", "content": text}]
        return len(render(tokenizer, turns, add_generation_prompt=True)[0])

    last = next(words(n) for n in range(1, 120) if tokens(words(n), 1) > 120 >= tokens(words(n), 2))
    out.truncate(0)
    out.seek(0)
    session.ask(last)  # fits alone, but only once two exchanges have gone
    assert out.getvalue().splitlines()[0] == "note: dropped the oldest 2 turns to fit the 128-token context"


def test_a_cut_off_tool_call_is_dropped_from_the_history_so_the_next_turn_renders(small_stage, monkeypatch):
    tokenizer = load_tokenizer(small_stage)
    cut = encode_text(tokenizer, "Let me see. ") + [tokenizer.convert_tokens_to_ids(TOOL_CALL)] + encode_text(tokenizer, "calc")
    monkeypatch.setattr(chat_session, "generate", lambda model, prompts, params, pad_token_id: [cut])
    session, _ = session_on(small_stage)
    assert session.ask("What is 12 times 7?").stopped == "length"
    assert session.messages[-1] == {"role": "assistant", "content": "Let me see. "}
    session.ask("Again?")  # the renderer refuses an open call: this would be an error without the cut


def test_the_cli_prints_one_error_line_for_a_too_long_message_and_answers_the_next(small_stage, replies):
    typed = "\n".join(["What is 2 + 3?", words(200), "And 3 + 4?", ""]) + "\n"
    result = CliRunner().invoke(app, ["chat", str(small_stage), "--no-tools", "--max-new-tokens", "8"], input=typed)
    assert result.exit_code == 0 and result.exception is None, result.output
    errors = [line for line in result.output.splitlines() if "error:" in line]
    # (the `you>` prompt before it is a terminal's line, ended there by the user's Enter)
    assert len(errors) == 1 and errors[0].removeprefix("you> ").startswith("error: the message is too long for the "
                                                                            "model's context")
    assert result.output.count("assistant> Fine.") == 2 and "Traceback" not in result.output
    assert len(replies) == 2 and "And 3 + 4?" in replies[1] and "compute" not in replies[1]
    once = CliRunner().invoke(app, ["chat", str(small_stage), "--no-tools", "--prompt", words(200)])
    assert isinstance(once.exception, LabError)  # with --prompt there is no chat to go on: main()'s one line, status 2


def test_a_system_message_that_leaves_no_room_is_one_line_at_start(small_stage):
    with pytest.raises(LabError, match="leave no room for a message in the model's 128-token context"):
        chat_session.ChatSession(small_stage, tools=False, system=words(100), max_new_tokens=8)
