"""`curate dedup` and `curate decontaminate`."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import click

from curate.commands.common import (
    EXIT_OK,
    EXIT_REJECTS,
    Job,
    StepProgress,
    check_writable,
    fail,
    input_options,
    load_inputs,
    no_rows_message,
    output_options,
    protect,
    resolve_output,
    same_file,
    side_path,
    warn,
)
from curate.engines import engine_options, run_stage


def _write_clusters(path: Path, clusters: list[dict]) -> None:
    from curate.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in clusters))


def _check_clusters_path(inputs, out: Path, cpath: Path | None, explicit: bool) -> None:
    """Exit 2 when the clusters file would overwrite an input, the output or one of its side files."""
    what = "--clusters" if explicit else f"--explain's clusters file {cpath}"
    protect(inputs, out, cpath, what, "path")


def _explain(clusters: list[dict], limit: int = 5) -> None:
    """Print the largest clusters and the ones closest to the threshold, for a human audit."""
    from rich.console import Console
    from rich.table import Table

    if not clusters:
        return
    console = Console(stderr=True)
    console.width = max(console.width, 140)
    by_method: dict[str, list[dict]] = {}
    for c in clusters:
        by_method.setdefault(c["method"], []).append(c)
    for method, cs in by_method.items():
        largest = sorted(cs, key=lambda c: -c["size"])[:limit]
        weakest = sorted(cs, key=lambda c: c["min_similarity"])[:limit]
        for title, chosen in (("largest", largest), ("closest to the threshold", weakest)):
            t = Table(title=f"{method}: {title} clusters", title_justify="left", show_lines=True)
            t.add_column("cluster")
            t.add_column("sim", justify="right")
            t.add_column("source")
            t.add_column("text")
            for c in chosen:
                for m in c["members"][:6]:
                    mark = "keep" if m.get("kept") else ""
                    t.add_row(
                        f"{c['cluster']} ({c['size']}) {mark}",
                        f"{m['similarity']:.3f}",
                        str(m.get("source") or "") + (f" b{m['batch']}" if m.get("batch") else ""),
                        (m.get("text") or "").replace("\n", " ⏎ ")[:90],
                    )
            console.print(t)


@click.command()
@input_options
@output_options("dedup")
@click.option(
    "--method",
    "methods",
    default="exact,minhash",
    show_default=True,
    help="Comma-separated: exact, minhash, semantic (run in that order, each on the previous one's survivors).",
)
@click.option(
    "--fields",
    default="both",
    show_default=True,
    type=click.Choice(["question", "answer", "both"]),
    help="What is compared: the question (with earlier turns), the answer (chosen for preference rows), or both. "
    "Plain-text rows always compare their text.",
)
@click.option(
    "--threshold", default=0.8, show_default=True, type=float, help="MinHash: Jaccard similarity threshold."
)
@click.option(
    "--num-perm", default=128, show_default=True, type=int, help="MinHash: permutations per signature."
)
@click.option("--seed", default=42, show_default=True, type=int, help="MinHash: seed of the permutations.")
@click.option(
    "--latin",
    type=click.Choice(("chars", "words")),  # curate.dedup.text.LATIN_UNITS (not imported for --help)
    default="chars",
    show_default=True,
    help="MinHash: shingle units of Latin-script text: characters across words (finds typo'd copies) "
    "or words.",
)
@click.option(
    "--latin-ngram",
    type=click.IntRange(1, 100),
    default=7,
    show_default=True,
    help="MinHash: characters per shingle starting in Latin-script text (--latin chars).",
)
@click.option(
    "--chunk",
    default=5_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows tokenised and hashed per step (memory vs overhead; results do not depend on it).",
)
@click.option(
    "--ngram",
    default=5,
    show_default=True,
    type=int,
    help="MinHash: shingle size in CJK characters (Latin text: 7-character shingles across words). Shorter texts are one shingle.",
)
@click.option(
    "--bands",
    default=None,
    type=int,
    help="MinHash: LSH bands, 1 to --num-perm (default: derived from --threshold); "
    "rows per band = num_perm // bands, leftover columns unused for banding.",
)
@click.option(
    "--verify",
    default="exact",
    show_default=True,
    type=click.Choice(["exact", "estimate"]),
    help="MinHash: confirm candidates by exact Jaccard of the shingle sets, or trust the signature estimate.",
)
@click.option(
    "--spill-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="MinHash: where stored shingles spill past a quarter of --memory-budget (default: the temp dir).",
)
@click.option(
    "--memory-budget",
    default="1GB",
    show_default=True,
    help="MinHash: working memory besides the rows and signatures (stored shingles spill to the temp dir beyond a quarter of it).",
)
@click.option(
    "--embed-model",
    default="use",
    show_default=True,
    help="Semantic: use, minilm, or a local sentence-transformers dir.",
)
@click.option(
    "--semantic-threshold",
    default=None,
    type=float,
    help="Semantic: cosine threshold. Default per model and language (measured): use 0.95 for Chinese rows, 0.90 otherwise; minilm 0.97 / 0.95.",
)
@click.option(
    "--keep",
    default="first",
    show_default=True,
    help="Survivor of a cluster: first, longest, or best:<numeric column> (highest wins).",
)
@click.option(
    "--state",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Incremental index directory.",
)
@click.option(
    "--batch-label", default=None, help="With --state: a name for this batch (e.g. a data version)."
)
@click.option(
    "--clusters",
    "clusters_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every cluster (members, similarity, survivor) as JSONL.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Print the largest clusters and those closest to the threshold; writes <out>.clusters.jsonl.",
)
@engine_options
def dedup(
    inputs,
    fmt,
    maps,
    sheet,
    output,
    json_out,
    methods,
    fields,
    threshold,
    num_perm,
    seed,
    latin,
    latin_ngram,
    chunk,
    ngram,
    bands,
    verify,
    spill_dir,
    memory_budget,
    embed_model,
    semantic_threshold,
    keep,
    state,
    batch_label,
    clusters_path,
    explain,
    engine,
):
    """Remove exact, near (MinHash LSH) and semantic duplicates from INPUT files (all inputs are
    deduplicated together, so cross-file duplicates are found). Dropped rows go to
    <output>.dropped.jsonl with the cluster id, the survivor's id and source, and the similarity."""
    from curate.dedup.engine import DedupConfig
    from curate.dedup.engine import run as run_dedup

    started = time.perf_counter()
    try:
        config = DedupConfig(
            methods=methods,
            fields=fields,
            threshold=threshold,
            num_perm=num_perm,
            seed=seed,
            latin=latin,
            latin_ngram=latin_ngram,
            chunk=chunk,
            ngram=ngram,
            bands=bands,
            verify=verify,
            spill_dir=spill_dir,
            memory_budget=memory_budget,
            semantic_threshold=semantic_threshold,
            embed_model=embed_model,
            keep=keep,
        )
        if "semantic" in config.methods:
            from curate.embed import get_embedder

            embedder = get_embedder(embed_model)
        else:
            embedder = None
    except ValueError as exc:
        fail(str(exc))
    out = resolve_output(inputs, output, "dedup")
    # before any work: the clusters file must not replace an input or an output
    stale_clusters = side_path(out, "clusters")
    cpath = clusters_path or (stale_clusters if explain else None)
    _check_clusters_path(inputs, out, cpath, explicit=clusters_path is not None)
    if cpath is not None:
        check_writable(cpath, "--clusters", any_extension=True)
    loaded = load_inputs(inputs, fmt, maps, sheet, quiet=json_out, engine=engine)
    frame = loaded.frame
    with ExitStack() as stack:
        cycle = None
        if state is not None:
            from curate.stages.dedup import DedupState

            # the one state cycle: open + check + load, stage, commit after the outputs, else discard
            cycle = stack.enter_context(
                DedupState(state, config, emb_model=embedder.fingerprint if embedder is not None else None)
            )
        prior = cycle.prior if cycle is not None else None
        progress = stack.enter_context(StepProgress(not json_out))
        try:
            # local: run_dedup here; ray: signatures, LSH banding and connected components on the cluster
            result = run_stage(
                run_dedup, frame, config, engine, prior=prior, progress=progress, embedder=embedder
            )
        except ValueError as exc:
            fail(str(exc))
        stats = dict(result.stats)
        if cycle is not None:
            # written aside now, part of the index only once the outputs are written (finish)
            entry = cycle.stage(frame, result.batch, [str(p) for p in inputs], batch_label)
            stats["state"] = {
                "dir": str(state),
                "batch": entry["batch"],
                "earlier_rows": prior.n if prior else 0,
            }
        for warning in stats.get("warnings", []):
            click.echo(f"warning: {warning}", err=True)
        if cpath is not None:
            _write_clusters(cpath, result.clusters)
            stats["clusters_file"] = str(cpath)
        elif stale_clusters.is_file() and not any(same_file(stale_clusters, p) for p in inputs):
            # the clusters of an earlier --explain run no longer describe this output
            stale_clusters.unlink()
            stats["removed_stale_clusters"] = str(stale_clusters)
        if explain and not json_out:
            _explain(result.clusters)
        Job("dedup", inputs, out, loaded, json_out, started).finish(
            result, stats=stats, on_written=cycle.commit if cycle is not None else None
        )


