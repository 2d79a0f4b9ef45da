"""`curate dedup` and `curate decontaminate`: generated from their Configs (curate.commands.generated);
here only what is not a Config field (dedup: the incremental ``--state``, the clusters file and
``--explain``; decontaminate: reading the evaluation files to report their unreadable rows)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from curate.commands.common import (
    EXIT_REJECTS,
    check_writable,
    fail,
    no_rows_message,
    protect,
    same_file,
    side_path,
    warn,
)
from curate.commands.generated import Invocation, StageCommand
from curate.stages.dedup import DedupState


def _write_clusters(path: Path, clusters: list[dict]) -> None:
    from curate.io import atomic_write_text  # polars: not for --help

    atomic_write_text(path, "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in clusters))


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


class DedupCommand(StageCommand):
    """Remove exact, near (MinHash LSH) and semantic duplicates from INPUT files (all inputs are
    deduplicated together, so cross-file duplicates are found). Dropped rows go to
    <output>.dropped.jsonl with the cluster id, the survivor's id and source, and the similarity."""

    stage = "dedup"
    extras = (
        click.option(
            "--state",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Incremental index directory.",
        ),
        click.option(
            "--batch-label", default=None, help="With --state: a name for this batch (e.g. a data version)."
        ),
        click.option(
            "--clusters",
            "clusters_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Write every cluster (members, similarity, survivor) as JSONL.",
        ),
        click.option(
            "--explain",
            is_flag=True,
            help="Print the largest clusters and those closest to the threshold; writes "
            "<out>.clusters.jsonl.",
        ),
    )

    def check_outputs(self, run: Invocation) -> None:
        """The embedding model (semantic: a model that is not there is a usage error before any work),
        and the clusters file: never an input, the output or one of its side files."""
        embedder = None
        if "semantic" in run.config.methods:
            from curate.embed import get_embedder  # not loaded for --help

            try:
                embedder = get_embedder(run.config.embed_model)
            except ValueError as exc:  # EmbedderError: a model that is not there
                fail(str(exc))
        run.extra["embedder"] = embedder
        explicit = run.params["clusters_path"]
        cpath = explicit or (side_path(run.out, "clusters") if run.params["explain"] else None)
        what = "--clusters" if explicit is not None else f"--explain's clusters file {cpath}"
        protect(run.inputs, run.out, cpath, what, "path")
        if cpath is not None:
            check_writable(cpath, "--clusters", any_extension=True)
        run.extra["clusters"] = cpath

    def check_loaded(self, run: Invocation) -> None:
        """``--state``: the one state cycle (curate.stages.dedup.DedupState): open (lock, check, load
        the earlier rows as the stage's prior) now; the batch is staged after the run and committed
        once the outputs are written; closing the command discards a batch not committed."""
        state = run.params["state"]
        if state is None:
            return
        embedder = run.extra["embedder"]
        fingerprint = embedder.fingerprint if embedder is not None else None
        cycle = run.resources.enter_context(DedupState(state, run.config, emb_model=fingerprint))
        run.extra["state"] = cycle
        run.context.prior = cycle.prior

    def report(self, run: Invocation, result) -> dict:
        stats = dict(result.stats)
        cycle = run.extra.get("state")
        if cycle is not None:
            # written aside now, part of the index only once the outputs are written (on_written)
            inputs = [str(p) for p in run.inputs]
            entry = cycle.stage(run.loaded.frame, result.batch, inputs, run.params["batch_label"])
            prior = cycle.prior
            stats["state"] = {
                "dir": str(run.params["state"]),
                "batch": entry["batch"],
                "earlier_rows": prior.n if prior else 0,
            }
        for warning in stats.get("warnings", []):
            warn(warning)
        cpath, stale = run.extra["clusters"], side_path(run.out, "clusters")
        if cpath is not None:
            _write_clusters(cpath, result.clusters)
            stats["clusters_file"] = str(cpath)
        elif stale.is_file() and not any(same_file(stale, p) for p in run.inputs):
            # the clusters of an earlier --explain run no longer describe this output
            stale.unlink()
            stats["removed_stale_clusters"] = str(stale)
        if run.params["explain"] and not run.json_out:
            _explain(result.clusters)
        return {"stats": stats, "on_written": cycle.commit if cycle is not None else None}


class DecontaminateCommand(StageCommand):
    """Drop rows of INPUT files that overlap evaluation sets (n-gram overlap, CJK-aware). Each dropped
    row names the eval item it hit (file, line, id, text) and how many n-grams matched."""

    stage = "decontaminate"
    engine = False  # the eval index is built once, here

    def check_outputs(self, run: Invocation) -> None:
        for e in run.config.against:
            if same_file(e, run.out):
                fail(f"refusing to overwrite the eval file {e}; choose another -o")
            for kind in ("dropped", "rejects"):
                if same_file(e, side_path(run.out, kind)):
                    fail(
                        f"refusing to overwrite the eval file {e} with the {kind} rows of {run.out}; "
                        "choose another -o"
                    )

    def execute(self, run: Invocation):
        from curate.io import InputError, load  # polars: not for --help

        evals = run.config.against
        try:
            ev = load([Path(e) for e in evals])
        except InputError as exc:
            fail(f"--against: {exc}")
        if ev.frame.height == 0:
            # nothing to decontaminate against: passing every row through would look like "clean"
            fail(f"--against: {no_rows_message(evals, ev.rejects)}; nothing to check the rows against")
        if ev.rejects.height:
            first = ev.rejects.row(0, named=True)
            warn(
                f"--against: {ev.rejects.height} unreadable eval rows in {', '.join(map(str, evals))} were "
                f"not indexed (first: {first.get('file')}:{first.get('line')}: {first.get('reason')}); rows "
                "overlapping them are not caught (exit code 1)"
            )
        run.extra["eval_rejects"] = ev.rejects.height
        return run.stage(run.config, run.context).run(run.loaded.frame, evals=ev.frame)

    def report(self, run: Invocation, result) -> dict:
        unreadable = run.extra["eval_rejects"]
        if not unreadable:
            return {}
        return {"stats": {**result.stats, "eval_rows_unreadable": unreadable}, "min_code": EXIT_REJECTS}


dedup = DedupCommand().command()
decontaminate = DecontaminateCommand().command()
