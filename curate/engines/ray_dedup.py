"""Dedup on Ray: the same decisions as :func:`curate.dedup.engine.run`, with no single-machine index.

The per-row work reuses the dedup stage's own functions (``compare_text``, ``normalise``,
``policy_key``, ``signatures``, ``band_hashes``, ``verify``, ``group_labels``, ``survivors``,
``ShingleSets``); only the steps that need the whole set are distributed here:

1. **Signatures** (Ray Data ``map_batches``): compared text, exact key, survivor rank, MinHash
   signature and shingle set of every row, per block. Blocks stay in the object store.
2. **Exact duplicates**: shuffle ``(key, row, rank)`` by key hash into P partitions; each partition
   groups its keys and picks survivors.
3. **LSH banding as a shuffle**: every active row emits ``(band, band hash, row)``, partitioned by
   band hash; each partition sorts its buckets and emits the candidate pairs exactly as the local
   banding does (each member with the bucket's first member and its next ``WINDOW`` members). The
   members of large buckets go to the blocks holding them, which add their extra signature columns
   and send them back to the bucket's partition for :func:`curate.dedup.lsh.large_bucket_pairs`.
4. **Verification as a two-sided join**: pairs go to the block holding their first row, which
   attaches that row's signature and shingles and forwards them to the block holding the second row,
   where :func:`curate.dedup.verification.verify` decides.
5. **Connected components**: min-label propagation with pointer jumping over hash-partitioned edge
   lists (Ray tasks, one per partition per round), then survivors per component by the keep policy.

Only the decisions (row -> survivor, similarity) come back to the driver, which builds kept/dropped
frames, ``dup_*`` columns and the cluster list in exactly the local format. This module is the
driver; the tasks of steps 1-5 are in :mod:`curate.engines.ray_dedup_tasks`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl

from curate.core import vocab
from curate.dedup import cluster as cl
from curate.dedup.decisions import (
    cluster_record,
    kept_and_dropped,
    resolve_survivors,
    sort_clusters,
    source_strings,
)
from curate.dedup.engine import DedupConfig
from curate.dedup.engine import run as run_local
from curate.dedup.signatures import minhash_stats
from curate.dedup.text import compare_text, display_text
from curate.dedup.types import PREVIEW, DedupResult
from curate.engines import EngineSpec
from curate.engines import ray_dedup_tasks as tasks
from curate.engines.ray_cluster import block_rows_for, cluster_cpus, ensure_ray, split_frame
from curate.engines.ray_dedup_tasks import ROW, split_parts

MAX_PARTITIONS = 64
# the columns compare_text reads: history and question, then each kind's response (a preference row
# is compared by its chosen answer, never its rejected one)
COMPARED_COLUMNS = ("kind", "history", "question", *vocab.RESPONSE_FIELDS)


class _Plan:
    """Remote functions and the block directory of one dedup run."""

    def __init__(self, ray, blocks: list, infos: list[tuple[int, int, int, int]], n_parts: int):
        self.ray = ray
        order = sorted(range(len(blocks)), key=lambda i: infos[i][0])
        self.blocks = [blocks[i] for i in order if infos[i][2]]
        infos = [infos[i] for i in order if infos[i][2]]
        self.starts = np.array([i[0] for i in infos], dtype=np.int64)
        for (_, hi, _, _), nxt in zip(infos, infos[1:], strict=False):
            if nxt[0] != hi + 1:
                raise RuntimeError("ray dedup: blocks do not cover consecutive rows")  # a Ray Data change
        self.n_parts = n_parts
        self.B = len(self.blocks)

    def remote(self, fn, num_returns: int = 1):
        return self.ray.remote(num_returns=num_returns)(fn) if num_returns != 1 else self.ray.remote(fn)

    def as_list(self, refs, n: int) -> list:
        return [refs] if n == 1 else list(refs)

    def block_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, rows, side="right") - 1

    def pair_join(self, pair_parts_per_block: list[list], op: str, threshold: float, exact: bool):
        """Pairs (grouped by the block of their first row) through side A and side B; returns the
        concatenated (a, b, rank_a, rank_b, sim) refs per block and the unique pair count."""
        B = self.B
        side_a = self.remote(tasks.side_a, num_returns=B + 1)
        fwd = []
        counts = []
        for i in range(B):
            res = side_a.remote(self.blocks[i], self.starts, *pair_parts_per_block[i])
            res = list(res)
            fwd.append(res[:B])
            counts.append(res[B])
        side_b = self.remote(tasks.side_b)
        outs = [
            side_b.remote(self.blocks[j], op, threshold, exact, *[fwd[i][j] for i in range(B)])
            for j in range(B)
        ]
        return outs, int(sum(self.ray.get(counts)))

    def components(self, edge_refs: list) -> tuple[np.ndarray, np.ndarray, int]:
        """Connected components of the verified edges; (node rows, survivor rows, rounds)."""
        P = self.n_parts
        emap = self.remote(tasks.cc_edges_map, num_returns=P)
        mapped = [self.as_list(emap.remote(e, P), P) for e in edge_refs]
        cc_init = self.remote(tasks.cc_init)
        states = [cc_init.remote(*[m[q] for m in mapped]) for q in range(P)]
        pmap = self.remote(tasks.cc_propagate_map, num_returns=P)
        lower = self.remote(tasks.cc_lower, num_returns=2)
        ask = self.remote(tasks.cc_jump_ask, num_returns=P)
        answer = self.remote(tasks.cc_jump_answer, num_returns=P)
        rounds = 0
        while True:
            rounds += 1
            msgs = [self.as_list(pmap.remote(s, P), P) for s in states]
            res = [lower.remote(states[q], *[m[q] for m in msgs]) for q in range(P)]
            states = [r[0] for r in res]
            if sum(self.ray.get([r[1] for r in res])) == 0:
                break
            asks = [self.as_list(ask.remote(s, P), P) for s in states]
            answers = [self.as_list(answer.remote(states[q], P, *[a[q] for a in asks]), P) for q in range(P)]
            states = [lower.remote(states[q], *[a[q] for a in answers])[0] for q in range(P)]
        fmap = self.remote(tasks.cc_final_map, num_returns=P)
        fm = [self.as_list(fmap.remote(s, P), P) for s in states]
        fred = self.remote(tasks.cc_final_reduce)
        outs = self.ray.get([fred.remote(*[m[q] for m in fm]) for q in range(P)])
        node = np.concatenate([o[0] for o in outs]) if outs else np.zeros(0, np.int64)
        surv = np.concatenate([o[1] for o in outs]) if outs else np.zeros(0, np.int64)
        order = np.argsort(node, kind="stable")
        return node[order], surv[order], rounds

    def similarities(self, rows: np.ndarray, surv: np.ndarray) -> np.ndarray:
        """Exact Jaccard of each row with its survivor (1.0 for the survivor itself)."""
        sim = np.ones(len(rows), dtype=np.float32)
        m = rows != surv
        if not m.any():
            return sim
        pairs = np.stack([rows[m], surv[m]], axis=1)
        blk = self.block_of(pairs[:, 0])
        per_block = [[self.ray.put(p[0])] for p in split_parts(blk, self.B, pairs)]
        outs, _ = self.pair_join(per_block, "jaccard", 0.0, True)
        res = self.ray.get(outs)
        a = np.concatenate([r[0] for r in res])
        b = np.concatenate([r[1] for r in res])
        s = np.concatenate([r[4] for r in res])
        lookup = {(int(x), int(y)): float(z) for x, y, z in zip(a, b, s, strict=True)}
        sim[m] = np.array([lookup[(int(x), int(y))] for x, y in pairs], dtype=np.float32)
        return sim


def _fallback(frame, config, spec, reason: str, **kwargs):
    result = run_local(frame, config, **kwargs)
    result.stats = dict(result.stats)
    result.stats["engine"] = {"name": "ray", "kind": "dedup", "note": f"ran on the driver: {reason}"}
    return result


def run_dedup(
    frame: pl.DataFrame,
    config=None,
    spec: EngineSpec | None = None,
    *,
    prior=None,
    progress=None,
    embedder=None,
):
    """:func:`curate.dedup.engine.run` on Ray: same kept rows, dropped rows, clusters and counts."""
    config = config or DedupConfig()
    spec = spec or EngineSpec("ray")
    if prior is not None:
        return _fallback(
            frame, config, spec, "incremental state (--state) is a driver-side index", prior=prior
        )
    if "semantic" in config.methods:
        return _fallback(frame, config, spec, "semantic dedup is not distributed yet", embedder=embedder)
    if frame.height == 0:
        return _fallback(frame, config, spec, "empty input")
    cl.policy_key(frame.head(1), config.keep, np.zeros(1))  # a bad --keep column fails here, not in a worker

    ray = ensure_ray(spec)  # ray.data imported there

    t0 = time.perf_counter()
    n = frame.height
    minhash = "minhash" in config.methods
    needed = [c for c in COMPARED_COLUMNS if c in frame.columns]
    mode, col = cl.parse_keep(config.keep)
    if mode == "best" and col not in needed:
        needed.append(col)
    work = frame.select(needed).with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
    rows_per_block = block_rows_for(n, spec)
    n_parts = max(1, min(MAX_PARTITIONS, 2 * cluster_cpus()))

    # 1. signatures
    tm = time.perf_counter()
    ds = ray.data.from_arrow(split_frame(work, rows_per_block)).map_batches(
        tasks.signature_batch,
        fn_args=(
            config.fields,
            config.keep,
            minhash,
            config.ngram,
            config.num_perm,
            config.seed,
            config.chunk,
            config.latin,
            config.latin_ngram,
        ),
        batch_size=None,
        batch_format="pyarrow",
    )
    to_sb = ray.remote(num_returns=2)(tasks.to_sigblock)
    conv = [to_sb.remote(ref, config.num_perm, minhash) for ref in ds.to_arrow_refs()]
    infos = ray.get([c[1] for c in conv])
    plan = _Plan(ray, [c[0] for c in conv], infos, n_parts)
    t_sig = time.perf_counter() - tm
    n_empty = sum(i[3] for i in infos)

    stats: dict[str, Any] = {"methods": ",".join(config.methods), "fields": ",".join(config.fields)}
    stats["empty_not_compared"] = n_empty
    decisions: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # method, rows, survivor, sim
    exact_dropped = np.zeros(0, dtype=np.int64)
    P, B = n_parts, plan.B

    # 2. exact
    if "exact" in config.methods:
        decision, exact_dropped, stats["exact"] = _exact_step(ray, plan, P)
        decisions.append(decision)

    # 3-5. minhash
    rounds = 0
    if minhash:
        decision, stats["minhash"], rounds = _minhash_step(ray, plan, config, exact_dropped, n, t_sig)
        decisions.append(decision)

    result = _assemble(frame, config, decisions, stats)
    result.stats["seconds_total"] = round(time.perf_counter() - t0, 3)
    result.stats["engine"] = {
        "name": "ray",
        "kind": "dedup",
        "blocks": B,
        "partitions": P,
        "block_rows": rows_per_block,
        **({"component_rounds": rounds} if minhash else {}),
    }
    return result


def _exact_step(ray, plan: _Plan, P: int):
    """Exact duplicates: keys shuffled to partitions, one survivor per key."""
    tm = time.perf_counter()
    emap = plan.remote(tasks.exact_map, num_returns=P)
    mapped = [plan.as_list(emap.remote(b, P), P) for b in plan.blocks]
    ered = plan.remote(tasks.exact_reduce)
    outs = ray.get([ered.remote(*[m[q] for m in mapped]) for q in range(P)])
    rows = np.concatenate([o[0] for o in outs])
    surv = np.concatenate([o[1] for o in outs])
    order = np.argsort(rows, kind="stable")
    rows, surv = rows[order], surv[order]
    lost = rows != surv
    exact_dropped = rows[lost]
    decision = ("exact", rows, surv, np.ones(len(rows), dtype=np.float32))
    stats = {
        "clusters": int(len(np.unique(surv))) if lost.any() else 0,
        "dropped": int(lost.sum()),
        "seconds": round(time.perf_counter() - tm, 3),
    }
    return decision, exact_dropped, stats


def _minhash_step(ray, plan: _Plan, config, exact_dropped: np.ndarray, n: int, t_sig: float):
    """Near duplicates: LSH banding as a shuffle, large buckets, verified pairs, connected components."""
    P, B = plan.n_parts, plan.B
    tm = time.perf_counter()
    bands, rpb = config.lsh_shape()
    bmap = plan.remote(tasks.band_map, num_returns=P + 1)
    dropped_by_block = split_parts(plan.block_of(exact_dropped), B, exact_dropped)
    mapped = (
        [list(bmap.remote(plan.blocks[i], dropped_by_block[i][0], bands, rpb, P)) for i in range(B)]
        if B
        else []
    )
    short_texts = sum(s[0] for s in ray.get([m[P] for m in mapped]))
    bred = plan.remote(tasks.band_reduce, num_returns=2 * B)
    reduced = [plan.as_list(bred.remote(plan.starts, *[m[q] for m in mapped]), 2 * B) for q in range(P)]
    # large buckets: their members' extra signature columns, then the extra candidates
    lcols = plan.remote(tasks.large_columns, num_returns=P)
    cols = [
        plan.as_list(lcols.remote(plan.blocks[i], rpb, P, *[reduced[q][B + i] for q in range(P)]), P)
        for i in range(B)
    ]
    lred = plan.remote(tasks.large_reduce, num_returns=B)
    extra = [plan.as_list(lred.remote(plan.starts, *[c[q] for c in cols]), B) for q in range(P)]
    per_block = [[reduced[q][i] for q in range(P)] + [extra[q][i] for q in range(P)] for i in range(B)]
    edge_refs, n_cand = plan.pair_join(per_block, "verify", config.threshold, config.verify == "exact")
    n_edges = sum(ray.get([plan.remote(tasks.count_edges).remote(e) for e in edge_refs]))
    rounds = 0
    if n_edges:
        rows, surv, rounds = plan.components(edge_refs)
        sim = plan.similarities(rows, surv)
    else:
        rows = surv = np.zeros(0, dtype=np.int64)
        sim = np.zeros(0, dtype=np.float32)
    lost = rows != surv
    decision = ("minhash", rows, surv, sim)
    clusters = len(np.unique(surv)) if lost.any() else 0
    stats = minhash_stats(
        config, bands, rpb, short_texts, n_cand, n_edges, clusters, lost.sum(), t_sig, n, tm
    )
    return decision, stats, rounds


def _assemble(frame: pl.DataFrame, config, decisions, stats):
    """Kept/dropped frames, drop details, ``dup_*`` columns and the cluster list, in the local
    engine's format (see :mod:`curate.dedup.decisions`, which both engines use)."""
    drop_method: dict[int, str] = {}
    drop_info: dict[int, dict[str, Any]] = {}
    matched: dict[int, tuple[str, int]] = {}
    clusters_out: list[dict[str, Any]] = []
    involved = (
        np.unique(np.concatenate([np.concatenate([d[1], d[2]]) for d in decisions])) if decisions else []
    )
    involved = np.asarray(involved, dtype=np.int64)
    sub = frame[involved] if len(involved) else frame.head(0)
    raw = compare_text(sub, config.fields).to_list() if len(involved) else []
    ids = sub["id"].to_list() if "id" in sub.columns else [str(int(i)) for i in involved]
    sources = source_strings(sub)
    pos = {int(r): k for k, r in enumerate(involved)}

    def describe(i: int) -> dict[str, Any]:
        k = pos[i]
        return {
            "id": ids[k],
            "source": sources[k],
            "batch": None,
            "text": display_text(raw[k])[:PREVIEW],
            "row": i,
        }

    for method, rows, surv, sim in decisions:
        if not (rows != surv).any():
            continue
        cluster_no = {int(s): k for k, s in enumerate(np.unique(surv).tolist())}
        sim_of = dict(zip(rows.tolist(), sim.tolist(), strict=True))
        members_by: dict[int, list[int]] = {}
        for r, s in zip(rows.tolist(), surv.tolist(), strict=True):
            members_by.setdefault(s, []).append(r)
        for s_row in sorted(members_by, key=lambda s: members_by[s][0]):
            members = members_by[s_row]
            cid = f"{method}-{cluster_no[s_row]:06d}"
            s_desc = describe(s_row)
            out_members = []
            for r in members:
                d = describe(r)
                d["similarity"] = round(float(sim_of[r]), 4)
                d["kept"] = r == s_row
                out_members.append(d)
                if r != s_row:
                    drop_method[r] = method
                    drop_info[r] = {
                        "method": method,
                        "cluster": cid,
                        "survivor_id": s_desc["id"],
                        "survivor_source": s_desc["source"],
                        "similarity": d["similarity"],
                    }
                    matched[r] = ("new", s_row)
            clusters_out.append(cluster_record(cid, method, s_desc, out_members))

    resolve_survivors(drop_info, matched, clusters_out, describe)
    _, kept, dframe = kept_and_dropped(frame, drop_method, drop_info)
    sort_clusters(clusters_out)
    return DedupResult(kept, dframe, dict(stats), clusters_out, None)
