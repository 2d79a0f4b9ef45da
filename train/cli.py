"""`train`: the training half of tamis. Lazy click group: `train --help` imports no ML library."""

from __future__ import annotations

import json
import time

import click

from curate import offline
from curate.core.errors import handle
from curate.lazycli import LazyGroup
from train.callbacks import stop_on_signals
from train.quiet import quiet_libraries

offline.enforce()  # before any command imports a hub library (TAMIS_ALLOW_NETWORK=1 opts out)

COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("train.commands:plan", "Plan epochs, LR, batch, max_length and memory from the data and model."),
    "check": (
        "train.commands:check",
        "Pre-flight data checks: template, loss masks, eos, truncation, preview.",
    ),
    "sft": ("train.commands:sft", "Supervised fine-tuning (SFTTrainer)."),
    "dpo": ("train.commands:dpo", "Direct preference optimisation (DPOTrainer; LoRA needs no second model)."),
    "rm": ("train.commands:rm", "Train a reward model (RewardTrainer, sequence classification)."),
    "kto": ("train.commands:kto", "KTO on unpaired good/bad answers (KTOTrainer)."),
    "pt": ("train.commands:pt", "Continued pretraining on plain text, packed."),
    "orpo": ("train.commands:orpo", "ORPO: SFT + preference in one loss, no reference model."),
    "rloo": ("train.commands:rloo", "RLHF: RLOO against a reward model and/or rule rewards."),
    "grpo": ("train.commands:grpo", "GRPO against rule rewards and/or a reward model."),
    "chain": (
        "train.commands:chain",
        "Run pt -> sft -> dpo/rloo stages from one YAML, resumable, with one manifest.",
    ),
    "export": (
        "train.commands:export",
        "Merge an adapter, write safetensors + tokenizer + Ollama Modelfile.",
    ),
    "eval": (
        "train.commands:evaluate",
        "Held-out loss/perplexity; win rate vs the base with a reward model.",
    ),
}


class TrainGroup(LazyGroup):
    """The same top-level contract as `curate` (:func:`curate.core.errors.handle`): a user error (a
    :class:`~curate.core.errors.TamisError`, a file that cannot be read or written) is one ``error:``
    line and exit 2 (one JSON line on stdout with ``--json``); a bug prints its traceback and exits 70.
    Exit 1 stays "checks failed or the run could not complete"."""

    def invoke(self, ctx: click.Context):
        quiet_libraries()  # transformers' v6-rename FutureWarnings, the "> 512 tokens" line (train.quiet)

        args = [*getattr(ctx, "_protected_args", []), *ctx.args]
        wants_json = "--json" in (args[: args.index("--")] if "--" in args else args)
        started = ctx.meta.setdefault("train.started", time.time())  # `seconds` in every JSON line

        def report(message: str, code: int) -> None:
            if wants_json:
                status = "interrupted" if code in (130, 143) else "error"
                seconds = round(time.time() - started, 2)
                click.echo(
                    json.dumps({"status": status, "error": message, "exit_code": code, "seconds": seconds})
                )

        with stop_on_signals():  # Ctrl-C / SIGTERM: exit 130 / 143 with the JSON line, never silent
            return handle(
                lambda: super(TrainGroup, self).invoke(ctx),
                prog="train",
                echo=lambda line: click.echo(line, err=True),
                json_error=report,
            )


@click.group(cls=TrainGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tamis", prog_name="train")
def main() -> None:
    """Fine-tune a model on curated data with TRL and PEFT.

    Every stage validates the data (train check) and prints its plan (train plan) before loading a
    model; runs resume from their last checkpoint when re-run. Exit codes: 0 ok, 1 checks failed or the
    run could not complete, 2 usage error or unreadable input, 130/143 stopped by SIGINT/SIGTERM
    (a checkpoint is saved first; re-run to resume), 70 a bug."""


if __name__ == "__main__":  # `python -m train.cli` (used by accelerate launch)
    main()
