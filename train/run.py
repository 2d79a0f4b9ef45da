"""One training run, end to end: data -> plan -> checks -> run directory -> model -> trainer -> saved
result, with safe resume.

The run directory is ``--output``, or by default ``runs/<stage>-<model>-<method>-<key>`` where the key
hashes the data fingerprint (file contents) and the key settings (:func:`run_key`). So re-running the
same command finds the same directory: an unfinished run resumes from its last complete checkpoint, a
finished one is reported and left untouched (never retrained or overwritten), and changed data or key
settings start a new directory. With an explicit ``--output`` whose run has other data or settings the
run is refused (``--force`` resumes an unfinished one anyway; a finished one is never overwritten).

Run directory layout::

    config.yaml          the resolved config (re-runnable with --config)
    run.json             data files (path, sha256, manifest), fingerprint, key settings, plan, check,
                         versions, status and final metrics
    checkpoint-N/        resume points (optimizer, scheduler, RNG, data position)
    final/               the result: adapter (PEFT methods) or model, with the tokenizer
    tensorboard/         TensorBoard event files
    metrics.jsonl        every logged step
    loss.png             the loss curve
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import re
import signal
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from curate.io import atomic_write_text
from train import data as D
from train import methods
from train.callbacks import (
    StopRequest,
    TrainInterrupted,
    graceful_stop,
    metrics_callback,
    modes_callback,
    progress_callback,
    progress_lines_wanted,
    speed_callback,
    stop_callback,
    umask_modes,
)
from train.check import CheckReport, run_checks
from train.compat import RUNTIME_TRAINER_FIELDS
from train.config import CommonConfig, dump_yaml
from train.dpo import pair_datasets
from train.estimate import speed_key
from train.mix import apply_mix, parse_mix
from train.plan import make_plan

STAGE_MODULES = {
    "sft": "train.sft",
    "dpo": "train.dpo",
    "rm": "train.rm",
    "kto": "train.kto",
    "pt": "train.pt",
    "orpo": "train.orpo",
    "rloo": "train.rloo",
    "grpo": "train.grpo",
}


def stage_hook(stage: str, name: str):
    """An optional function of a stage module (``preflight(cfg)``: checks that need no model;
    ``filter_rows(prep, cfg)``: drop rows this configuration cannot use; ``run_summary(log_history,
    run_dir)``: extra run.json fields), or None."""
    return getattr(importlib.import_module(STAGE_MODULES[stage]), name, None)


class RunError(RuntimeError):
    """A run that must not start (changed data on resume, failed checks...)."""


@dataclass
class Context:
    cfg: CommonConfig
    prep: D.Prepared
    tokenizer: Any
    tokenized: D.Tokenized
    plan: dict[str, Any]
    report: CheckReport
    device: Any
    eval_tokenized: D.Tokenized | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def prepare(cfg: CommonConfig, device=None, preflight: bool = True) -> Context:
    """Everything up to (not including) loading the model: data, tokenizer, plan, checks (``preflight``:
    the stage's checks of other inputs, e.g. the reward model; `train chain --dry-run` plans stages whose
    reward model an earlier stage has not trained yet)."""
    if not cfg.model:
        raise RunError("no model: pass --model DIR (a local model directory; nothing is downloaded)")
    stage = cfg.stage
    loss_on = getattr(cfg, "loss_on", "completion")
    if preflight and (check := stage_hook(stage, "preflight")) is not None:
        check(cfg)
    prep = D.prepare(cfg.data, stage, loss_on)
    mix = None
    if getattr(cfg, "mix", None):
        mix = apply_mix(prep, parse_mix(cfg.mix), stage, loss_on, cfg.seed)
    if (filter_rows := stage_hook(stage, "filter_rows")) is not None:
        filter_rows(prep, cfg)
    tok = D.load_tokenizer(cfg.model, cfg.template, cfg.trust_remote_code)
    tk = D.tokenize_all(tok, prep, loss_on)
    if cfg.max_samples is not None and len(tk.rows) > cfg.max_samples:
        tk = tk.subset(list(range(cfg.max_samples)))  # the first N rows, like LLaMA-Factory
    ev = None
    if cfg.eval_data:
        ev_prep = D.prepare(cfg.eval_data, stage, loss_on)
        ev = D.tokenize_all(tok, ev_prep, loss_on)
    elif cfg.val_split > 0:
        # split positions, so every per-row list (lengths, prompt lengths...) follows its row
        tr_idx, _, ev_idx, _ = D.split_eval(list(range(len(tk.rows))), tk.ids, cfg.val_split, cfg.seed)
        ev = tk.subset(ev_idx, keep_failures=False)
        tk = tk.subset(tr_idx)
    device = device or methods.detect_device()
    plan = make_plan(cfg, rows=len(tk.rows), lengths=tk.lengths, gpu=device.gpu)
    # rows TRL would drop silently at this max_length (reward pairs too long, DPO/KTO prompts that fill
    # it) are dropped here with a counted reason, and the plan is made for the rows that are left
    truncation = getattr(cfg, "truncation", "keep_start")
    overlong = D.drop_overlong(tk, stage, plan["max_length"], prep, truncation)
    if ev:
        D.drop_overlong(ev, stage, plan["max_length"], truncation=truncation)
    if overlong:
        plan = make_plan(
            cfg, rows=len(tk.rows), lengths=tk.lengths, gpu=device.gpu, max_length=plan["max_length"]
        )
        plan["dropped_overlong"] = overlong
    plan["eval_rows"] = len(ev.rows) if ev else 0
    if mix:
        plan["mix"] = mix
    report = run_checks(tok, prep, tk, plan["max_length"])
    return Context(cfg, prep, tok, tk, plan, report, device, ev)


def run_key(cfg: CommonConfig, fp: str) -> str:
    """8 hex digits naming a run: the stage, the model (resolved path), the data fingerprint and every
    setting that changes the result (:func:`key_settings`). Everything a resume checks is in it, so the same command always maps to the same
    directory and a changed one never lands in (and is refused by) an old run."""
    model = str(cfg.model)
    if Path(model).exists():
        model = str(Path(model).resolve())
    blob = json.dumps(
        {"stage": cfg.stage, "data": fp, **key_settings(cfg), "model": model}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def default_run_dir(cfg: CommonConfig, fp: str) -> Path:
    """``runs/<stage>-<model>-<method>-<key>``: deterministic, so re-running the same command resumes."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(str(cfg.model)).name or "model")
    return Path("runs") / f"{cfg.stage}-{name}-{cfg.method}-{run_key(cfg, fp)}"


