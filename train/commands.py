"""The `train` sub-commands. Options are generated from the typed configs in :mod:`train.config`
(:mod:`train.options`), so `--help` lists every setting with its default; with no DATA a command takes
the newest curated file that suits it (:mod:`train.discover`). Everything not on the ``--help`` path
(the ML libraries, the data and run modules) is imported inside the commands."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from curate.core.errors import Failed, UsageError
from train.callbacks import progress_lines_wanted
from train.config import STAGES
from train.discover import auto_config, find_curated
from train.options import common_options, config_options, resolve_config, stderr_console

# ------------------------------------------------------------------ launch


def _maybe_launch(cfg) -> int | None:
    """Re-run this command under `accelerate launch` for --num-processes > 1; returns its exit code."""
    if cfg.num_processes <= 1 or os.environ.get("TAMIS_LAUNCHED"):
        return None
    from train.launch import LaunchError, accelerate_command

    try:
        cmd, env = accelerate_command(cfg, sys.argv[1:])
    except LaunchError as e:
        raise UsageError(str(e)) from None
    click.echo("launching: " + " ".join(cmd), err=True)
    return subprocess.call(cmd, env=env)


# ------------------------------------------------------------------ stage commands


def _stage_command(stage: str):
    @click.command(name=stage, context_settings={"show_default": False})
    @common_options
    @config_options(stage)
    @click.option("--dry-run", is_flag=True, help="Print the plan and the checks, then exit.")
    def cmd(data, config_file, sets, as_json, dry_run, **kwargs):
        console = stderr_console()
        config_file = auto_config(stage, config_file, console)
        cfg = resolve_config(stage, config_file, kwargs, data, sets, console)
        if not cfg.data:
            found = find_curated(stage, Path.cwd())
            if found is None:
                raise click.UsageError(
                    f"no data given and no curated file for `train {stage}` in {Path.cwd()}; pass DATA or --data"
                )
            console.print(
                f"no data given: using [bold]{found}[/bold] (newest curated file with {stage} rows)",
                soft_wrap=True,  # a path must stay copy-pasteable
            )
            cfg.data = [str(found)]
        rc = _maybe_launch(cfg)
        if rc is not None:
            sys.exit(rc)
        run_stage(cfg, console, as_json=as_json, dry_run=dry_run)

    # (click read the help from the docstring when the decorator ran: set the command's help itself)
    cmd.help = {
        "sft": "Supervised fine-tuning on curated Q&A (SFTTrainer).\n\nBy default only the final answer is trained "
        "(--loss-on completion); `assistant` trains every assistant turn, `all` every token.",
        "dpo": "Direct preference optimisation on curated pairs (DPOTrainer).\n\nWith an adapter method the reference "
        "model is the adapter-disabled model (no second copy in memory).",
        "rm": "Train a reward model on curated pairs (RewardTrainer); `curate score --reward-model RUN/final` uses it.",
        "kto": "KTO on unpaired answers labelled good/bad (or on pairs: chosen = good, rejected = bad).",
        "pt": "Continued pretraining on plain text (kind=text rows; Q&A rows become text), packed.",
        "orpo": "ORPO on curated pairs: SFT and preference in one loss, no reference model "
        "(trl.experimental ORPOTrainer).",
        "rloo": "RLHF with RLOO: sample completions per prompt, score them with a reward model from `train rm` "
        "and/or rule rewards (--reward exact|contains|format|length:N), push the policy towards the better "
        "ones (KL to the starting model).\n\nThe RLHF stage of tamis: PPO is not offered (TRL removed it; "
        "RLOO needs no value model and matches PPO on RLHF benchmarks).",
        "grpo": "GRPO: like `train rloo` with the group mean (and std) as baseline; rule rewards such as exact "
        "answer match on CoT rows from `curate augment --cot` are its usual use.",
    }[stage]
    return cmd


def _seconds() -> float:
    """Seconds since the `train` command started (the group records it; 0 outside the CLI)."""
    ctx = click.get_current_context(silent=True)
    started = ctx.meta.get("train.started") if ctx else None
    return round(time.time() - started, 2) if started else 0.0


def _plan_time(ctx, console, measure: bool):
    """The plan's wall-time estimate (None when neither measured nor timed); a timing that fails is a
    note, never an error of the plan."""
    from train.timing import plan_time

    try:
        return plan_time(ctx, measure=measure)
    except Exception as e:  # e.g. a model too large for this machine: the plan itself still stands
        console.print(
            f"[yellow]note:[/yellow] wall time not measured ({type(e).__name__}: {e})", soft_wrap=True
        )
        return None


def json_line(summary: dict[str, Any], exit_code: int = 0) -> None:
    """The one --json line of a command that ran to its end (errors print theirs in the group)."""
    click.echo(
        json.dumps(
            {**summary, "exit_code": exit_code, "seconds": _seconds()}, ensure_ascii=False, default=str
        )
    )


def run_stage(
    cfg, console, as_json: bool = False, dry_run: bool = False, callbacks=(), progress: bool | None = None
) -> dict[str, Any]:
    """Prepare, check, plan and train one stage. Errors are raised (the `train` group prints one
    ``error:`` line and, with --json, one JSON line with ``exit_code`` and ``seconds``): unusable data or
    settings exit 2, a run that cannot start or complete 1, SIGINT/SIGTERM 130/143 (after a checkpoint).
    ``progress``: step lines on stderr (default: with --json or without a terminal)."""
    from train.check import render_report
    from train.data import DataError
    from train.methods import MethodError
    from train.plan import render_plan
    from train.run import RunError, is_main_process, prepare, train

    try:
        ctx = prepare(cfg)
    except (DataError, RunError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    # a CPU run longer than an hour is announced before it starts when this machine measured the speed
    # of the same settings before; otherwise the run reports it after its first steps
    ctx.plan["time"] = _plan_time(ctx, console, measure=False)
    if is_main_process():
        render_plan(ctx.plan, console)
        render_report(ctx.report, console)
    summary: dict[str, Any] = {"stage": cfg.stage, "plan": ctx.plan, "check": ctx.report.as_dict()}
    if ctx.report.failed and not cfg.skip_check:
        # exit 1 ("checks failed"), as `train chain` says it: the group prints the error and JSON lines
        raise Failed("pre-flight checks failed; fix the data or template, or pass --skip-check")
    if dry_run:
        if as_json:
            json_line({**summary, "status": "dry run"})
        return summary
    try:
        # the Trainer prints its log lines on stdout: keep stdout for --json only
        with contextlib.redirect_stdout(sys.stderr):
            run_dir = train(
                ctx,
                console,
                callbacks=callbacks,
                progress=progress_lines_wanted(as_json) if progress is None else progress,
            )
    except RunError as e:
        raise Failed(str(e)) from None
    except (MethodError, DataError) as e:
        raise UsageError(str(e)) from None
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    summary.update(run_dir=str(run_dir), status=meta.get("status"), last_loss=meta.get("last_loss"))
    if is_main_process():
        console.print(
            f"[green]done[/green]: {run_dir}/final  (loss {meta.get('first_loss')} -> {meta.get('last_loss')}, "
            f"{meta.get('global_step')} steps, {meta.get('seconds')} s)"
        )
        if as_json:
            json_line(summary)
    return summary


sft = _stage_command("sft")
dpo = _stage_command("dpo")
rm = _stage_command("rm")
kto = _stage_command("kto")
pt = _stage_command("pt")
orpo = _stage_command("orpo")
rloo = _stage_command("rloo")
grpo = _stage_command("grpo")


# ------------------------------------------------------------------ plan / check


@click.command()
@common_options
@config_options("sft")
@click.option(
    "--stage", type=click.Choice(STAGES), default="sft", show_default=True, help="Stage to plan for."
)
@click.option("--rows", type=int, help="Plan for this many rows instead of reading data.")
@click.option(
    "--measure/--no-measure",
    default=True,
    show_default=True,
    help="Time a few training steps of the model on the data for the wall-time and tokens/s estimate "
    "(skipped when an earlier run with the same settings measured them).",
)
@click.option(
    "--name", "model_name", help="Only show the anatomy of this model name (e.g. Qwen1.5-14B-Chat-GPTQ-Int4)."
)
@click.option(
    "--gpu/--cpu", "gpu", default=None, help="Device for the memory estimate (default: this machine)."
)
@click.option(
    "--table",
    is_flag=True,
    help="Print the epochs-by-dataset-size table of --stage (SFT: the source article's; interpolated).",
)
def plan(data, config_file, sets, as_json, stage, rows, model_name, gpu, table, measure, **kwargs):
    """Plan a run: epochs, learning rate, batch, max_length, memory, wall time and tokens/s, and the
    model-name anatomy.

    The time comes from earlier runs of the same model and settings on this machine, or (--measure,
    the default with DATA) from timing a few steps of the real model on the real rows; --no-measure
    reads only the data and the tokenizer, never the weights."""
    from rich.table import Table

    from train import plan as P

    console = stderr_console()
    out: dict[str, Any] = {}
    if table:
        t = Table(title=f"train {stage}: epochs by dataset size ({P.EPOCH_REASONS[stage]})")
        t.add_column("rows", justify="right")
        t.add_column("epochs", justify="right")
        sizes = [50, 100, 200, 500, 1000, 2000, 5000, 10_000, 50_000, 100_000, 1_000_000]
        out["epochs_table"] = {n: P.planned_epochs(n, stage) for n in sizes}
        for n, e in out["epochs_table"].items():
            t.add_row(f"{n:,}", f"{e:g}")
        console.print(t)
    if model_name:
        an = P.anatomy(model_name)
        out["anatomy"] = an.as_dict()
        out["advice"] = P.advice(an, stage)
        console.print(
            f"[bold]{an.name}[/bold]: series {an.series}, version {an.version or '-'}, size {an.size or '-'}, "
            f"{an.finetune}, quantisation {an.quantization or 'none'}"
            + (f" {an.bits}-bit" if an.bits else "")
        )
        for tip in out["advice"]:
            console.print(f"  - {tip}")
    if table or model_name:
        if not (data or kwargs.get("data_opt") or rows):
            if as_json:
                json_line(out)
            return
    # the stage's config class, with the sft-generated flags that apply
    config_file = auto_config(stage, config_file, console)
    cfg = resolve_config(stage, config_file, kwargs, data, sets, console, flag_stage="sft")
    if rows is not None:
        plan_d = P.make_plan(cfg, rows=rows, lengths=None, gpu=bool(gpu))
    else:
        if not cfg.data:
            found = find_curated(stage, Path.cwd())
            if not found:
                raise click.UsageError("give DATA, --rows N, --name NAME or --table")
            console.print(f"no data given: using [bold]{found}[/bold]", soft_wrap=True)
            cfg.data = [str(found)]
        from train.data import DataError
        from train.methods import Device
        from train.run import RunError, prepare

        dev = None
        if gpu is not None:
            dev = Device("cuda" if gpu else "cpu", bool(gpu))
        try:
            ctx = prepare(cfg, device=dev, preflight=False)
        except (DataError, RunError, FileNotFoundError) as e:
            raise UsageError(str(e)) from None
        plan_d = ctx.plan
        plan_d["time"] = _plan_time(ctx, console, measure=measure and (gpu is None or gpu == ctx.device.gpu))
    P.render_plan(plan_d, console)
    out["plan"] = plan_d
    if as_json:
        json_line(out)


@click.command()
@common_options
@config_options("sft")
@click.option(
    "--stage", type=click.Choice(STAGES), default="sft", show_default=True, help="Stage the data is for."
)
@click.option(
    "--preview",
    "preview_rows",
    type=int,
    default=2,
    show_default=True,
    help="Rows to preview token by token.",
)
def check(data, config_file, sets, as_json, stage, preview_rows, **kwargs):
    """Check data against a model's tokenizer and template before training (no weights loaded).

    Exit code 1 when a check fails."""
    from train.check import render_report, run_checks
    from train.data import DataError
    from train.run import RunError, prepare

    console = stderr_console()
    config_file = auto_config(stage, config_file, console)
    cfg = resolve_config(stage, config_file, kwargs, data, sets, console, flag_stage="sft")
    if not cfg.data:
        found = find_curated(stage, Path.cwd())
        if not found:
            raise click.UsageError("no data given (DATA or --data)")
        console.print(f"no data given: using [bold]{found}[/bold]", soft_wrap=True)
        cfg.data = [str(found)]
    try:
        from train.methods import Device

        ctx = prepare(cfg, device=Device("cpu", False), preflight=False)
    except (DataError, RunError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    rep = run_checks(
        ctx.tokenizer, ctx.prep, ctx.tokenized, ctx.plan["max_length"], preview_rows=preview_rows
    )
    render_report(rep, console)
    if as_json:
        json_line(rep.as_dict(), 1 if rep.failed else 0)
    sys.exit(1 if rep.failed else 0)


# ------------------------------------------------------------------ export / eval


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(), help="Output directory (default RUN/export).")
@click.option(
    "--merge/--no-merge", default=True, show_default=True, help="Merge the adapter into the base weights."
)
@click.option(
    "--dtype",
    type=click.Choice(["bf16", "fp16", "fp32"]),
    default="bf16",
    show_default=True,
    help="Saved weight precision.",
)
@click.option("--json", "as_json", is_flag=True)
def export(run_dir, output, merge, dtype, as_json):
    """Export a run: merged safetensors (a QLoRA adapter is merged into the 16-bit base), the tokenizer
    with its chat template, and an Ollama Modelfile."""
    from train.export import ExportError, export_run

    console = stderr_console()
    try:
        res = export_run(Path(run_dir), Path(output) if output else None, merge=merge, dtype=dtype)
    except ExportError as e:
        raise UsageError(str(e)) from None
    console.print(f"[green]exported[/green] to {res['output']} ({', '.join(res['files'])})")
    if as_json:
        json_line(res)


@click.command(name="eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--data",
    "data",
    multiple=True,
    help="Held-out data (curated records or any curate format), scored as one set.",
)
@click.option(
    "--heldout",
    multiple=True,
    metavar="NAME=FILE",
    help="A named held-out set (repeatable: domain and general): loss/perplexity per set for the base and every "
    "stage of RUN_DIR (a run, or a `train chain` directory); table and plot in RUN_DIR/eval.",
)
@click.option(
    "--tasks",
    help="lm-evaluation-harness tasks, comma-separated (e.g. ceval-valid,cmmlu from the local cache) on the same "
    "models; skipped with a note when lm_eval is not installed.",
)
@click.option(
    "--reward-model", help="Reward model directory: adds the win rate of the tuned answers over the base's."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="At most this many held-out rows.",
)
@click.option(
    "--max-new-tokens", type=int, default=64, show_default=True, help="Answer length for the win rate."
)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def evaluate(run_dir, data, heldout, tasks, reward_model, limit, max_new_tokens, batch_size, as_json):
    """Evaluate a run on held-out rows: answer loss and perplexity of the tuned model next to the base
    model; with --reward-model, the win rate of the tuned model's answers over the base model's.

    With --heldout (several sets, e.g. domain and general) the base model and every stage of a run or
    chain are scored per set, so domain gain and general loss (catastrophic forgetting) show side by side."""
    from train.data import DataError
    from train.evaluate import EvalError, evaluate_run, render

    console = stderr_console()
    if not (data or heldout or tasks):
        raise click.UsageError("nothing to evaluate: give --data FILE, --heldout NAME=FILE or --tasks T1,T2")
    res: dict[str, Any] = {}
    try:
        if data:
            res = evaluate_run(
                Path(run_dir),
                list(data),
                reward_model=reward_model,
                limit=limit,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
            )
            render(res, console)
        if heldout or tasks:
            from train.multieval import run_forgetting

            task_list = [t.strip() for t in (tasks or "").split(",") if t.strip()]
            res["forgetting"] = run_forgetting(
                Path(run_dir), list(heldout), task_list, limit=limit, batch_size=batch_size, console=console
            )
    except (EvalError, DataError) as e:
        raise UsageError(str(e)) from None
    if as_json:
        json_line(res)


@click.command()
@click.argument("chain_file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print every stage's plan (epochs, LR, memory), train nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
def chain(chain_file, dry_run, as_json):
    """Run the stages of CHAIN_FILE in order (e.g. pt -> sft -> dpo, or pt -> sft -> rm -> rloo), each
    starting from the previous result; finished stages are skipped on a re-run, an interrupted one resumes.

    Writes chain.json (every stage's run directory, data hashes, metrics) in the chain directory; with an
    `eval:` section, the loss per held-out set for the base and every stage. Format: docs/train.md."""
    from train.chain import load_chain, run_chain

    console = stderr_console()
    spec = load_chain(chain_file)  # every check before any model loads
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer logs on stdout: keep it for --json
        res = run_chain(spec, console, dry_run=dry_run)
    if not dry_run:
        console.print(
            f"[green]chain done[/green]: {res['manifest']} (result: {res['result']})", soft_wrap=True
        )
    if as_json:
        json_line(res)


__all__ = [
    "chain",
    "check",
    "dpo",
    "evaluate",
    "export",
    "grpo",
    "kto",
    "orpo",
    "plan",
    "pt",
    "rloo",
    "rm",
    "sft",
]
