"""Byte-level BPE trained on the run's corpus with HF `tokenizers`, saved as a PreTrainedTokenizerFast.

Every digit is its own token (arithmetic stays learnable: "1234" is never one opaque symbol), and
the chat special tokens have fixed ids 0..6 so the model config's pad/bos/eos ids never drift.
Plain text is encoded with special-token matching switched off: a user (or a model) typing
"<|im_start|>" gets the characters, not the control token. Model input is data.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from lab.errors import LabError
from lab.stage_names import DATA
from tasks.corpus import load_corpus

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>", "<|tool_call|>", "<|/tool_call|>"]
ROLES = ("system", "user", "assistant", "tool")

# A turn is `<|im_start|>role\ncontent<|im_end|>\n`. The assistant's content and its closing
# <|im_end|> sit in {% generation %} so `return_assistant_tokens_mask` marks exactly what SFT trains on
# (the model must learn to stop), except after a tool call, where the engine closes the turn: that
# <|im_end|> is forced, not learned (lab/model/chat_format.py renders the same mask).
# TRL looks for the literal "{% generation %}", so no `-` inside it.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}"
    "{{ raise_exception('unknown role ' + message['role'] + '; roles are system, user, assistant, tool') }}"
    "{%- endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- if message['content'].rstrip().endswith('<|/tool_call|>') %}"
    "{% generation %}{{ message['content'] }}{% endgeneration %}{{ '<|im_end|>' }}"
    "{%- else %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{%- endif %}"
    "{%- else %}"
    "{{ message['content'] + '<|im_end|>' }}"
    "{%- endif %}"
    "{{ '\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
                    model_max_length: int = 2048) -> PreTrainedTokenizerFast:
    """Train byte-level BPE on `texts`. The result can be smaller than `vocab_size` when the corpus
    runs out of pairs seen `min_frequency` times; size the model with len(tokenizer)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(SPECIAL_TOKENS) + len(alphabet):
        raise LabError(f"vocab_size {vocab_size} is smaller than the {len(SPECIAL_TOKENS)} special tokens + "
                       f"{len(alphabet)} byte symbols ({len(SPECIAL_TOKENS) + len(alphabet)})")
    seen = {"any": False}

    def checked():
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise LabError(f"corpus item {i} is a {type(text).__name__}, not a str")
            seen["any"] = seen["any"] or bool(text.strip())
            if text:
                yield text

    backend = Tokenizer(models.BPE())
    # Digits first: ByteLevel's regex would otherwise keep "2024" as one pre-token and BPE would merge it.
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    backend.decoder = decoders.ByteLevel()
    # The trainer puts special_tokens first, in order, which is what pins them to ids 0..6.
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=alphabet, show_progress=False)
    backend.train_from_iterator(checked(), trainer=trainer)
    if not seen["any"]:
        raise LabError("the corpus is empty: no non-blank text to train the tokenizer on")
    _check_special_ids(backend, "the trained tokenizer")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|pad|>",
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        extra_special_tokens=SPECIAL_TOKENS[3:],  # transformers 5's name for additional_special_tokens
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATE,
    )


def _check_special_ids(backend: Tokenizer, where: str) -> None:
    for i, token in enumerate(SPECIAL_TOKENS):
        if backend.token_to_id(token) != i:
            raise LabError(f"{where} is not a lab tokenizer: {token} has id {backend.token_to_id(token)}, expected {i}")


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> None:
    """Writes tokenizer.json, tokenizer_config.json and chat_template.jinja (transformers 5 writes no
    special_tokens_map.json; the special tokens live in tokenizer_config.json)."""
    tokenizer.save_pretrained(Path(directory))


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    directory = Path(directory)
    if not (directory / "tokenizer.json").is_file():
        raise LabError(f"{directory} holds no tokenizer (no tokenizer.json)")
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(directory)
    except Exception as e:  # tokenizers raises bare Exception on a corrupt tokenizer.json
        raise LabError(f"{directory} has an unreadable tokenizer ({str(e).splitlines()[0]})") from None
    _check_special_ids(tokenizer.backend_tokenizer, f"the tokenizer in {directory}")
    if tokenizer.chat_template is None:  # saved without chat_template.jinja: ids are ours, so is the format
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# One private backend copy per tokenizer, with special-token matching off. Toggling the shared backend
# (or transformers' split_special_tokens=True, which sets the flag on the backend and leaves it set)
# would leak into other callers; weak keys so a dropped tokenizer takes its copy with it.
_PLAIN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plain_backend(tokenizer: PreTrainedTokenizerFast) -> Tokenizer:
    cached = _PLAIN.get(tokenizer)
    if cached is not None and cached.get_vocab_size() == tokenizer.backend_tokenizer.get_vocab_size():
        return cached
    plain = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    # transformers leaves truncation/padding from the last `tokenizer(..., truncation=True)` call on
    # the backend; a snapshot taken then would silently cut every document short.
    plain.no_truncation()
    plain.no_padding()
    plain.encode_special_tokens = True
    _PLAIN[tokenizer] = plain
    return plain


def encode_text(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    """Ids for plain text: no bos/eos added, special-token strings in `text` encoded as characters."""
    if not isinstance(text, str):
        raise LabError(f"encode_text needs a str, got a {type(text).__name__}")
    return _plain_backend(tokenizer).encode(text, add_special_tokens=False).ids


def encode_texts(tokenizer: PreTrainedTokenizerFast, texts: Iterable[str]) -> list[list[int]]:
    """Batch version of encode_text (parallel in the Rust backend)."""
    return [e.ids for e in _plain_backend(tokenizer).encode_batch(list(texts), add_special_tokens=False)]


def decode_ids(tokenizer: PreTrainedTokenizerFast, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
    ids = [int(i) for i in ids]  # numpy/torch scalars too
    return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)


def special_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    if token not in SPECIAL_TOKENS:
        raise LabError(f"unknown special token {token!r}; known: {', '.join(SPECIAL_TOKENS)}")
    token_id = tokenizer.backend_tokenizer.token_to_id(token)
    if token_id is None:
        raise LabError(f"special token {token} is missing from this tokenizer")
    return token_id


def tokenizer_stage(settings, context) -> None:
    """The `tokenizer` stage: a byte-level BPE trained on the run's training documents (settings: a
    TokenizerSettings), its length limit the model's context."""
    corpus = load_corpus(context.run.require(DATA))
    tokenizer = train_tokenizer((doc for doc in corpus["train"]["text"]), vocab_size=settings.vocab_size,
                                min_frequency=settings.min_frequency,
                                model_max_length=context.model.max_position_embeddings)
    save_tokenizer(tokenizer, context.run.stage_dir(context.stage))
    context.run.mark_complete(context.stage, {"vocab_size": len(tokenizer)})
