"""The chat template Farol uses for training, evaluation and inference.

By default (a run's `template: mistral`) it is the Mistral instruct layout
(`<s>[INST] question [/INST] answer</s>`), with an optional system message folded into the first
user turn. Farol installs it on every tokenizer it loads, and writes it next to the models it
quantizes, so mlx-lm's own tools format prompts the same way. With `template: model` the base
model's own template (Llama 3's, Qwen's, Mistral-Instruct's) is kept instead, everywhere alike.
"""

import re
from collections.abc import Sequence

from farol_core.errors import FarolError

CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = message['content'] + '\\n\\n' %}"
    "{% elif message['role'] == 'user' %}"
    "{{ '[INST] ' + ns.system + message['content'] + ' [/INST]' }}{% set ns.system = '' %}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
)

ROLES = ("system", "user", "assistant")
CHOICES = ("mistral", "model")  # a run config's `template`


def install(tokenizer, choice: str = "mistral") -> None:
    """Make `tokenizer.apply_chat_template` use Farol's Mistral template, or with "model"
    check that the tokenizer has a template of its own and keep it."""
    if choice not in CHOICES:
        raise FarolError(f"template must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "mistral":
        tokenizer.chat_template = CHAT_TEMPLATE
    elif not getattr(tokenizer, "chat_template", None):
        raise FarolError("template: model, but this model's tokenizer has no chat template "
                         "of its own", hint="use `template: mistral` (the default) in the run "
                                            "config, or a model that ships one")


def to_messages(prompt_or_messages: str | Sequence[dict], system: str | None = None) -> list[dict]:
    """A question string or an OpenAI-style message list, as a message list."""
    if isinstance(prompt_or_messages, str):
        messages = [{"role": "user", "content": prompt_or_messages}]
    else:
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt_or_messages]
    if system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return messages


def render(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    """The prompt text for `messages` in the template `install` chose (Farol's begins with BOS)."""
    return tokenizer.apply_chat_template(
        list(messages),
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def encode(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False) -> list[int]:
    """Token ids of `render(...)`, where only the template places special tokens (BOS, EOS,
    turn markers): special-token text inside a message ('</s>', '[INST]') stays ordinary text,
    so neither a user nor a training record can end a turn or forge one."""
    marked = [{**m, "content": f"{_MARK}{i}{_MARK}"} for i, m in enumerate(messages)]
    pieces = render(tokenizer, marked, add_generation_prompt).split(_MARK)
    specials, ids, text = _special_tokens(tokenizer), [], ""
    for k, piece in enumerate(pieces):  # template text, message index, template text, ...
        if k % 2:
            text += messages[int(piece)]["content"]
            continue
        for part in _split_on(piece, specials):
            if part in specials:
                ids += _plain(tokenizer, text) + [tokenizer.convert_tokens_to_ids(part)]
                text = ""
            else:
                text += part
    return ids + _plain(tokenizer, text)


_MARK = "\ue000"  # a private-use character that stands for message content while rendering


def _special_tokens(tokenizer) -> list[str]:
    """The tokenizer's special-token strings, longest first."""
    return sorted(set(getattr(tokenizer, "all_special_tokens", None) or []), key=len, reverse=True)


def _split_on(text: str, specials: list[str]) -> list[str]:
    if not specials:
        return [text]
    return re.split("(" + "|".join(re.escape(t) for t in specials) + ")", text)


def _plain(tokenizer, text: str) -> list[int]:
    """`text` as ordinary tokens: special-token strings in it are not read as special."""
    if not text:
        return []
    return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))


def encode_for_training(tokenizer, messages: Sequence[dict]) -> tuple[list[int], int]:
    """(tokens, offset): the whole conversation, and where its last answer starts.

    Tokens before `offset` are the prompt, which prompt masking leaves out of the loss.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("a training conversation must end with an assistant message")
    tokens = encode(tokenizer, messages)
    if len(messages) > 1:
        prompt = encode(tokenizer, messages[:-1], add_generation_prompt=True)
    else:  # a plain-text record: no question, so the answer follows the template's BOS
        prompt = list(tokenizer.encode(tokenizer.bos_token or "", add_special_tokens=False))
    return tokens, _common_prefix(prompt, tokens)


def _common_prefix(a: list[int], b: list[int]) -> int:
    # Byte-level BPE can merge across the prompt/answer seam; never count past the first mismatch.
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
