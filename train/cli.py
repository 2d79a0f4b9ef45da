"""`train`: the training half of tamis. Lazy click group: `train --help` imports no ML library."""

from __future__ import annotations

import click

from curate.lazycli import LazyGroup

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
    """A file that cannot be read or written (an --output that is a file, a directory without
    permission) is a usage error: one ``error:`` line and exit 2, not a traceback and exit 1 (which
    means "checks failed or the run could not complete")."""

    def invoke(self, ctx: click.Context):
        import sys

        try:
            return super().invoke(ctx)
        except (OSError, UnicodeError) as exc:
            where = getattr(exc, "filename", None)
            reason = getattr(exc, "strerror", None) or str(exc)
            click.echo(f"error: {where}: {reason}" if where else f"error: {reason}", err=True)
            sys.exit(2)


@click.group(cls=TrainGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tamis", prog_name="train")
def main() -> None:
    """Fine-tune a model on curated data with TRL and PEFT.

    Every stage validates the data (train check) and prints its plan (train plan) before loading a
    model; runs resume from their last checkpoint when re-run. Exit codes: 0 ok, 1 checks failed or the
    run could not complete, 2 usage error or unreadable input.
    """


if __name__ == "__main__":  # `python -m train.cli` (used by accelerate launch)
    main()
