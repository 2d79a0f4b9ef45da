"""`curate score` (perplexity/IFD, reward, fastText quality columns), generated from ScoreConfig
(curate.commands.generated; here only ``--no-cache``, the score cache beside the output and the models
file and tables), and `curate quality` (train and evaluate the fastText quality classifier; its
training options come from TrainParams)."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import click

from curate.commands.common import (
    EXIT_OK,
    EXIT_REJECTS,
    check_writable,
    emit_json,
    fail,
    load_inputs,
    protect,
    read_options,
    same_file,
    side_path,
)
from curate.commands.generated import Invocation, StageCommand, dataclass_options
from curate.configs.score import TrainParams


class ScoreCommand(StageCommand):
    """Add score columns to every row: ppl, ppl_answer, ifd (with --lm), reward / reward_margin (with
    --reward-model; pairwise for preference rows), quality (with --quality-model). Nothing is dropped:
    filter on the scores with `curate select`. Rows that cannot be scored get a null score and the
    reason in <scorer>_error. The models used are recorded in the summary and in <output>.models.json.
    Works offline with the embedded demo models in samples/models."""

    stage = "score"
    extras = (click.option("--no-cache", is_flag=True, help="Neither read nor write the score cache."),)

    def prepare(self, run: Invocation) -> None:
        # progress lines from every scorer (the local run gets the command's display; Ray actors their own)
        run.options["progress"] = True

    def check_outputs(self, run: Invocation) -> None:
        """The models file and the score cache (SQLite): never an input, the output or a side file."""
        from curate.score import default_cache_path, models_file_path  # polars: not for --help

        out = run.out
        models_path = models_file_path(out)
        protect(run.inputs, out, models_path, "the models file", "-o")
        run.extra["models_file"] = models_path
        if run.params["no_cache"]:
            run.config.cache = None
        elif run.given("cache"):
            cache = Path(run.config.cache)
            protect(run.inputs, out, cache, "--cache")
            if same_file(cache, models_path):
                fail(f"--cache {cache} is the models file of {out}; choose another --cache")
            if not cache.is_file():  # an existing cache may be read-only: it still serves cached rows
                check_writable(cache, "--cache", any_extension=True)
        else:
            run.config.cache = str(default_cache_path(out))

    def execute(self, run: Invocation):
        try:
            return super().execute(run)
        except sqlite3.DatabaseError as exc:  # a --cache that is not (or no longer) an SQLite database
            fail(f"score cache {run.config.cache}: {exc}")

    def report(self, run: Invocation, result) -> dict:
        """The models file beside the output; the scores' distributions and the models as tables."""
        from curate.io import atomic_write_text  # polars: not for --help

        stats, models_path = result.stats, run.extra["models_file"]
        atomic_write_text(models_path, json.dumps(stats["score_models"], indent=1, ensure_ascii=False) + "\n")
        if run.json_out:
            return {"stats": {**stats, "models_file": str(models_path)}}
        shown, tables = _human(stats, str(models_path))
        return {"stats": shown, "extra_tables": tables}


score = ScoreCommand().command()


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
    from curate.score.quality import fasttext_text  # numpy: not for --help

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
    f = read_options(f)
    labelled = (  # outermost last: --pos, --neg, --from-filter in --help
        (
            "--from-filter",
            "The kept output of `curate filter`: its rows are good, the rows in its .dropped.jsonl bad.",
        ),
        ("--neg", "File(s) of bad rows, any format."),
        ("--pos", "File(s) of good rows, any format."),
    )
    for flag, help_text in labelled:
        f = click.option(
            flag, multiple=True, type=click.Path(dir_okay=False, path_type=Path), help=help_text
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
@dataclass_options(TrainParams, skip=("min_count",))
@click.option("--json", "json_out", is_flag=True, help="Print the metrics as one JSON line on stdout.")
def quality_train(pos, neg, from_filter, fmt, maps, sheet, output, json_out, **settings):
    """Train a fastText good/bad classifier from good rows (--pos) and bad rows (--neg), or from the kept
    and dropped output of `curate filter` (--from-filter), and report held-out precision, recall and AUC.
    The model (quantised .ftz by default) and a <model>.json with parameters and metrics are written
    atomically."""
    sources = list(pos) + list(neg) + list(from_filter)
    sources += [side_path(Path(k), "dropped") for k in from_filter]
    for p in sources:
        if Path(p).resolve() in (output.resolve(), Path(str(output) + ".json").resolve()):
            fail(f"refusing to overwrite the input {p}; choose another -o")
    if output.suffix not in (".ftz", ".bin"):
        fail(f"-o {output}: use a .ftz (quantised) or .bin file name")
    check_writable(output, "-o", (".ftz", ".bin"))
    good, bad, rejected = _labelled(pos, neg, from_filter, fmt, maps, sheet, json_out)
    from curate.score.common import ScoreError  # the classifier (numpy, fastText): not for --help
    from curate.score.quality import train_classifier

    params = TrainParams(**settings)
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
@dataclass_options(TrainParams, only=("threshold",))  # the one training reports its metrics at
@click.option("--json", "json_out", is_flag=True, help="Print the metrics as one JSON line on stdout.")
def quality_eval(pos, neg, from_filter, fmt, maps, sheet, model_path, threshold, json_out):
    """Precision, recall, accuracy and AUC of a quality model on labelled rows."""
    from curate.score.common import ScoreError  # the classifier (numpy, fastText): not for --help
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
    from rich.console import Console  # not loaded for --help
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
