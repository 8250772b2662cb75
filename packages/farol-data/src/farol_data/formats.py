"""Raw records of any supported shape, checked against the shipped schema and turned into
a chat message list."""

import json
from collections.abc import Callable
from functools import cache
from importlib import resources

import fastjsonschema

# Field names the user's own scripts wrote, always understood; `field_map` in the config adds more.
ALIASES = {"instrucao": "instruction", "contexto": "input", "resposta": "output",
           "categoria": "category", "conversa_id": "conversation_id", "jogador": "player"}
FORMATS = ("chat", "completion", "alpaca", "text")
_SCHEMA_DEF = {"chat": "chat", "completion": "completion", "alpaca": "alpaca", "text": "text_only"}


class RecordError(ValueError):
    """A raw record that cannot become a training conversation; the message is the reason."""


def load_record_schema() -> dict:
    """The shipped JSON Schema of input and prepared records."""
    text = resources.files("farol_data.schemas").joinpath("record.schema.json").read_text()
    return json.loads(text)


@cache
def validator(definition: str) -> Callable[[dict], object]:
    """The compiled check for one `$defs` entry of the record schema ("chat", "prepared", ...):
    it returns the record or raises fastjsonschema.JsonSchemaValueException."""
    # fastjsonschema compiles the schema to Python, about 10x faster per record than jsonschema.
    return fastjsonschema.compile({**load_record_schema(), "$ref": f"#/$defs/{definition}"})


def is_valid(definition: str, record: dict) -> bool:
    """Whether `record` follows the schema's `definition`."""
    try:
        validator(definition)(record)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def map_fields(record: dict, field_map: dict[str, str]) -> dict:
    """`record` with aliased field names renamed to Farol's; a name already present wins.

    The user's `field_map` overrides a built-in alias of the same name (e.g. "resposta":
    "completion" for files whose questions are under "pergunta")."""
    renames = [(k, v) for k, v in {**ALIASES, **field_map}.items() if k in record]
    if not renames:
        return record
    record = dict(record)
    for old, new in renames:
        if new not in record and old in record:
            record[new] = record.pop(old)
    return record


def detect_format(record: dict) -> str:
    """"chat", "completion", "alpaca" or "text", by the fields present."""
    if "messages" in record:
        return "chat"
    if "prompt" in record or "completion" in record:
        return "completion"
    if "instruction" in record or "output" in record:
        return "alpaca"
    if "text" in record:
        return "text"
    # Naming the fields found tells the user what to put in field_map.
    found = ", ".join(sorted(record)[:8]) or "none"
    raise RecordError(f"unknown format (fields: {found}): expected prompt/completion, "
                      "instruction/output, messages or text; map other names with field_map")


def check(record: dict, fmt: str) -> None:
    """RecordError naming the first schema violation of `record` as format `fmt`."""
    try:
        validator(_SCHEMA_DEF[fmt])(record)
    except fastjsonschema.JsonSchemaValueException as e:
        raise RecordError(describe(e)) from None


def describe(error: fastjsonschema.JsonSchemaValueException) -> str:
    """A reason a person reads: which field, and what is wrong with it."""
    where = error.name.removeprefix("data").lstrip(".") or "record"
    if error.rule == "pattern":
        return f"field '{where}' is empty"
    if error.rule == "type":
        return (f"field '{where}' must be {error.definition['type']}, "
                f"got {_json_type(error.value)}")
    if error.rule == "required":
        missing = [k for k in error.definition["required"] if k not in error.value]
        return f"missing field '{missing[0]}'" + ("" if where == "record" else f" in {where}")
    return f"field '{where}' {error.message.split(' ', 1)[1]}"


def to_messages(record: dict) -> tuple[str, list[dict]]:
    """(format, messages) for a raw record with Farol's field names, or RecordError."""
    fmt = detect_format(record)
    check(record, fmt)
    messages = _CONVERTERS[fmt](record)
    if messages[-1]["role"] != "assistant":
        raise RecordError("the last message must be the assistant's answer")
    return fmt, messages


def _json_type(value) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
             dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _completion(record: dict) -> list[dict]:
    return [{"role": "user", "content": record["prompt"]},
            {"role": "assistant", "content": record["completion"]}]


def _alpaca(record: dict) -> list[dict]:
    extra = (record.get("input") or "").strip()  # pandas writes an empty cell as null
    question = record["instruction"]
    return [{"role": "user", "content": f"{question}\n\n{extra}" if extra else question},
            {"role": "assistant", "content": record["output"]}]


def _chat(record: dict) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]


def _text(record: dict) -> list[dict]:
    return [{"role": "assistant", "content": record["text"]}]


_CONVERTERS = {"completion": _completion, "alpaca": _alpaca, "chat": _chat, "text": _text}
