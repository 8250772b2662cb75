"""One generate request on its way through the bridge: its settings, its text so far, its replies.

Both generation paths (one request alone, or several in a batch) feed tokens' text into a Job;
the Job cuts at stop strings, streams what can no longer change, and writes the final line.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from farol_core.generate import find_stop, visible

from farol_bridge import protocol


class Cancelled(Exception):
    """The job was cancelled (by a `cancel` request, or by SIGTERM)."""


@dataclass
class Job:
    """A validated generate request, with the prompt already tokenized and the limits applied."""

    id: object
    tokens: list[int]
    max_tokens: int
    emit: Callable[[dict], None]
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    cancelled: str | None = None  # the reason, once cancelled
    done: Callable[["Job"], None] | None = None  # told just before the final line goes out
    text: str = ""
    completion_tokens: int = 0
    finish_reason: str | None = None
    _sent: int = 0
    received: float = field(default_factory=time.perf_counter)
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    queued_s: float = 0.0
    batched: bool = False

    @property
    def solo(self) -> bool:
        """Seeded sampling must run alone: a batch shares one random stream."""
        return self.seed is not None and self.temperature > 0

    def cancel(self, reason: str = "cancelled by request") -> None:
        self.cancelled = self.cancelled or reason

    def check(self) -> None:
        """Raise Cancelled if someone cancelled this job."""
        if self.cancelled:
            raise Cancelled(self.cancelled)

    def feed(self, piece: str) -> bool:
        """Add one token's text; True when a stop string ended the answer."""
        self.first_token_at = self.first_token_at or time.perf_counter()
        self.text += visible(piece)
        cut = find_stop(self.text, self.stop)
        if cut is not None:
            self.text, self.finish_reason = self.text[:cut], "stop"
        self._stream_upto(self._settled_length())
        return cut is not None

    def _settled_length(self) -> int:
        # Hold back trailing space and any tail that could still grow into a stop string.
        end = len(self.text.rstrip())
        head = self.text[:end]
        hold = max((k for s in self.stop for k in range(1, len(s)) if head.endswith(s[:k])),
                   default=0)
        # The space before a held tail is trailing too: a stop string may still cut it off.
        return len(head[:end - hold].rstrip())

    def _stream_upto(self, end: int) -> None:
        start = max(self._sent, len(self.text) - len(self.text.lstrip()))
        if self.stream and end > start:
            self.emit(protocol.token(self.id, self.text[start:end]))
            self._sent = end

    def begin(self, batched: bool) -> None:
        """Mark the moment generation starts (the time before it was spent queued)."""
        self.queued_s = time.perf_counter() - self.received
        self.started, self.batched = time.perf_counter(), batched

    def finish(self, reason: str | None, prompt_tps: float | None = None,
               generation_tps: float | None = None) -> dict:
        """Stream the rest, then emit and return the final reply."""
        self.finish_reason = self.finish_reason or reason or "length"
        lead = len(self.text) - len(self.text.lstrip())
        self.text = self.text.strip()
        # `_sent` counted the leading whitespace that strip() just removed.
        self._sent = min(max(self._sent - lead, 0), len(self.text))
        self._stream_upto(len(self.text))
        reply = protocol.ok(self.id, response=self.text, finish_reason=self.finish_reason,
                            usage={"prompt_tokens": len(self.tokens),
                                   "completion_tokens": self.completion_tokens},
                            timing=self._timing(prompt_tps, generation_tps))
        self._emit_last(reply)
        return reply

    def _timing(self, prompt_tps, generation_tps) -> dict:
        now = time.perf_counter()
        first = self.first_token_at or now
        if prompt_tps is None:
            prompt_tps = len(self.tokens) / max(first - self.started, 1e-9)
        if generation_tps is None:
            generation_tps = self.completion_tokens / max(now - first, 1e-9)
        return {"prompt_tps": round(prompt_tps, 3), "generation_tps": round(generation_tps, 3),
                "seconds": round(now - self.started, 6), "queue_seconds": round(self.queued_s, 6),
                "batched": self.batched}

    def fail(self, code: str, message: str) -> dict:
        """Emit and return an error reply for this job."""
        reply = protocol.error(self.id, code, message)
        self._emit_last(reply)
        return reply

    def _emit_last(self, reply: dict) -> None:
        # The id is free again before the client sees the reply, so it may reuse it at once.
        if self.done:
            self.done(self)
        self.emit(reply)
