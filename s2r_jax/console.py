"""What a person sees: a few clear lines per phase on the terminal; library logs in a file.

`setup(log_file, verbose)` sends absl/Python logging (orbax, TFDS, clu, our own INFO
lines) to `log_file` (the workdir's `log.txt`) and keeps only warnings and errors on the
terminal; `verbose=True` brings everything back to the terminal. TFDS's progress bars are
switched off. `say` prints one line, on host 0 only. No tensorflow here.
"""
from __future__ import annotations

import contextlib
import logging as pylogging
import os
import sys
import time

import jax
from absl import logging

_STATE = {"file_handler": None, "quiet": 0}


def setup(log_file: str | None = None, verbose: bool = False) -> None:
    """Route library logs: everything to `log_file` (if given), the terminal only warnings (all if verbose)."""
    root = pylogging.getLogger()
    root.setLevel(pylogging.INFO)
    logging.set_verbosity(logging.INFO)
    absl_handler = logging.get_absl_handler()
    absl_handler.setLevel(pylogging.INFO if verbose else pylogging.WARNING)
    for f in list(absl_handler.filters):
        if isinstance(f, _LibraryWarnings):
            absl_handler.removeFilter(f)
    if not verbose:
        absl_handler.addFilter(_LibraryWarnings())
    if _STATE["file_handler"] is not None:
        root.removeHandler(_STATE["file_handler"])
        _STATE["file_handler"].close()
        _STATE["file_handler"] = None
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handler = pylogging.FileHandler(log_file)
        handler.setFormatter(pylogging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(pylogging.INFO)
        root.addHandler(handler)
        _STATE["file_handler"] = handler
    try:
        import tensorflow_datasets as tfds  # only where it is installed
        tfds.disable_progress_bar()
    except ImportError:
        pass


class _LibraryWarnings(pylogging.Filter):
    """Keeps orbax's and TFDS's routine warnings (e.g. "Given directory is read only" on every
    restore) off the terminal; they still reach the log file."""

    NOISY = ("/orbax/", "/tensorflow_datasets/", "/etils/")

    def filter(self, record):
        return record.levelno >= pylogging.ERROR or not any(n in record.pathname for n in self.NOISY)


def log_file(workdir: str) -> str:
    """The log file of this process in `workdir`: log.txt on host 0, log.process<i>.txt on the
    others (several hosts may share the workdir)."""
    i = jax.process_index()
    return os.path.join(workdir, "log.txt" if i == 0 else f"log.process{i}.txt")


def say(message: str) -> None:
    """One line on the terminal (host 0 only), also written to the log file."""
    logging.info("%s", message)
    if jax.process_index() == 0 and not _STATE["quiet"]:
        print(message, flush=True)


@contextlib.contextmanager
def quiet():
    """Within it, `say` writes to the log file only: for a caller that prints its own one-line
    summary of a run (the demo's repeated seeds)."""
    _STATE["quiet"] += 1
    try:
        yield
    finally:
        _STATE["quiet"] -= 1


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """'step 120/1000 (12%) loss 0.1234 ... 2.31 steps/s, ETA 6m21s' lines, one per log interval."""

    def __init__(self, first_step: int, num_steps: int, what: str = "step"):
        self.num_steps, self.what = num_steps, what
        self._last_step, self._last_time = first_step, time.perf_counter()

    def line(self, step: int, scalars: dict) -> str:
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_step, self._last_time = step, now
        shown = " ".join(f"{k} {v:.4g}" for k, v in scalars.items())
        eta = duration((self.num_steps - step) / rate) if rate > 0 else "?"
        return (f"{self.what} {step}/{self.num_steps} ({100 * step / self.num_steps:.0f}%) {shown}  "
                f"{rate:.2f} steps/s, ETA {eta}")


def error(message: str) -> None:
    """An error line for the user (every host, stderr)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
