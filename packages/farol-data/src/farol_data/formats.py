"""Raw records of any supported shape, checked against the shipped schema and turned into
a chat message list."""

import json
from functools import cache
from importlib import resources

import jsonschema

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
def validator(definition: str) -> jsonschema.Draft202012Validator:
    """A validator for one `$defs` entry of the record schema ("chat", "prepared", ...)."""
    schema = load_record_schema()
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"})


def map_fields(record: dict, field_map: dict[str, str]) -> dict:
    """`record` with aliased field names renamed to Farol's; a name already present wins."""
    renames = [(k, v) for k, v in (*ALIASES.items(), *field_map.items()) if k in record]
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
    raise RecordError("unknown format: expected prompt/completion, instruction/output, "
                      "messages or text fields")


def check(record: dict, fmt: str) -> None:
    """RecordError naming the first schema violation of `record` as format `fmt`."""
    v = validator(_SCHEMA_DEF[fmt])
    if v.is_valid(record):  # the fast path; errors are only collected for bad records
        return
    error = min(v.iter_errors(record), key=lambda e: list(map(str, e.absolute_path)))
    raise RecordError(describe(error))


def describe(error: jsonschema.ValidationError) -> str:
    """A reason a person reads: which field, and what is wrong with it."""
    where = ".".join(str(p) for p in error.absolute_path) or "record"
    if error.validator == "pattern":
        return f"field '{where}' is empty"
    if error.validator == "type":
        return f"field '{where}' must be {error.validator_value}, got {_json_type(error.instance)}"
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        return f"missing field '{missing}'" + ("" if where == "record" else f" in {where}")
    return f"field '{where}': {error.message}"


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
    extra = record.get("input", "").strip()
    question = record["instruction"]
    return [{"role": "user", "content": f"{question}\n\n{extra}" if extra else question},
            {"role": "assistant", "content": record["output"]}]


def _chat(record: dict) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]


def _text(record: dict) -> list[dict]:
    return [{"role": "assistant", "content": record["text"]}]


_CONVERTERS = {"completion": _completion, "alpaca": _alpaca, "chat": _chat, "text": _text}
