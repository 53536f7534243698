"""A chat session on a checkpoint: the conversation, the engine's tool loop, rich rendering."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from lab.errors import LabError
from lab.model.chat_format import answer_stops, render
from lab.model.engine import SamplingParams, generate
from lab.model.loading import load_model_and_tokenizer
from lab.model.tool_loop import Answer, generate_with_tools
from lab.presets import run_preset
from lab.stage_files import run_root_of
from lab.stages import by_name
from lab.tools import ToolContext, ToolResult, run_tool
from tasks.chat import TOOLS_OFF, with_tools
from tasks.identity import system_message
from tasks.world import build_world


def check_chat_stage(stage: Path) -> None:
    """One clear error for a folder of a run that holds no model to chat with: the run itself, or a stage whose
    declaration (lab/stages.py) says it is not a policy (the reward model, the data, an experiment...)."""
    root = run_root_of(stage)
    if root is None:
        return  # a model from elsewhere: loading says whether it is one
    declared = by_name()
    name = Path(stage).resolve().relative_to(root).as_posix()
    typed_root = Path(stage)
    for _ in () if name == "." else name.split("/"):
        typed_root = typed_root.parent
    policies = [n for n, s in declared.items() if s.policy and (root / n / "COMPLETE").exists()]
    choose = (f"chat with one of its policies, {typed_root}/STAGE for STAGE in {', '.join(policies)}" if policies
              else "it has no complete policy yet")
    if name == ".":
        raise LabError(f"{stage} is a run, not a stage; {choose}")
    if name in declared and not declared[name].policy:
        raise LabError(f"{stage} holds no chat policy (stage '{name}'); {choose}")


class ChatSession:
    def __init__(self, stage: Path, tools: bool = True, system: str | None = None, temperature: float = 0.0,
                 max_new_tokens: int = 96, seed: int = 0, console: Console | None = None):
        check_chat_stage(stage)
        self.model, self.tokenizer = load_model_and_tokenizer(stage)
        self.console = console or Console()
        self.tools = tools
        preset = run_preset(Path(stage).parent)  # the world and identity of the run the stage belongs to
        self.world = build_world(preset.data.world) if preset else None
        self.system = system if system is not None else (system_message(preset.sft.identity) if preset else None)
        self.params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                                     stop_token_ids=answer_stops(self.tokenizer))
        self.reset()

    def reset(self) -> None:
        system = with_tools(self.system, self.tools)  # the model knows its tools are on, as in SFT
        self.messages = [{"role": "system", "content": system}] if system else []

    def ask(self, text: str) -> Answer:
        self.messages.append({"role": "user", "content": text})
        prompt, _ = render(self.tokenizer, self.messages, add_generation_prompt=True)
        context = ToolContext(world=self.world)

        def engine(prompts, params):
            return generate(self.model, prompts, params, pad_token_id=self.tokenizer.pad_token_id)

        def tool(name, argument):
            if not self.tools:
                return ToolResult(False, TOOLS_OFF, "unavailable")
            return run_tool(name, argument, context)

        [answer] = generate_with_tools(engine, self.tokenizer, [prompt], self.params, tool,
                                       context_length=self.model.config.max_position_embeddings)
        # The transcript (tool calls and results included) is what the model sees next turn.
        self.messages.append({"role": "assistant", "content": answer.answer})
        return answer

    def show(self, answer: Answer) -> None:
        for call in answer.calls:
            self.console.print(f"[yellow]tool call[/yellow] {call.name}: {call.argument.strip()}", highlight=False)
            self.console.print(f"[dim]tool result:[/dim] {call.output.strip()}", highlight=False)
        self.console.print(f"[bold green]assistant>[/bold green] {answer.answer}", highlight=False)