def key_settings(cfg: CommonConfig) -> dict[str, Any]:
    """Every setting that changes what is trained (all but :attr:`CommonConfig.RUNTIME_SETTINGS`)."""
    out = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in cfg.RUNTIME_SETTINGS}
    out["trainer"] = {k: v for k, v in out.get("trainer", {}).items() if k not in RUNTIME_TRAINER_FIELDS}
    # settings added later are left out at their defaults, so earlier runs keep their key and resume
    for name, unset in (("trainer", {}), ("max_samples", None), ("mix", [])):
        if out.get(name) == unset:
            out.pop(name, None)
    return out


def last_checkpoint(run_dir: Path) -> Path | None:
    cps = [p for p in run_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    cps = [p for p in cps if (p / "trainer_state.json").is_file()]  # a checkpoint killed mid-write is skipped
    return max(cps, key=lambda p: int(p.name.split("-")[-1])) if cps else None


def check_resume(run_dir: Path, cfg: CommonConfig, fp: str) -> tuple[Path | None, list[str]]:
    """(checkpoint to resume from, what changed). Raises RunError on changes unless --force, and on
    changes to a finished run even with --force (a finished run is never overwritten)."""
    meta_path = run_dir / "run.json"
    if not meta_path.is_file():
        # (hidden temporary files of an atomic write in progress, and config.yaml, are tamis's own)
        if run_dir.exists() and any(
            not p.name.startswith(".") and p.name != "config.yaml" for p in run_dir.iterdir()
        ):
            raise RunError(f"{run_dir} exists and is not a tamis run directory; choose another --output")
        return None, []
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    changes = []
    if meta.get("stage") != cfg.stage:
        changes.append(f"stage {meta.get('stage')} -> {cfg.stage}")
    if meta.get("data_fingerprint") != fp:
        changes.append("training data changed (fingerprint " + f"{meta.get('data_fingerprint')} -> {fp})")
    old = meta.get("key_settings", {})
    for k, v in key_settings(cfg).items():
        if k in old and old[k] != v:
            changes.append(f"{k}: {old[k]!r} -> {v!r}")
    if changes and meta.get("status") == "done":
        raise RunError(
            f"{run_dir} is a finished run with other settings ({'; '.join(changes)}); it is not "
            "overwritten, even with --force. Use a new --output (or delete it) to train again."
        )
    if changes and not cfg.force:
        raise RunError(
            f"{run_dir} was started with other settings; refusing to resume ({'; '.join(changes)}). "
            "Use a new --output, or --force to resume anyway."
        )
    return last_checkpoint(run_dir), changes


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:
            pass
    return out


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=1, default=str))


