"""What stops a run cleanly: Ctrl+C / SIGTERM, a non-finite loss, and memory about to run out."""

import math
import signal
import threading

import mlx.core as mx
import psutil
from farol_core.device import backend
from farol_core.errors import FarolError


class StopRequest:
    """Turns SIGINT and SIGTERM into a flag the loop checks after each step, so the run can save
    a checkpoint and exit 0 instead of dying mid-step. A second signal still interrupts."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal_name: str | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.signal_name is not None:  # asked twice: stop now
            self.__exit__()
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name


def check_finite(loss: float, step: int, last_checkpoint: str | None,
                 what: str = "the training loss") -> None:
    """Raise with the step and what to try when the loss is NaN or infinite."""
    if math.isfinite(loss):
        return
    kept = f"the last good checkpoint ({last_checkpoint}) is kept" if last_checkpoint else \
        "no checkpoint had been saved yet"
    raise FarolError(
        f"{what} became {loss} at step {step}; the run stopped and {kept}",
        hint="lower training.learning_rate (e.g. by 10x), add warmup_steps, clip with "
             "training.max_grad_norm (e.g. 1.0), or check the data for empty or huge examples; "
             "run again to resume from the checkpoint, or with --fresh after changing the "
             "config",
    )


def memory_total(kind: str, info: dict, ram: int) -> tuple[int, str]:
    """(bytes, name) of the memory a `kind` backend trains in: the GPU's own on CUDA (`info`
    is mx.device_info()), else RAM, which a Mac's GPU shares."""
    if kind == "cuda" and info.get("memory_size"):
        return int(info["memory_size"]), "GPU memory"
    return ram, "RAM"


class MemoryGuard:
    """Caps MLX's memory at a fraction of RAM (of GPU memory on CUDA) and watches the process's
    resident memory.

    `mx.set_memory_limit` makes MLX wait for scheduled work before growing past the cap. A psutil
    watchdog thread samples the resident memory twice a second; after every step the loop checks
    the highest sample and MLX's peak, and stops with a checkpoint before the OS kills it.
    """

    INTERVAL_S = 0.5

    def __init__(self, fraction: float):
        self.total, self.memory_name = memory_total(backend(), mx.device_info(),
                                                    psutil.virtual_memory().total)
        self.limit = int(self.total * fraction)
        self.fraction = fraction
        self.process = psutil.Process()
        self.highest = 0
        mx.reset_peak_memory()  # from here MLX's peak is the run's: an earlier one is not
        self.previous = mx.set_memory_limit(max(self.limit, 1 << 30))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="farol-memory", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.INTERVAL_S)

    def sample(self) -> int:
        rss = self.process.memory_info().rss
        self.highest = max(self.highest, rss)
        return rss

    def exceeded(self) -> int | None:
        """The highest memory seen, in bytes, when it passed the limit; else None.

        MLX's own peak counts too: it keeps a spike that came and went between two samples,
        and on a Mac the Metal buffers, which the resident size may leave out."""
        self.sample()
        self.highest = max(self.highest, mx.get_peak_memory())
        return self.highest if self.highest > self.limit else None

    def error(self, rss: int, step: int, checkpoint: str) -> FarolError:
        return FarolError(
            f"memory use reached {rss / 1e9:.2f} GB at step {step}, above the limit of "
            f"{self.limit / 1e9:.2f} GB (training.memory_fraction={self.fraction} of "
            f"{self.total / 1e9:.1f} GB {self.memory_name}); saved {checkpoint} and stopped",
            hint="lower training.batch_size or max_seq_length, turn on grad_checkpoint, or "
                 "adapt fewer lora.num_layers (see `farol-train preflight`); run again to resume",
        )

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        mx.set_memory_limit(self.previous)
