"""`curate score` (perplexity/IFD, reward, fastText quality columns) and `curate quality` (train and
evaluate the fastText quality classifier)."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

import click

from curate.commands.common import (
    EXIT_OK,
    EXIT_REJECTS,
    Job,
    check_writable,
    emit_json,
    encoding_option,
    fail,
    input_options,
    load_inputs,
    output_options,
    protect,
    resolve_output,
    side_path,
)
from curate.engines import engine_options

SCORER_HELP = (
    "Comma-separated: ppl (perplexity of the answer given the question), ifd (also the answer alone, "
    "and their ratio), reward (reward model), quality (fastText P(good)). Default: all four."
)


@click.command()
@input_options
@output_options("score")
@click.option("--scorers", default="ppl,ifd,reward,quality", show_default=True, help=SCORER_HELP)
@click.option(
    "--lm",
    default=None,
    help="Causal LM for ppl/ifd: a local directory or a hub id already in the local cache (never "
    "downloaded). Default: the embedded demo model samples/models/lm.",
)
@click.option(
    "--reward-model",
    default=None,
    help="Sequence-classification reward model. Default: samples/models/reward.",
)
@click.option(
    "--quality-model",
    default=None,
    help="fastText quality model (.ftz/.bin). Default: samples/models/quality.ftz.",
)
@click.option(
    "--lm-chat-template",
    type=click.Path(dir_okay=False),
    default=None,
    help="Jinja chat template for an LM without one.",
)
@click.option(
    "--reward-chat-template",
    type=click.Path(dir_okay=False),
    default=None,
    help="Jinja chat template for the reward model.",
)
@click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when available), cpu or cuda[:N]."
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    default="auto",
    show_default=True,
    help="auto: bfloat16 on a GPU that supports it, float32 on CPU.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=8),
    default=2048,
    show_default=True,
    help="Longest sequence scored; longer rows are truncated (rule in docs/score.md) and flagged.",
)
@click.option(
    "--token-budget",
    type=click.IntRange(min=64),
    default=16384,
    show_default=True,
    help="Padded tokens per forward pass (rows x longest row in a batch).",
)
@click.option(
    "--batch-size",
    "--max-batch",
    "batch_size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Most sequences per forward pass.",
)
@click.option(
    "--cache",
    "cache_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Score cache (SQLite). Default: <output>.cache.sqlite beside the output.",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the score cache.")
@click.option(
    "--trust-remote-code", is_flag=True, help="Allow model code from the model directory (off by default)."
)
@engine_options
def score(
    inputs,
    fmt,
    maps,
    sheet,
    output,
    json_out,
    scorers,
    lm,
    reward_model,
    quality_model,
    lm_chat_template,
    reward_chat_template,
    device,
    dtype,
    max_tokens,
    token_budget,
    batch_size,
    cache_path,
    no_cache,
    trust_remote_code,
    engine,
):
    """Add score columns to every row: ppl, ppl_answer, ifd (with --lm), reward / reward_margin (with
    --reward-model; pairwise for preference rows), quality (with --quality-model). Nothing is dropped:
    filter on the scores with `curate select`. Rows that cannot be scored get a null score and the
    reason in <scorer>_error. The models used are recorded in the summary and in <output>.models.json.
    Works offline with the embedded demo models in samples/models."""
    from curate.score import ScoreConfig, ScoreError, default_cache_path, run

    started = time.perf_counter()
    out = resolve_output(inputs, output, "score")
    models_path = out.with_name(_stem(out) + ".models.json")
    protect(inputs, out, models_path, "the models file", "-o")
    if not no_cache and cache_path is not None:
        # the score cache is a SQLite file: never an input, the output, its side or models file
        protect(inputs, out, cache_path, "--cache")
        if cache_path.resolve() == models_path.resolve():
            fail(f"--cache {cache_path} is the models file of {out}; choose another --cache")
        if not cache_path.is_file():  # an existing cache may be read-only: it still serves cached rows
            check_writable(cache_path, "--cache", any_extension=True)
    try:
        config = ScoreConfig(
            scorers=scorers,
            lm=lm,
            reward_model=reward_model,
            quality_model=quality_model,
            device=device,
            dtype=dtype,
            max_tokens=max_tokens,
            token_budget=token_budget,
            max_batch=batch_size,
            lm_chat_template=lm_chat_template,
            reward_chat_template=reward_chat_template,
            trust_remote_code=trust_remote_code,
            cache=None if no_cache else str(cache_path or default_cache_path(out)),
            progress=True,
        )
    except ValueError as exc:
        fail(str(exc))
    loaded = load_inputs(inputs, fmt, maps, sheet, quiet=json_out, engine=engine)
    try:
        if engine.name == "ray":
            from curate.engines import run_stage

            # an actor pool: each actor loads the models once and scores block after block
            result = run_stage(run, loaded.frame, config, engine)
        else:
            from curate.progress import reporter
            from curate.score import build_scorers

            scorer_objs = build_scorers(config)
            result = run(loaded.frame, config, scorer_objs, progress=reporter(json_out))
    except (ScoreError, ValueError) as exc:
        fail(str(exc))
    except sqlite3.DatabaseError as exc:  # a --cache that is not (or no longer) an SQLite database
        fail(f"score cache {config.cache}: {exc}")
    stats = result.stats
    from curate.io import atomic_write_text

    atomic_write_text(models_path, json.dumps(stats["score_models"], indent=1, ensure_ascii=False) + "\n")
    if json_out:
        shown = dict(stats)
        shown["models_file"] = str(models_path)
        extra = None
    else:
        shown, extra = _human(stats, str(models_path))
    Job("score", inputs, out, loaded, json_out, started).finish(result, stats=shown, extra_tables=extra)


def _stem(out: Path) -> str:
    name = out.name
    for ext in (".jsonl", ".json", ".parquet", ".csv", ".tsv", ".xlsx"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _fmt(x) -> str:
    return f"{x:,.4g}" if isinstance(x, float) else str(x)


def _human(stats: dict, models_file: str):
    """A flat summary for the table, plus per-column score distributions and the models used."""
    flat = {"models file": models_file}
    scores, models = [], []
    for name, desc in stats["score_models"].items():
        st = stats.get(name, {})
        flat[f"{name}: scored"] = st.get("scored", 0)
        flat[f"{name}: from cache"] = st.get("from_cache", 0)
        flat[f"{name}: errors"] = st.get("errors", 0)
        if st.get("truncated"):
            flat[f"{name}: truncated"] = st["truncated"]
        if "ifd_ge_1" in st:
            flat["ifd >= 1 (question does not help)"] = st["ifd_ge_1"]
        for col, d in st.items():
            if isinstance(d, dict) and {"mean", "p50"} <= set(d):
                scores.append((col, "  ".join(f"{k} {_fmt(d[k])}" for k in ("mean", "p10", "p50", "p90"))))
        for reason, n in (st.get("error_reasons") or {}).items():
            scores.append((f"{name}_error", f"{n} × {reason}"))
        where = desc.get("device", "cpu")
        dtype = desc.get("dtype")
        models.append(
            (
                name,
                f"{desc['model']}  (fingerprint {desc['fingerprint']})"
                + (f"  {where}/{dtype}" if dtype else "")
                + ("  DEMO model: not evidence on this data" if desc.get("demo") else ""),
            )
        )
    return flat, {"scores": scores, "models": models}


# ------------------------------------------------------------------------------------------ quality
@click.group()
def quality():
    """Train and evaluate the fastText quality classifier used by `curate score --scorers quality`."""


def _texts(paths, fmt, maps, sheet, quiet) -> tuple[list[str], int]:
    """(texts, rows that could not be read): unreadable rows are skipped, said on stderr, counted in
    the summary (``rejected``) and make the exit code 1."""
    from curate.score.quality import fasttext_text

    if not paths:
        return [], 0
    loaded = load_inputs(paths, fmt, maps, sheet, quiet=True)
    if loaded.rejects.height:
        first = loaded.rejects.row(0, named=True)
        click.echo(
            f"warning: {loaded.rejects.height} unreadable rows in {', '.join(map(str, paths))} skipped "
            f"(first: {first.get('file')}:{first.get('line')}: {first.get('reason')})",
            err=True,
        )
    return [fasttext_text(r) for r in loaded.frame.to_dicts()], loaded.rejects.height


def _labelled(pos, neg, from_filter, fmt, maps, sheet, quiet):
    pos, neg = list(pos), list(neg)
    for kept in from_filter:
        kept = Path(kept)
        dropped = side_path(kept, "dropped")
        if not dropped.is_file():
            fail(
                f"--from-filter {kept}: no dropped rows beside it ({dropped} is missing: that filter run "
                "dropped nothing, so it gives no bad examples); add --neg FILE"
            )
        pos.append(kept)
        neg.append(dropped)
    if not pos or not neg:
        fail("give good rows (--pos or --from-filter) and bad rows (--neg or --from-filter)")
    for p in pos + neg:
        if not Path(p).is_file():
            fail(f"{p}: no such file")
    good, rej_good = _texts(pos, fmt, maps, sheet, quiet)
    bad, rej_bad = _texts(neg, fmt, maps, sheet, quiet)
    return good, bad, rej_good + rej_bad


def _labelled_options(f):
    f = encoding_option(f)
    f = click.option("--sheet", default=None, help="XLSX: read only this sheet.")(f)
    f = click.option(
        "--map", "maps", multiple=True, metavar="FIELD=COLUMN", help="Column mapping, as for every command."
    )(f)
    f = click.option("--format", "fmt", default=None, help="Override format detection of the inputs.")(f)
    f = click.option(
        "--from-filter",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The kept output of `curate filter`: its rows are good, the rows in its .dropped.jsonl bad.",
    )(f)
    f = click.option(
        "--neg",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="File(s) of bad rows, any format.",
    )(f)
    f = click.option(
        "--pos",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="File(s) of good rows, any format.",
    )(f)
    return f


@quality.command("train")
@_labelled_options
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Model file (.ftz quantised, or .bin with --no-quantize).",
)
@click.option("--epoch", type=click.IntRange(min=1), default=25, show_default=True, help="Training epochs.")
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True, help="Learning rate."
)
@click.option("--dim", type=click.IntRange(min=2), default=32, show_default=True, help="Vector size.")
@click.option(
    "--word-ngrams",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="2: word (and CJK character) bigrams.",
)
@click.option(
    "--bucket",
    type=click.IntRange(min=0),
    default=200_000,
    show_default=True,
    help="Hash buckets for n-grams (model size ~ bucket x dim).",
)
@click.option(
    "--cutoff",
    type=click.IntRange(min=0),
    default=20_000,
    show_default=True,
    help="Rows kept when quantising (0: all).",
)
@click.option(
    "--no-quantize", is_flag=True, help="Save the full .bin model (larger; quantising takes seconds)."
)
@click.option(
    "--holdout",
    type=click.FloatRange(0, 0.9),
    default=0.2,
    show_default=True,
    help="Share of rows held out for precision/recall/AUC.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="P(good) at or above which a row counts as good for precision/recall.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed of the held-out split and training."
)
@click.option("--json", "json_out", is_flag=True, help="Print the metrics as one JSON line on stdout.")
def quality_train(
    pos,
    neg,
    from_filter,
    fmt,
    maps,
    sheet,
    output,
    epoch,
    lr,
    dim,
    word_ngrams,
    bucket,
    cutoff,
    no_quantize,
    holdout,
    threshold,
    seed,
    json_out,
):
    """Train a fastText good/bad classifier from good rows (--pos) and bad rows (--neg), or from the kept
    and dropped output of `curate filter` (--from-filter), and report held-out precision, recall and AUC.
    The model (quantised .ftz by default) and a <model>.json with parameters and metrics are written
    atomically."""
    from curate.score.common import ScoreError
    from curate.score.quality import TrainParams, train_classifier

    sources = list(pos) + list(neg) + list(from_filter)
    sources += [side_path(Path(k), "dropped") for k in from_filter]
    for p in sources:
        if Path(p).resolve() in (output.resolve(), Path(str(output) + ".json").resolve()):
            fail(f"refusing to overwrite the input {p}; choose another -o")
    if output.suffix not in (".ftz", ".bin"):
        fail(f"-o {output}: use a .ftz (quantised) or .bin file name")
    check_writable(output, "-o", (".ftz", ".bin"))
    good, bad, rejected = _labelled(pos, neg, from_filter, fmt, maps, sheet, json_out)
    params = TrainParams(
        epoch=epoch,
        lr=lr,
        word_ngrams=word_ngrams,
        dim=dim,
        bucket=bucket,
        cutoff=cutoff,
        quantize=not no_quantize,
        holdout=holdout,
        seed=seed,
        threshold=threshold,
    )
    try:
        info = train_classifier(good, bad, output, params)
    except ScoreError as exc:
        fail(str(exc))
    code = EXIT_REJECTS if rejected else EXIT_OK
    _print_metrics("curate quality train", {**info, "rejected": rejected, "exit_code": code}, json_out)
    sys.exit(code)


@quality.command("eval")
@_labelled_options
@click.option(
    "-m",
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="fastText quality model.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="P(good) at or above which a row counts as good for precision/recall/accuracy.",
)
@click.option("--json", "json_out", is_flag=True, help="Print the metrics as one JSON line on stdout.")
def quality_eval(pos, neg, from_filter, fmt, maps, sheet, model_path, threshold, json_out):
    """Precision, recall, accuracy and AUC of a quality model on labelled rows."""
    from curate.score.common import ScoreError
    from curate.score.quality import evaluate

    good, bad, rejected = _labelled(pos, neg, from_filter, fmt, maps, sheet, json_out)
    try:
        metrics = evaluate(model_path, good, bad, threshold)
    except ScoreError as exc:
        fail(str(exc))
    code = EXIT_REJECTS if rejected else EXIT_OK
    info = {"model": str(model_path), "eval": metrics, "rejected": rejected, "exit_code": code}
    _print_metrics("curate quality eval", info, json_out)
    sys.exit(code)


def _print_metrics(title: str, info: dict, json_out: bool) -> None:
    if json_out:
        emit_json(info)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("split")
    for c in ("rows", "positives", "precision", "recall", "accuracy", "auc"):
        t.add_column(c, justify="right")
    for split in ("train", "heldout", "eval"):
        m = info.get(split)
        if m:
            t.add_row(
                split,
                *[_fmt(m.get(c)) for c in ("rows", "positives", "precision", "recall", "accuracy", "auc")],
            )
    con = Console(stderr=True)
    con.print(t)
    extra = [f"model: {info['model']}"]
    if "bytes" in info:
        extra.append(f"size: {info['bytes'] / 1e6:.2f} MB, trained in {info['seconds']} s")
    if "rows" in info and isinstance(info["rows"], dict):
        extra.append("rows: " + ", ".join(f"{k} {v}" for k, v in info["rows"].items()))
    if info.get("rejected"):
        extra.append(f"rejected (unreadable) input rows: {info['rejected']}")
    for line in extra:
        con.print(line)
