"""`curate augment`: few-shot, chain-of-thought, rephrased and system-prompt variants."""

from __future__ import annotations

import time

import click

from curate.augment import AugmentConfig, run
from curate.augment.common import TemplateError
from curate.augment.teachers import TeacherError
from curate.commands.common import (
    EXIT_OK,
    EXIT_REJECTS,
    Job,
    fail,
    input_options,
    load_inputs,
    output_options,
    resolve_output,
    warn,
)
from curate.commands.common import (
    StepProgress as Progress,
)
from curate.core.errors import TamisError
from curate.stages.augment import Augment


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def teacher_options(prefix: str = "teacher"):
    """Options shared by every command that calls a generating model (augment --cot, pairs)."""

    def deco(f):
        opts = [
            click.option(
                "--model",
                default=None,
                help="The generating model: a local Hugging Face model directory, or an OpenAI-compatible base URL.",
            ),
            click.option(
                "--model-url",
                default=None,
                help="OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1).",
            ),
            click.option("--model-name", default=None, help="Model name sent to the endpoint."),
            click.option(
                "--api-key-env",
                default="OPENAI_API_KEY",
                show_default=True,
                help="Environment variable holding the endpoint's API key (sent as a Bearer token).",
            ),
            click.option(
                "--concurrency",
                default=4,
                show_default=True,
                type=click.IntRange(min=1),
                help="Endpoint: parallel requests (>= 1).",
            ),
            click.option(
                "--rpm",
                default=None,
                type=click.FloatRange(min=0),
                help="Endpoint: at most this many requests per minute (default or 0: no limit).",
            ),
            click.option(
                "--max-retries",
                default=5,
                show_default=True,
                type=click.IntRange(min=0),
                help="Endpoint: retries on 429/5xx/connection errors (exponential backoff, Retry-After "
                "honoured); 0: one attempt only.",
            ),
            click.option(
                "--timeout",
                default=120.0,
                show_default=True,
                type=click.FloatRange(min=0, min_open=True),
                help="Endpoint: overall deadline of one request in seconds (connect, send, wait and the "
                "whole body; a slow-drip answer is cut there and retried).",
            ),
            click.option(
                "--max-response-bytes",
                default=8 << 20,
                show_default=True,
                type=click.IntRange(min=1024),
                help="Endpoint: refuse a response body larger than this (read in chunks, never whole).",
            ),
            click.option(
                "--max-new-tokens",
                default=512,
                show_default=True,
                type=click.IntRange(min=1),
                help="Longest generation, in tokens; an endpoint's completion longer than that (its "
                "usage count, or over 16 characters per token) is rejected with that reason.",
            ),
            click.option(
                "--temperature", default=0.0, show_default=True, type=float, help="0 = greedy (reproducible)."
            ),
            click.option(
                "--cache",
                "cache",
                default=None,
                type=click.Path(dir_okay=False),
                help="SQLite cache of generations keyed by (model, parameters, prompt); default "
                "~/.cache/tamis/teacher.sqlite (or $TAMIS_CACHE/teacher.sqlite). A re-run pays nothing twice.",
            ),
            click.option("--no-cache", is_flag=True, help="Neither read nor write the generation cache."),
            click.option(
                "--trust-remote-code",
                is_flag=True,
                help="Local model: allow code shipped with the model (off by default).",
            ),
        ]
        for o in reversed(opts):
            f = o(f)
        return f

    return deco


