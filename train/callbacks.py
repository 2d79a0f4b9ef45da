"""What a training run tells its log, and how it stops when asked.

- :class:`ProgressCallback`: ``step 40/320 (12%), loss 1.234, lr 1.2e-04, 3,210 tokens/s, ETA 11 min``
  lines on stderr (replacing transformers' bare log dicts), for logs and schedulers without a terminal
  (where the progress bar is off) or with ``--json``.
- :class:`MetricsCallback`: every logged step appended to ``metrics.jsonl``; on resume the lines past
  the checkpoint's step are dropped first, so a step is never written twice.
- :func:`graceful_stop` + :class:`StopCallback`: SIGINT/SIGTERM during training finish the current
  optimizer step, save a checkpoint and stop; the run is then marked ``interrupted`` and the command
  exits 130 (SIGINT) or 143 (SIGTERM), like ``curate``. A second signal stops at once.
- :class:`LineProgress`: the same kind of line for loops outside the Trainer (``train eval``).

transformers is imported lazily (``TrainerCallback`` subclasses are built on first use).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from curate.core.errors import TamisError
from train.estimate import duration, record  # (duration: re-exported)


def _emit(line: str, stream=None) -> None:
    stream = stream or sys.stderr
    stream.write(line + "\n")
    stream.flush()


def progress_lines_wanted(as_json: bool = False) -> bool:
    """Plain progress lines when stderr is not a terminal (no progress bar there) or with --json."""
    return as_json or not sys.stderr.isatty()


class TrainInterrupted(TamisError):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint: exit 128 + the signal number."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


# ------------------------------------------------------------------ trainer callbacks


def _base():
    from transformers import TrainerCallback

    return TrainerCallback


def progress_line(
    state, logs: dict[str, Any], session_start: float, start_step: int, start_tokens: int
) -> str:
    """One progress line from a Trainer log entry (``state``: the TrainerState)."""
    step, total = state.global_step, state.max_steps or 0
    parts = [f"step {step:,}/{total:,} ({step / total:.0%})" if total else f"step {step:,}"]
    if "loss" in logs:
        parts.append(f"loss {logs['loss']:.4g}")
    if "learning_rate" in logs:
        parts.append(f"lr {logs['learning_rate']:.2e}")
    elapsed = time.time() - session_start
    tokens = getattr(state, "num_input_tokens_seen", 0) or 0
    if tokens > start_tokens and elapsed > 0:
        parts.append(f"{(tokens - start_tokens) / elapsed:,.0f} tokens/s")
    done = step - start_step
    if total and done > 0 and step < total:
        parts.append(f"ETA {duration((total - step) * elapsed / done)}")
    return ", ".join(parts)


def progress_callback(stream=None):
    """A TrainerCallback printing :func:`progress_line` on every train log and a line per evaluation."""

    class ProgressCallback(_base()):
        def __init__(self):
            self.t0 = time.time()
            self.start_step = 0
            self.start_tokens = 0

        def on_train_begin(self, args, state, control, **kw):
            # a resumed run: rates and the ETA count this session's steps only
            self.t0 = time.time()
            self.start_step = state.global_step
            self.start_tokens = getattr(state, "num_input_tokens_seen", 0) or 0

        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or not state.is_world_process_zero:
                return
            if "loss" in logs:
                _emit(progress_line(state, logs, self.t0, self.start_step, self.start_tokens), stream)
            elif "eval_loss" in logs:
                _emit(f"eval at step {state.global_step:,}: loss {logs['eval_loss']:.4g}", stream)

    return ProgressCallback()


def metrics_callback(path: Path):
    """A TrainerCallback appending every log entry to ``path`` (JSON lines, main process only)."""

    class MetricsCallback(_base()):
        def on_train_begin(self, args, state, control, **kw):
            if state.is_world_process_zero:
                drop_after(path, state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and state.is_world_process_zero:
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return MetricsCallback()


def drop_after(path: Path, step: int) -> int:
    """Remove the lines of ``path`` logged after ``step`` (a resumed run logs those steps again);
    returns how many were removed. Unparseable lines (a write cut by a kill) go too."""
    if not path.is_file():
        return 0
    keep, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ok = json.loads(line).get("step", 0) <= step
        except (ValueError, AttributeError):
            ok = False
        if ok:
            keep.append(line)
        else:
            dropped += 1
    if dropped:
        from curate.io import atomic_write_text  # polars: `train --help` imports this module

        atomic_write_text(path, "".join(line + "\n" for line in keep))
    return dropped


def umask_modes(folder: Path) -> None:
    """Give the files under ``folder`` that a library wrote private (0600: safetensors writes through a
    temporary file) the mode an ordinary ``open()`` gives (0666 less the umask), so other users and
    services (a model server, a shared team folder) can read the weights like every other output."""
    from curate.io.writers import _file_mode  # polars: `train --help` imports this module

    mode = _file_mode()
    for p in Path(folder).rglob("*"):
        if p.is_file() and not p.is_symlink() and (p.stat().st_mode & 0o777) == 0o600 and mode != 0o600:
            os.chmod(p, mode)


def modes_callback():
    """A TrainerCallback applying :func:`umask_modes` to every checkpoint when it is saved."""

    class ModesCallback(_base()):
        def on_save(self, args, state, control, **kw):
            if state.is_world_process_zero:
                checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if checkpoint.is_dir():
                    umask_modes(checkpoint)

    return ModesCallback()


class StopRequest:
    """Set by the signal handler of :func:`graceful_stop`, read by :func:`stop_callback`."""

    def __init__(self):
        self.signum: int | None = None
        self.in_training = False


def stop_callback(request: StopRequest):
    """Ends training after the current optimizer step with a checkpoint when a stop was requested."""

    class StopCallback(_base()):
        def on_train_begin(self, args, state, control, **kw):
            request.in_training = True

        def on_step_end(self, args, state, control, **kw):
            if request.signum is not None:
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_train_end(self, args, state, control, **kw):
            request.in_training = False

    return StopCallback()


@contextlib.contextmanager
def graceful_stop(request: StopRequest, stream=None):
    """SIGINT/SIGTERM handlers for the duration of a run: during training the first signal asks for a
    checkpoint and a stop (:func:`stop_callback`); before training starts, or on a second signal, the
    run stops at once (:class:`TrainInterrupted`). Only in the main thread (signals cannot be set
    elsewhere); the previous handlers are restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if request.in_training and request.signum is None:
            request.signum = signum
            if int(os.environ.get("RANK", "0")) == 0:
                _emit(f"{name}: stopping after this step and saving a checkpoint (again to stop now)", stream)
            return
        request.signum = request.signum or signum
        raise TrainInterrupted(signum, f"interrupted ({name})")

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, handler)
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def stop_on_signals():
    """For a whole `train` command: SIGINT/SIGTERM outside training (reading data, loading the model,
    evaluating) end it at once as :class:`TrainInterrupted`, a user error with exit 130/143 that the
    group reports like any other (one ``error:`` line, the JSON line with --json) instead of a
    traceback or a silent kill. :func:`graceful_stop` takes over during a run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise TrainInterrupted(signum, f"interrupted ({signal.Signals(signum).name})")

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# ------------------------------------------------------------------ loops outside the Trainer


class LineProgress:
    """``label: 120/400 rows (30%), 4.1 rows/s, ETA 1 min`` at most every ``every`` seconds (env
    ``TAMIS_PROGRESS_SECONDS``, default 10) and once at the end when any line was printed or the work
    took longer than ``every``."""

    def __init__(self, label: str, total: int, unit: str = "rows", every: float | None = None, stream=None):
        self.label, self.total, self.unit, self.stream = label, total, unit, stream
        self.every = float(os.environ.get("TAMIS_PROGRESS_SECONDS", 10)) if every is None else every
        self.done = 0
        self.t0 = self.last = time.time()
        self.printed = False

    def line(self) -> str:
        elapsed = max(time.time() - self.t0, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.label}: {self.done:,}/{self.total:,} {self.unit}"]
        if self.total:
            parts[0] += f" ({self.done / self.total:.0%})"
        parts.append(f"{rate:,.1f} {self.unit}/s")
        if 0 < self.done < self.total and rate > 0:
            parts.append(f"ETA {duration((self.total - self.done) / rate)}")
        return ", ".join(parts)

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.time()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            self.printed = True
            _emit(self.line(), self.stream)

    def close(self) -> None:
        if self.printed or time.time() - self.t0 >= self.every:
            _emit(self.line(), self.stream)


def speed_callback(key: dict[str, Any], device_kind: str, warned: bool, source: str, stream=None):
    """Measures this run's seconds per optimizer step and tokens/s: after its first few steps (3, or
    30 s) it prints the estimate for the whole run, with a warning when it exceeds an hour on CPU and
    no estimate was shown before training (``warned``); at the end the measurement goes into the
    throughput table that plans and pre-flights read (:mod:`train.estimate`)."""

    class SpeedCallback(_base()):
        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.time()
            self.start_step = state.global_step
            self.start_tokens = getattr(state, "num_input_tokens_seen", 0) or 0
            self.reported = False

        def _rates(self, state):
            steps = state.global_step - self.start_step
            elapsed = time.time() - self.t0
            tokens = (getattr(state, "num_input_tokens_seen", 0) or 0) - self.start_tokens
            return steps, elapsed, (tokens / elapsed if tokens > 0 and elapsed > 0 else None)

        def on_step_end(self, args, state, control, **kw):
            if self.reported or not state.is_world_process_zero:
                return
            steps, elapsed, tps = self._rates(state)
            if steps < 3 and elapsed < 30:
                return
            self.reported = True
            left = (state.max_steps - state.global_step) * elapsed / max(steps, 1)
            rate = f", {tps:,.0f} tokens/s" if tps else ""
            _emit(
                f"speed: {elapsed / max(steps, 1):.3g} s/step{rate} on {device_kind}; "
                f"{state.max_steps - state.global_step} steps left, about {duration(left)}",
                stream,
            )
            if device_kind == "cpu" and left > 3600 and not warned:
                _emit(
                    f"warning: this run needs about {duration(left)} more on CPU; Ctrl-C saves a checkpoint "
                    "and stops (the same command resumes); lower --epochs/--max-steps or use a GPU",
                    stream,
                )

        def on_train_end(self, args, state, control, **kw):
            if not state.is_world_process_zero:
                return
            steps, elapsed, tps = self._rates(state)
            if steps >= 2:
                record(key, elapsed / steps, tps, steps, source)

    return SpeedCallback()
