"""The two ways the bridge generates: one job alone through mlx-lm's `stream_generate`, or
several jobs together through mlx-lm's `BatchGenerator` (continuous batching: jobs join and
leave the batch between decode steps)."""

from functools import cache

import mlx.core as mx
from farol_core.generate import answer_sampler, stream
from mlx_lm.generate import BatchGenerator
from mlx_lm.sample_utils import make_logits_processors

from farol_bridge.jobs import Cancelled, Job


@cache
def sampler_for(tokenizer, temperature: float, top_p: float):
    """One sampler per setting, shared, so a batch of equal settings samples in one call."""
    return answer_sampler(tokenizer, temperature, top_p)


def processors_for(job: Job) -> list:
    """Logits processors for the job's repetition penalty (none without one)."""
    return make_logits_processors(repetition_penalty=job.repetition_penalty)


def run_alone(model, tokenizer, job: Job) -> dict:
    """Generate one job with `stream_generate`; raises Cancelled when cancelled midway."""
    job.check()
    job.begin(batched=False)
    if job.seed is not None:
        mx.random.seed(job.seed)
    last = None
    for last in stream(model, tokenizer, job.tokens, job.max_tokens, job.temperature, job.top_p,
                       logits_processors=processors_for(job)):
        job.check()
        job.completion_tokens = last.generation_tokens
        if job.feed(last.text):
            break
    if last is None:
        return job.finish("length")
    return job.finish(last.finish_reason, last.prompt_tps, last.generation_tps)


class Batch:
    """Jobs decoding together. `add` jobs at any time; `step` until `jobs` is empty."""

    def __init__(self, model, tokenizer):
        self.tokenizer = tokenizer
        self.gen = BatchGenerator(model, stop_tokens=[[t] for t in tokenizer.eos_token_ids])
        self.jobs: dict[int, tuple[Job, object]] = {}  # uid -> (job, its detokenizer)

    def add(self, jobs: list[Job]) -> None:
        """Queue `jobs` for prefill; they join the decode batch on the next steps."""
        if not jobs:
            return
        try:
            uids = self.gen.insert([j.tokens for j in jobs], [j.max_tokens for j in jobs],
                                   samplers=[sampler_for(self.tokenizer, j.temperature, j.top_p)
                                             for j in jobs],
                                   logits_processors=[processors_for(j) for j in jobs])
        except Exception as e:
            for job in jobs:
                job.fail("internal", f"{type(e).__name__}: {e}")
            raise
        for uid, job in zip(uids, jobs, strict=True):
            job.begin(batched=True)
            self.jobs[uid] = (job, self.tokenizer.detokenizer)

    def step(self) -> None:
        """Drop cancelled jobs, decode one token for every job, finish the jobs that ended."""
        self._drop_cancelled()
        if not self.jobs:
            return
        for r in self.gen.next_generated():
            job, detokenizer = self.jobs[r.uid]
            job.completion_tokens += 1
            if r.finish_reason != "stop":  # "stop" here means an EOS token, never shown
                detokenizer.add_token(r.token)
            if r.finish_reason:
                detokenizer.finalize()
            if job.feed(detokenizer.last_segment) or r.finish_reason:
                self._end(r.uid, r.finish_reason)

    def _end(self, uid: int, reason: str | None) -> None:
        job, _ = self.jobs.pop(uid)
        if reason is None:  # a stop string ended it: mlx-lm still holds the sequence
            self.gen.remove([uid])
        job.finish(reason)

    def _drop_cancelled(self) -> None:
        for uid in [u for u, (job, _) in self.jobs.items() if job.cancelled]:
            job, _ = self.jobs.pop(uid)
            self.gen.remove([uid])
            job.fail("cancelled", job.cancelled)

    def fail_all(self, code: str, message: str) -> None:
        """Answer every job still in the batch with an error."""
        for job, _ in self.jobs.values():
            job.fail(code, message)
        self.jobs.clear()

    def close(self) -> None:
        self.gen.close()


def fail_cancelled(job: Job, error: Cancelled) -> dict:
    """The `cancelled` reply for a job stopped by a cancel or by SIGTERM."""
    return job.fail("cancelled", str(error))
