"""Byte-level BPE trained on the run's corpus with HF `tokenizers`, saved as a PreTrainedTokenizerFast.

Every digit is its own token (arithmetic stays learnable: "1234" is never one opaque symbol), and
the chat special tokens have fixed ids 0..6 so the model config's pad/bos/eos ids never drift.
Plain text is encoded with special-token matching switched off: a user (or a model) typing
"<|im_start|>" gets the characters, not the control token. Model output is data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from lab.errors import LabError

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>", "<|tool_call|>", "<|/tool_call|>"]
ROLES = ("system", "user", "assistant", "tool")

# A turn is `<|im_start|>role\ncontent<|im_end|>\n`. The assistant's content and its closing
# <|im_end|> sit in {% generation %} so `return_assistant_tokens_mask` marks exactly what SFT trains on.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}"
    "{{ raise_exception('unknown role ' + message['role'] + '; roles are system, user, assistant, tool') }}"
    "{%- endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{%- else %}"
    "{{ message['content'] + '<|im_end|>' }}"
    "{%- endif %}"
    "{{ '\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
                    model_max_length: int = 2048) -> PreTrainedTokenizerFast:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(SPECIAL_TOKENS) + len(alphabet):
        raise LabError(f"vocab_size {vocab_size} is smaller than the {len(SPECIAL_TOKENS)} special tokens + "
                       f"{len(alphabet)} byte symbols ({len(SPECIAL_TOKENS) + len(alphabet)})")
    seen = {"any": False}

    def non_empty():
        for text in texts:
            if text and text.strip():
                seen["any"] = True
                yield text

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=alphabet, show_progress=False)
    backend.train_from_iterator(non_empty(), trainer=trainer)
    if not seen["any"]:
        raise LabError("the corpus is empty: no non-blank text to train the tokenizer on")
    return _wrap(backend, model_max_length)


def _wrap(backend: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    for i, token in enumerate(SPECIAL_TOKENS):
        if backend.token_to_id(token) != i:
            raise LabError(f"special token {token} has id {backend.token_to_id(token)}, expected {i}")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|pad|>",
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        extra_special_tokens=SPECIAL_TOKENS[3:],
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATE,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: Path) -> None:
    tokenizer.save_pretrained(Path(directory))


def load_tokenizer(directory: Path) -> PreTrainedTokenizerFast:
    directory = Path(directory)
    if not (directory / "tokenizer.json").exists():
        raise LabError(f"{directory} holds no tokenizer (no tokenizer.json)")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(directory)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


_PLAIN: dict[int, Tokenizer] = {}


def _plain_backend(tokenizer: PreTrainedTokenizerFast) -> Tokenizer:
    """A copy of the backend that never matches special-token strings (the original stays untouched)."""
    key = id(tokenizer)
    if key not in _PLAIN:
        plain = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        plain.encode_special_tokens = True
        _PLAIN[key] = plain
    return _PLAIN[key]


def encode_text(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    return _plain_backend(tokenizer).encode(text, add_special_tokens=False).ids


def encode_texts(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> list[list[int]]:
    """Batch version of encode_text (parallel in the Rust backend)."""
    return [e.ids for e in _plain_backend(tokenizer).encode_batch(list(texts), add_special_tokens=False)]


def decode_ids(tokenizer: PreTrainedTokenizerFast, ids: list[int], skip_special_tokens: bool = False) -> str:
    return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)


def special_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    if token not in SPECIAL_TOKENS:
        raise LabError(f"unknown special token {token}; known: {', '.join(SPECIAL_TOKENS)}")
    return SPECIAL_TOKENS.index(token)
