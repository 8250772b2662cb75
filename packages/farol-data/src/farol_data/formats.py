"""Raw records of any supported shape, turned into a chat message list."""

from farol_core.template import ROLES

# Field names per format; Portuguese alpaca keys are what the user's own scripts wrote.
ALPACA_KEYS = (("instruction", "input", "output"), ("instrucao", "contexto", "resposta"))


class RecordError(ValueError):
    """A raw record that cannot become a training conversation; the message is the reason."""


def detect_format(record: dict) -> str:
    """"completion", "alpaca", "chat" or "text", by the fields present."""
    if "messages" in record:
        return "chat"
    if "prompt" in record or "completion" in record:
        return "completion"
    if any(keys[0] in record or keys[2] in record for keys in ALPACA_KEYS):
        return "alpaca"
    if "text" in record:
        return "text"
    raise RecordError("unknown format: expected prompt/completion, instruction/output, "
                      "messages or text fields")


def to_messages(record: dict) -> tuple[str, list[dict]]:
    """(format, messages) for a raw record, or RecordError."""
    fmt = detect_format(record)
    return fmt, _CONVERTERS[fmt](record)


def _field(record: dict, key: str, required: bool = True) -> str:
    value = record.get(key, "")
    if not isinstance(value, str):
        raise RecordError(f"field '{key}' must be text, got {type(value).__name__}")
    if required and not value.strip():
        raise RecordError(f"field '{key}' is empty")
    return value


def _completion(record: dict) -> list[dict]:
    return [{"role": "user", "content": _field(record, "prompt")},
            {"role": "assistant", "content": _field(record, "completion")}]


def _alpaca(record: dict) -> list[dict]:
    instruction, context, output = next(k for k in ALPACA_KEYS if k[0] in record or k[2] in record)
    question = _field(record, instruction)
    extra = _field(record, context, required=False).strip()
    content = f"{question}\n\n{extra}" if extra else question
    return [{"role": "user", "content": content},
            {"role": "assistant", "content": _field(record, output)}]


def _chat(record: dict) -> list[dict]:
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise RecordError("'messages' must be a non-empty list")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RecordError(f"each message needs a role in {ROLES}")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise RecordError("each message needs non-empty text 'content'")
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "assistant":
        raise RecordError("the last message must be the assistant's answer")
    return out


def _text(record: dict) -> list[dict]:
    return [{"role": "assistant", "content": _field(record, "text")}]


_CONVERTERS = {"completion": _completion, "alpaca": _alpaca, "chat": _chat, "text": _text}
