"""A chat session on a checkpoint: the conversation, the engine's tool loop, rich rendering.

The conversation fits the model's context (its max_position_embeddings, room for max_new_tokens kept): a
message that cannot fit even alone is one LabError line and is not kept, and when the history outgrows the
context its oldest exchanges (a user message and every turn answering it) are dropped, with a one-line note.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from lab.errors import LabError
from lab.model.chat_format import TOOL_CALL, TOOL_CALL_END, answer_stops, render
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


def _renderable(content: str) -> str:
    """An assistant turn without a tool call it opened and never closed (cut off by max_new_tokens): the call
    never ran, and the renderer refuses an open call."""
    head, closed, tail = content.rpartition(TOOL_CALL_END)
    return head + closed + tail.partition(TOOL_CALL)[0]


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
        self.context_length = self.model.config.max_position_embeddings
        self.reset()
        opening = len(self._prompt([], None))
        if opening + max_new_tokens > self.context_length:
            raise LabError(f"the system message ({opening} tokens) and --max-new-tokens {max_new_tokens} leave no room "
                           f"for a message in the model's {self.context_length}-token context; shorten them")

    def reset(self) -> None:
        system = with_tools(self.system, self.tools)  # the model knows its tools are on, as in SFT
        self.system_turns = [{"role": "system", "content": system}] if system else []
        self.exchanges: list[list[dict]] = []  # each: a user message, then the turns that answered it

    @property
    def messages(self) -> list[dict]:
        return self.system_turns + [m for exchange in self.exchanges for m in exchange]

    def _prompt(self, exchanges: list[list[dict]], user: dict | None) -> list[int]:
        turns = self.system_turns + [m for exchange in exchanges for m in exchange] + ([user] if user else [])
        prompt, _ = render(self.tokenizer, turns, add_generation_prompt=True)
        return prompt

    def _fit(self, user: dict) -> list[int]:
        """The prompt for `user`, the oldest exchanges dropped (with a note) until it leaves room for the answer."""
        budget = self.context_length - self.params.max_new_tokens
        alone = len(self._prompt([], user))
        if alone > budget:  # checked first, so a message that is refused costs the history nothing
            raise LabError(f"the message is too long for the model's context: {alone} prompt tokens and "
                           f"{self.params.max_new_tokens} for the answer exceed {self.context_length}; send a "
                           "shorter message")
        dropped = 0
        prompt = self._prompt(self.exchanges, user)
        while len(prompt) > budget:
            dropped += 1
            prompt = self._prompt(self.exchanges[dropped:], user)
        if dropped:
            del self.exchanges[:dropped]
            self.console.print(f"[dim]note: dropped the oldest {dropped} turn{'s' if dropped > 1 else ''} to fit "
                               f"the {self.context_length}-token context[/dim]", highlight=False)
        return prompt

    def ask(self, text: str) -> Answer:
        user = {"role": "user", "content": text}
        prompt = self._fit(user)
        context = ToolContext(world=self.world)

        def engine(prompts, params):
            return generate(self.model, prompts, params, pad_token_id=self.tokenizer.pad_token_id)

        def tool(name, argument):
            if not self.tools:
                return ToolResult(False, TOOLS_OFF, "unavailable")
            return run_tool(name, argument, context)

        [answer] = generate_with_tools(engine, self.tokenizer, [prompt], self.params, tool,
                                       context_length=self.context_length)
        # The model reads its tool calls and their results again next turn, as it read them in this one.
        turns = [t | {"content": _renderable(t["content"])} if t["role"] == "assistant" else t for t in answer.turns]
        self.exchanges.append([user, *turns])
        return answer

    def show(self, answer: Answer) -> None:
        for call in answer.calls:
            self.console.print(f"[yellow]tool call[/yellow] {call.name}: {call.argument.strip()}", highlight=False)
            self.console.print(f"[dim]tool result:[/dim] {call.output.strip()}", highlight=False)
        self.console.print(f"[bold green]assistant>[/bold green] {answer.answer}", highlight=False)
