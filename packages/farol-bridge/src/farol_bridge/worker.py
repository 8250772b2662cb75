"""The generation worker: it runs on the main thread, owns the model and serves generate jobs.

One waiting job runs alone (mlx-lm's `stream_generate`, the fastest path for one answer). When
more than one is waiting they run together through mlx-lm's batch generation, and jobs that
arrive meanwhile join that batch between decode steps.
"""

import contextlib
import sys
import threading
from collections import deque

from farol_bridge.engine import Batch, fail_cancelled, run_alone
from farol_bridge.jobs import Cancelled, Job
from farol_bridge.protocol import RequestError

GATHER_S = 0.05  # the longest wait for the reader to finish queueing a burst of requests


class Worker:
    """Serves submitted jobs in `run` until closed; the other methods may be called from any
    thread, or from a signal handler in the thread that runs `run` (the lock is reentrant)."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.queue: deque[Job] = deque()
        self.active: dict = {}  # id -> Job, queued or running
        self.cond = threading.Condition(threading.RLock())
        self.closing = False
        self.reading = False  # the reader is queueing the lines of one read

    @contextlib.contextmanager
    def burst(self):
        """Queue the lines of one read as one burst: the worker waits for all of them, so
        requests sent together are batched together."""
        with self.cond:
            self.reading = True
        try:
            yield
        finally:
            with self.cond:
                self.reading = False
                self.cond.notify()

    def submit(self, job: Job) -> None:
        """Queue a job; RequestError if its id is in flight or the bridge is closing."""
        with self.cond:
            if self.closing:
                raise RequestError("shutting_down", "the bridge is shutting down", job.id)
            if job.id in self.active:
                raise RequestError("duplicate_id", f"id {job.id!r} is already in flight", job.id)
            job.done = self._forget
            self.active[job.id] = job
            self.queue.append(job)
            self.cond.notify()

    def cancel(self, target, reason: str = "cancelled by request") -> bool:
        """Cancel the job with id `target`; False when no such job is in flight."""
        with self.cond:
            job = self.active.get(target)
            if job:
                job.cancel(reason)
            return job is not None

    def close(self) -> None:
        """Take no more jobs; the thread ends once every queued job is answered."""
        with self.cond:
            self.closing = True
            self.cond.notify()

    def abort(self, reason: str) -> None:
        """Cancel every job in flight and close."""
        with self.cond:
            for job in self.active.values():
                job.cancel(reason)
        self.close()

    def _forget(self, job: Job) -> None:
        with self.cond:
            self.active.pop(job.id, None)

    def run(self) -> None:
        """Generate until closed and every queued job is answered."""
        while (jobs := self._take(block=True)) is not None:
            if len(jobs) == 1:
                self._alone(jobs[0])
            else:
                self._batch(jobs)

    def _take(self, block: bool) -> list[Job] | None:
        """The next jobs to start: one alone, or every batchable one; None once closed and idle."""
        with self.cond:
            while block and not self.queue and not self.closing:
                self.cond.wait()
            if block:
                self.cond.wait_for(lambda: not self.reading, timeout=GATHER_S)
            if not self.queue:
                return None if block else []
            return self._pop_batchable(alone_ok=block)

    def _pop_batchable(self, alone_ok: bool) -> list[Job]:
        head = self.queue[0]
        together = [j for j in self.queue if not j.solo]
        if alone_ok and (head.solo or len(together) < 2):
            return [self.queue.popleft()]
        self.queue = deque(j for j in self.queue if j.solo)
        return together

    def _alone(self, job: Job) -> None:
        try:
            run_alone(self.model, self.tokenizer, job)
        except Cancelled as e:
            fail_cancelled(job, e)
        except Exception as e:  # one failed answer must not end the bridge
            _log(f"generation failed: {type(e).__name__}: {e}")
            job.fail("internal", f"{type(e).__name__}: {e}")

    def _batch(self, jobs: list[Job]) -> None:
        batch = Batch(self.model, self.tokenizer)
        try:
            batch.add(_live(jobs))
            while batch.jobs:
                batch.step()
                batch.add(_live(self._take(block=False) or []))
        except Exception as e:
            _log(f"batch generation failed: {type(e).__name__}: {e}")
            batch.fail_all("internal", f"{type(e).__name__}: {e}")
        finally:
            batch.close()


def _live(jobs: list[Job]) -> list[Job]:
    """The jobs not cancelled while they waited; the cancelled ones are answered now."""
    for job in jobs:
        if job.cancelled:
            job.fail("cancelled", job.cancelled)
    return [j for j in jobs if not j.cancelled]


def _log(message: str) -> None:
    print(f"farol-bridge: {message}", file=sys.stderr, flush=True)
