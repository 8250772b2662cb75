"""The bridge's wire format: one JSON object per line each way, version 1."""

VERSION = 1
OPS = ("generate", "ping", "info", "shutdown")
ERROR_CODES = ("bad_json", "bad_request", "unknown_op", "too_long", "internal")


class RequestError(Exception):
    """A request the bridge answers with an error line, then keeps serving."""

    def __init__(self, code: str, message: str, request_id=None):
        super().__init__(message)
        self.code, self.message, self.request_id = code, message, request_id


def error(request_id, code: str, message: str) -> dict:
    """An error reply line."""
    reply = {"v": VERSION, "status": "error", "error": {"code": code, "message": message}}
    if request_id is not None:
        reply["id"] = request_id
    return reply


def ok(request_id, **fields) -> dict:
    """A success reply line."""
    return {"v": VERSION, "id": request_id, "status": "ok", **fields}


def check_generate(request: dict) -> None:
    """Raise RequestError(bad_request) unless `request` is a well-formed generate request."""
    rid = request.get("id")
    has_prompt, has_messages = "prompt" in request, "messages" in request
    if has_prompt == has_messages:
        raise RequestError("bad_request", "give exactly one of 'prompt' or 'messages'", rid)
    if has_prompt and (not isinstance(request["prompt"], str) or not request["prompt"].strip()):
        raise RequestError("bad_request", "'prompt' must be a non-empty string", rid)
    if has_messages and not _valid_messages(request["messages"]):
        raise RequestError("bad_request",
                           "'messages' must be a list of {role, content} with a user turn", rid)
    for key, kind in (("max_tokens", int), ("temperature", (int, float)), ("top_p", (int, float))):
        if key in request and (not isinstance(request[key], kind) or isinstance(request[key], bool)
                               or request[key] < 0):
            raise RequestError("bad_request", f"'{key}' must be a non-negative number", rid)
    stop = request.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError("bad_request", "'stop' must be a list of strings", rid)


def _valid_messages(messages) -> bool:
    return (isinstance(messages, list) and bool(messages)
            and all(isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                    and isinstance(m.get("content"), str) for m in messages)
            and any(m["role"] == "user" for m in messages))