def build_datasets(ctx: Context):
    stage = ctx.cfg.stage
    max_len = ctx.plan["max_length"]
    tk = ctx.tokenized
    if stage == "pt":
        # documents longer than max_length are split into max_length pieces, not cut
        rows, _, split = D.chunk(tk.rows, tk.ids, max_len)
        ev = None
        if ctx.eval_tokenized and ctx.eval_tokenized.rows:
            erows, _, _ = D.chunk(ctx.eval_tokenized.rows, ctx.eval_tokenized.ids, max_len)
            ev = D.to_dataset(erows) if erows else None
        if not rows:
            raise RunError("no text left to train on")
        ctx.extra.update(truncated=0, split_documents=split, trained_rows=len(tk.rows), sequences=len(rows))
        return D.to_dataset(rows), ev
    if stage == "sft":
        rows, _, truncated = D.truncate(tk.rows, tk.ids, max_len, ctx.prep)
        ev = None
        if ctx.eval_tokenized and ctx.eval_tokenized.rows:
            erows, _, _ = D.truncate(ctx.eval_tokenized.rows, ctx.eval_tokenized.ids, max_len, ctx.prep)
            ev = D.to_dataset(erows) if erows else None
        if not rows:
            raise RunError(f"no row keeps a trained token within max_length {max_len}")
        ctx.extra["truncated"] = truncated
        ctx.extra["trained_rows"] = len(rows)
        return D.to_dataset(rows), ev
    if stage == "dpo" and tk.pairs:
        return pair_datasets(ctx)
    if stage == "kto":
        # KTOTrainer reads its dataset in order (its KL term pairs each row with a neighbour's prompt):
        # mix the rows with the run's seed so a pair's good and bad answers are not neighbours
        tk = D.shuffled(tk, ctx.cfg.seed)
    etk = ctx.eval_tokenized
    if stage == "kto" and etk:
        etk = D.shuffled(etk, ctx.cfg.seed)
    train = D.to_dataset(tk.rows)
    ev = D.to_dataset(etk.rows) if etk and etk.rows else None
    ctx.extra["trained_rows"] = len(tk.rows)
    return train, ev


