"""The text of a completion as TRL hands it to a reward function: one rule for every reward.

TRL passes each completion as a string when the dataset's prompts are text (every dataset in this lab:
rl_math and rlhf render their prompts with the chat template), or as a list of chat messages when they are
conversational. The preference data (rewards/preferences.py) stores an answer as one assistant message.
"""

from __future__ import annotations


def _content_text(content) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def completion_text(completion) -> str:
    """The model's text: a string as it is; of a message list, the assistant messages' contents (a message
    without a role counts as the assistant's; content parts joined), one per line. A one-message completion
    (TRL's conversational form, our preference rows) is that message's text; other roles (a tool's result,
    the user's turn) are not the model's words and are left out."""
    if isinstance(completion, str):
        return completion
    return "\n".join(_content_text(m.get("content")) for m in completion or [] if m.get("role", "assistant") == "assistant")