@click.command()
@input_options
@output_options("augment")
@click.option(
    "--fewshot", "fewshot", default=0, type=int, help="Add a variant with K retrieved demonstrations."
)
@click.option(
    "--cot",
    is_flag=True,
    help="Add chain-of-thought variants written by --model (checked against the answer).",
)
@click.option("--teacher", default=None, hidden=True, help="Deprecated: --model.")
@click.option("--teacher-url", default=None, hidden=True, help="Deprecated: --model-url.")
@click.option("--teacher-model", default=None, hidden=True, help="Deprecated: --model-name.")
@click.option(
    "--rephrase", default=0, type=int, help="Add N template rephrasings of the instruction per row."
)
@click.option(
    "--system-variants", default=0, type=int, help="Add N system-prompt variants per row (templates)."
)
@click.option(
    "--check",
    default="contains",
    show_default=True,
    help="How a rationale must reach the reference answer: contains, final (text after the final-answer "
    "marker equals it) or overlap:X (share X of its character bigrams, for long answers).",
)
@click.option(
    "--cot-style",
    default="plain",
    show_default=True,
    type=click.Choice(["plain", "think"]),
    help="plain: the teacher's text; think: <think>reasoning</think> followed by the reference answer.",
)
@teacher_options()
@click.option(
    "--batch-size", default=8, show_default=True, type=int, help="Local teacher: prompts per generate call."
)
@click.option(
    "--embed-model", default="use", show_default=True, help="Few-shot retrieval: use, minilm or a local dir."
)
@click.option(
    "--near-dup",
    default=0.9,
    show_default=True,
    type=float,
    help="Few-shot: a candidate whose question or answer embedding has at least this cosine with the row's "
    "is a near-duplicate and never a demonstration.",
)
@click.option(
    "--answer-overlap",
    default=0.5,
    show_default=True,
    type=float,
    help="Few-shot: a candidate whose answer shares this fraction of character 5-grams with the row's "
    "answer (containment) is never a demonstration.",
)
@click.option(
    "--lang",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "zh", "en"]),
    help="Template language (auto: from each question).",
)
@click.option(
    "--templates",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="Directory overriding the built-in templates (cot_zh.txt, rephrase_en.txt, system_zh.txt...).",
)
@click.option(
    "--replace-system", is_flag=True, help="System variants also for rows that have a system prompt."
)
@click.option(
    "--variants-only", is_flag=True, help="Write only the variants (originals go to the dropped file)."
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Random seed for the choice of rephrasing and system-prompt templates.",
)
def augment(inputs, fmt, maps, sheet, output, json_out, **opts) -> None:
    """Add few-shot, chain-of-thought and rephrased variants of every SFT row.

    \b
    Examples:
      curate augment data.jsonl --fewshot 3
      curate augment data.jsonl --cot --model ./models/qwen2.5-7b-instruct
      curate augment data.jsonl --cot --model-url http://127.0.0.1:8000/v1 --model-name qwen --rpm 120
      curate augment data.jsonl --rephrase 2 --system-variants 1
    """
    started = time.perf_counter()
    try:
        given = Augment.undeprecate({k: v for k, v in opts.items() if v is not None}, spell=_flag)
        config = AugmentConfig(**{**{k: v for k, v in opts.items() if k not in Augment.deprecated}, **given})
    except (ValueError, TamisError) as exc:
        fail(str(exc))
    out = resolve_output(inputs, output, "augment")
    loaded = load_inputs(inputs, fmt, maps, sheet, quiet=json_out)
    try:
        with Progress(not json_out) as progress:
            result = run(loaded.frame, config, progress=progress)
    except (TeacherError, TemplateError) as exc:
        fail(str(exc))
    code = EXIT_OK
    cot = result.stats.get("cot") or {}
    n_failed, n_asked = cot.get("failed_requests", 0), cot.get("requested", 0)
    if n_failed:
        what = f"{n_failed} of {n_asked} teacher requests failed (first error: {cot.get('first_error')})"
        if n_failed >= n_asked:
            # nothing came back from the teacher: not a dataset, a broken endpoint or model
            fail(f"chain of thought: every teacher request failed; {what}; nothing was written")
        warn(f"chain of thought: {what}; those rows have no chain-of-thought variant (exit code 1)")
        code = EXIT_REJECTS
    Job("augment", inputs, out, loaded, json_out, started).finish(result, min_code=code)