def plot_loss(log_history: list[dict[str, Any]], out: Path, title: str) -> Path | None:
    steps = [h["step"] for h in log_history if "loss" in h]
    loss = [h["loss"] for h in log_history if "loss" in h]
    ev = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if not steps:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, loss, label="train loss")
    if ev:
        ax.plot([s for s, _ in ev], [v for _, v in ev], "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def train(ctx: Context, console=None, callbacks=(), progress: bool | None = None) -> Path:
    """Run (or resume) the training described by ``ctx``; return the run directory.

    ``progress``: print ``step N/M, loss, lr, tokens/s, ETA`` lines on stderr (default: when stderr is
    not a terminal). SIGINT/SIGTERM save a checkpoint, mark the run ``interrupted`` and raise
    :class:`~train.callbacks.TrainInterrupted` (exit 130/143); any other exception marks it ``failed``."""
    cfg, plan = ctx.cfg, ctx.plan
    fp = D.fingerprint(ctx.prep.files)
    run_dir = Path(cfg.output) if cfg.output else default_run_dir(cfg, fp)
    resume_from, changes = check_resume(run_dir, cfg, fp)
    meta_path = run_dir / "run.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("status") == "done":  # (with changes check_resume has refused)
            if console:
                console.print(
                    f"[green]{run_dir} already finished; nothing to do[/green] (it is not overwritten: "
                    "use a new --output, or delete it, to train again)",
                    soft_wrap=True,
                )
            return run_dir
    if not ctx.tokenized.rows:
        raise RunError(
            f"no rows left to train on ({'; '.join(f'{n} x {r}' for r, n in ctx.prep.dropped.items()) or 'none usable'})"
        )
    train_ds, eval_ds = build_datasets(ctx)  # before anything is written: an empty dataset stops here
    run_dir.mkdir(parents=True, exist_ok=True)
    if console and resume_from:
        console.print(f"resuming from [bold]{resume_from}[/bold]", soft_wrap=True)
    elif console and not cfg.output:
        console.print(f"run directory: [bold]{run_dir}[/bold]", soft_wrap=True)
    if console and changes:
        console.print(f"[yellow]--force: resuming despite changes: {'; '.join(changes)}")

    meta = {
        "stage": cfg.stage,
        "status": "running",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": str(Path(cfg.model).resolve()) if Path(cfg.model).exists() else cfg.model,
        "method": cfg.method,
        "data": ctx.prep.files,
        "eval_data": cfg.eval_data,
        "data_fingerprint": fp,
        "key_settings": key_settings(cfg),
        "plan": plan,
        "check": ctx.report.as_dict(),
        "versions": versions(),
        "device": ctx.device.kind,
        "resumed_from": str(resume_from) if resume_from else None,
    }

    request = StopRequest()
    t0 = time.time()
    try:
        # (inside the try: a signal right after run.json is written still marks the run interrupted)
        with graceful_stop(request):
            if is_main_process():
                # run.json first: another rank checking the directory meanwhile sees a run, not a foreign one
                write_json(meta_path, meta)
                atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
            result, trainer, elapsed = _fit(
                ctx,
                run_dir,
                resume_from,
                meta,
                callbacks,
                train_ds,
                eval_ds,
                request,
                progress_lines_wanted() if progress is None else progress,
            )
    except BaseException as exc:
        interrupted = isinstance(exc, (TrainInterrupted, KeyboardInterrupt))
        _mark_stopped(meta_path, meta, "interrupted" if interrupted else "failed", exc, time.time() - t0)
        if isinstance(exc, KeyboardInterrupt):
            raise TrainInterrupted(signal_number("SIGINT"), "interrupted (SIGINT)") from None
        raise
    if request.signum is not None:  # stopped after a checkpoint: resumable, not finished
        cp = last_checkpoint(run_dir)
        _mark_stopped(meta_path, meta, "interrupted", None, elapsed, trainer, cp)
        raise TrainInterrupted(
            request.signum,
            f"interrupted ({signal_name(request.signum)}) at step {trainer.state.global_step}: checkpoint "
            f"{cp}; run the same command again to resume",
        )
    final = run_dir / "final"
    if is_main_process():
        plot_loss(trainer.state.log_history, run_dir / "loss.png", f"{cfg.stage} {cfg.method}")
        logs = [h for h in trainer.state.log_history if "loss" in h]
        meta.update(
            status="done",
            finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            seconds=round(elapsed, 2),
            global_step=trainer.state.global_step,
            train_metrics=result.metrics,
            first_loss=logs[0]["loss"] if logs else None,
            last_loss=logs[-1]["loss"] if logs else None,
            trained_rows=ctx.extra.get("trained_rows"),
            truncated_rows=ctx.extra.get("truncated"),
            final=str(final),
        )
        if "sequences" in ctx.extra:
            meta.update(sequences=ctx.extra["sequences"], split_documents=ctx.extra.get("split_documents"))
        if (summary := stage_hook(cfg.stage, "run_summary")) is not None:
            meta.update(summary(trainer.state.log_history, run_dir))
        write_json(meta_path, meta)
    ctx.extra["trainer"] = trainer
    return run_dir


def signal_number(name: str) -> int:
    return int(getattr(signal, name))


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _mark_stopped(meta_path: Path, meta, status: str, exc, seconds: float, trainer=None, checkpoint=None):
    """run.json of a run that did not finish: ``interrupted`` (resumable from its last checkpoint) or
    ``failed`` (with the error). Never marks a run that is not ours (no run.json written yet)."""
    if not is_main_process() or not meta_path.is_file():
        return
    meta.update(status=status, stopped=time.strftime("%Y-%m-%dT%H:%M:%S%z"), seconds=round(seconds, 2))
    if exc is not None:
        meta["error"] = f"{type(exc).__name__}: {exc}"
    if trainer is not None:
        meta["global_step"] = trainer.state.global_step
        logs = [h for h in trainer.state.log_history if "loss" in h]
        meta["last_loss"] = logs[-1]["loss"] if logs else None
    if checkpoint is not None:
        meta["checkpoint"] = str(checkpoint)
    write_json(meta_path, meta)


def _fit(ctx: Context, run_dir: Path, resume_from, meta, callbacks, train_ds, eval_ds, request, progress):
    """Load the model, train, save ``final/`` (every rank takes part in saving sharded models); a stop
    request (signal) ends training after a checkpoint, without ``final/``."""
    cfg, plan = ctx.cfg, ctx.plan
    import torch
    from transformers import set_seed

    set_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model, minfo = methods.load_model(cfg, cfg.stage, ctx.device)
    meta["method_info"] = minfo
    pissa_init = None
    if cfg.method == "pissa":
        pissa_init = run_dir / "pissa_init"
        if is_main_process() and not (pissa_init / "adapter_config.json").is_file():
            methods.save_pissa_init(model, pissa_init)
    stage_mod = importlib.import_module(STAGE_MODULES[cfg.stage])

    trainer = stage_mod.build_trainer(
        cfg,
        plan,
        model,
        ctx.tokenizer,
        train_ds,
        eval_ds,
        run_dir,
        ctx.device,
        [
            metrics_callback(run_dir / "metrics.jsonl"),
            stop_callback(request),
            modes_callback(),
            speed_callback(
                speed_key(cfg, plan, ctx.device.kind),
                ctx.device.kind,
                warned=bool((plan.get("time") or {}).get("warn")),
                source=f"run {run_dir}",
            ),
            *callbacks,
        ],
    )
    if progress:
        from transformers import PrinterCallback

        # the step/total, tokens/s and ETA line replaces transformers' bare log dicts
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(progress_callback())
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    elapsed = time.time() - t0
    if request.signum is not None:
        return result, trainer, elapsed
    methods.save_trained(
        trainer, ctx.tokenizer, run_dir / "final", cfg.method, pissa_init, base_model=meta["model"]
    )
    if is_main_process():
        umask_modes(run_dir / "final")
    return result, trainer, elapsed