@click.command()
@input_options
@output_options("decontaminate")
@click.option(
    "--against",
    "evals",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="An evaluation/benchmark file (any input format). Repeatable.",
)
@click.option(
    "--ngram", default=13, show_default=True, type=int, help="N-gram size in units (CJK characters or words)."
)
@click.option(
    "--fields",
    default="both",
    show_default=True,
    type=click.Choice(["question", "answer", "both"]),
    help="Training-row fields scanned.",
)
@click.option(
    "--eval-fields",
    default="both",
    show_default=True,
    type=click.Choice(["question", "answer", "both"]),
    help="Eval-item fields indexed.",
)
@click.option(
    "--min-units",
    default=8,
    show_default=True,
    type=int,
    help="Eval items shorter than --ngram but at least this long are matched whole.",
)
@click.option(
    "--min-hits",
    default=1,
    show_default=True,
    type=int,
    help="Drop a row once this many of its n-grams hit an eval item.",
)
@click.option(
    "--min-overlap",
    default=0.0,
    show_default=True,
    type=float,
    help="...and at least this fraction of its n-grams.",
)
@click.option(
    "--chunk",
    default=5_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows tokenised per step (memory vs overhead; results do not depend on it).",
)
@click.option(
    "--common",
    default=10,
    show_default=True,
    type=int,
    help="Ignore n-grams found in more than this many distinct eval texts (boilerplate).",
)
def decontaminate(
    inputs,
    fmt,
    maps,
    sheet,
    output,
    json_out,
    evals,
    ngram,
    fields,
    eval_fields,
    min_units,
    min_hits,
    min_overlap,
    chunk,
    common,
):
    """Drop rows of INPUT files that overlap evaluation sets (n-gram overlap, CJK-aware). Each dropped
    row names the eval item it hit (file, line, id, text) and how many n-grams matched."""
    from curate.dedup.decontaminate import DecontamConfig, build_eval_index
    from curate.dedup.decontaminate import run as run_decontam
    from curate.io import InputError, load

    started = time.perf_counter()
    try:
        config = DecontamConfig(
            ngram=ngram,
            fields=fields,
            eval_fields=eval_fields,
            min_units=min_units,
            min_hits=min_hits,
            min_overlap=min_overlap,
            common=common,
            chunk=chunk,
        )
    except ValueError as exc:
        fail(str(exc))
    out = resolve_output(inputs, output, "decontaminate")
    for e in evals:
        if Path(e).resolve() == out.resolve():
            fail(f"refusing to overwrite the eval file {e}; choose another -o")
        for kind in ("dropped", "rejects"):
            if Path(e).resolve() == side_path(out, kind).resolve():
                fail(
                    f"refusing to overwrite the eval file {e} with the {kind} rows of {out}; choose another -o"
                )
    loaded = load_inputs(inputs, fmt, maps, sheet, quiet=json_out)
    try:
        ev = load([Path(e) for e in evals])
    except InputError as exc:
        fail(f"--against: {exc}")
    names = ", ".join(str(e) for e in evals)
    if ev.frame.height == 0:
        # nothing to decontaminate against: passing every row through would look like "clean"
        fail(f"--against: {no_rows_message(evals, ev.rejects)}; nothing to check the rows against")
    code = EXIT_OK
    if ev.rejects.height:
        first = ev.rejects.row(0, named=True)
        warn(
            f"--against: {ev.rejects.height} unreadable eval rows in {names} were not indexed (first: "
            f"{first.get('file')}:{first.get('line')}: {first.get('reason')}); rows overlapping them are not "
            "caught (exit code 1)"
        )
        code = EXIT_REJECTS
    index = build_eval_index(ev.frame, config)
    result = run_decontam(loaded.frame, index, config)
    stats = dict(result.stats)
    if ev.rejects.height:
        stats["eval_rows_unreadable"] = ev.rejects.height
    Job("decontaminate", inputs, out, loaded, json_out, started).finish(result, stats=stats, min_code=code)
