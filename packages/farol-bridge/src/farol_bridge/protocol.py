"""The bridge's wire format, version 1: one JSON object per line each way.

Both directions are described by JSON Schemas shipped in `farol_bridge/schemas/`; requests are
checked against theirs with jsonschema, and the tests check every reply against the other.
"""

import json
import re
from functools import cache
from importlib import resources

import jsonschema

VERSION = 1
OPS = ("generate", "ping", "info", "cancel", "shutdown")
ERROR_CODES = ("bad_json", "bad_request", "unknown_op", "too_long", "duplicate_id", "cancelled",
               "shutting_down", "internal")
MAX_LINE_BYTES = 1 << 20
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class RequestError(Exception):
    """A request the bridge answers with an error line, then keeps serving."""

    def __init__(self, code: str, message: str, request_id=None):
        super().__init__(message)
        self.code, self.message, self.request_id = code, message, request_id


@cache
def schema(name: str) -> dict:
    """The shipped schema "request" or "response"."""
    text = resources.files("farol_bridge.schemas").joinpath(f"{name}.schema.json").read_text()
    return json.loads(text)


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(name))


def parse_request(line: str | bytes) -> dict:
    """The request on one input line, or RequestError saying what is wrong with it."""
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_BYTES:
            raise RequestError("too_long", f"line longer than {MAX_LINE_BYTES} bytes")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("bad_json", "line is not valid UTF-8") from None
    try:
        request = json.loads(line, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as e:
        raise RequestError("bad_json", f"not valid JSON: {getattr(e, 'msg', e)}") from None
    if not isinstance(request, dict):
        raise RequestError("bad_request", "a request must be a JSON object")
    check_request(request)
    return request


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def check_request(request: dict) -> None:
    """Raise RequestError unless `request` matches the request schema; the message names the
    rule broken, in words ("generate needs `prompt` or `messages`"), not a schema dump."""
    rid = request.get("id")
    rid = rid if _valid_id(rid) else None
    op = request.get("op")
    if isinstance(op, str) and op not in OPS:
        raise RequestError("unknown_op", f"unknown op {op[:40]!r}; expected one of {OPS}", rid)
    for name in ("id", "op"):  # before the per-op rules, which would otherwise speak first
        if name not in request:
            raise RequestError("bad_request", f"a request needs `{name}`", rid)
    problem = jsonschema.exceptions.best_match(_validator("request").iter_errors(request))
    if problem is not None:
        raise RequestError("bad_request", _short(_describe(problem, request)), rid)


_TYPES = {"string": "a string", "number": "a number", "integer": "an integer",
          "array": "a list", "object": "an object", "boolean": "true or false"}


def _describe(problem, request: dict) -> str:
    """One schema error as a sentence about the request."""
    where = "/".join(str(p) for p in problem.absolute_path)
    op, rule = request.get("op"), problem.validator
    if rule == "oneOf":
        both = "prompt" in request and "messages" in request
        return f"{op} takes `prompt` or `messages`, not both" if both else \
            f"{op} needs `prompt` or `messages`"
    if rule == "additionalProperties":
        extra = sorted(set(request) - set(problem.schema.get("properties", {})))
        return f"{op} does not take {', '.join(f'`{k}`' for k in extra)}"
    if rule == "required":
        return f"{where or op} needs `{problem.message.split(chr(39))[1]}`"
    if rule == "contains":
        return "messages needs at least one turn with role `user`"
    if rule == "anyOf" and where == "id":
        return "id must be a string of at most 200 characters, or a number"
    if rule in ("pattern", "minLength"):
        return f"{where} is empty"
    if rule == "type":
        return f"{where} must be {_TYPES.get(problem.validator_value, problem.validator_value)}"
    if rule == "enum":
        return f"{where} must be one of {', '.join(map(str, problem.validator_value))}"
    if rule == "const":
        return f"{where} must be {problem.validator_value}"
    return f"{where or 'request'}: {problem.message}"


def _valid_id(rid) -> bool:
    return (isinstance(rid, str) and len(rid) <= 200) or (
        isinstance(rid, int | float) and not isinstance(rid, bool))


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[:limit] + "..."


def clean_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD.

    JSON may carry one ("\\ud83d": half an emoji a client cut off), and so may argv (bytes that
    are not UTF-8), but neither UTF-8 nor a tokenizer can encode it."""
    return _SURROGATE.sub("\ufffd", text)


def check_reply(reply: dict) -> None:
    """Raise jsonschema.ValidationError unless `reply` is a valid output line (for tests)."""
    _validator("response").validate(reply)


def error(request_id, code: str, message: str) -> dict:
    """An error reply line."""
    reply = {"v": VERSION, "status": "error", "error": {"code": code, "message": message}}
    if request_id is not None:
        reply["id"] = request_id
    return reply


def ok(request_id, **fields) -> dict:
    """A success reply line."""
    return {"v": VERSION, "id": request_id, "status": "ok", **fields}


def token(request_id, text: str) -> dict:
    """A streamed piece of an answer."""
    return {"v": VERSION, "id": request_id, "event": "token", "text": text}
