"""The dedup stage: exact, then MinHash LSH, then semantic, each over the rows the previous one kept,
optionally against the rows of earlier batches (an incremental :class:`~curate.dedup.index.DedupIndex`).

Rows from earlier batches always survive (they are already published); within a batch the survivor
of a cluster follows ``keep``. Every dropped row records its method, cluster id, the survivor's id and
source (and batch, for an earlier row) and its similarity to the row it matched, both in
``drop_detail`` and as ``dup_*`` columns. The survivor is always a row that is kept in the end: when
the row matched was itself dropped (by a later method, or in its own earlier batch), the chain is
followed to the kept row and the row matched is named as ``via_id``/``via_source``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate.dedup import cluster as cl
from curate.dedup.minhash import (
    DEFAULT_LATIN,
    DEFAULT_LATIN_NGRAM,
    VERIFY_BLOCK,
    ShingleArrays,
    ShingleStore,
    SignatureSet,
    bands_for,
    gather_rows,
    minhash_stats,
    signatures,
    stream_clusters,
)
from curate.dedup.text import (
    LATIN_UNITS,
    compare_text,
    content_lengths,
    display_series,
    display_text,
    doc_keys,
    fields_for,
    fields_setting,
    normalise,
    tokenize,
)
from curate.stage import StageResult, empty_dropped, mark_dropped

METHODS = ("exact", "minhash", "semantic")
DEFAULT_MEMORY_BUDGET = 1 << 30  # bench/bench_dedup_memory.py: 1M rows of any shape fit an 8 GB machine
STAGE = "dedup"
REASONS = {"exact": "exact duplicate", "minhash": "near duplicate", "semantic": "semantic duplicate"}
DEFAULT_NGRAM = 5
PREVIEW = 160

ProgressFactory = Callable[[str, int], Callable[[int], None]]


@dataclass
class DedupConfig:
    """Options of the dedup stage: the recipe keys, and (field metadata) the `curate dedup` options."""

    methods: tuple[str, ...] = field(
        default=("exact", "minhash"),
        metadata={
            "flags": ("--method",),
            "multiple": False,
            "help": "Comma-separated: exact, minhash, semantic (run in that order, each on the previous "
            "one's survivors).",
        },
    )
    fields: tuple[str, ...] = fields_setting(
        "What is compared: the question (with earlier turns), the answer (chosen for preference rows), "
        "or both. Plain-text rows always compare their text."
    )
    threshold: float = field(default=0.8, metadata={"help": "MinHash: Jaccard similarity threshold."})
    num_perm: int = field(default=128, metadata={"help": "MinHash: permutations per signature."})
    ngram: int = field(
        default=DEFAULT_NGRAM,
        metadata={
            "help": "MinHash: shingle size in CJK characters (Latin text: 7-character shingles across "
            "words). Shorter texts are one shingle."
        },
    )
    # shingle units of Latin-script (non-CJK) text: "chars" (character n-grams across words, catches
    # typos) or "words" (word n-grams, the behaviour before index format 3)
    latin: str = field(
        default=DEFAULT_LATIN,
        metadata={
            "choices": LATIN_UNITS,
            "help": "MinHash: shingle units of Latin-script text: characters across words (finds "
            "typo'd copies) or words.",
        },
    )
    latin_ngram: int = field(  # units per shingle starting in Latin text ("chars" mode)
        default=DEFAULT_LATIN_NGRAM,
        metadata={
            "min": 1,
            "max": 100,
            "help": "MinHash: characters per shingle starting in Latin-script text (--latin chars).",
        },
    )
    bands: int | None = field(  # rows per band follow; default derived from the threshold
        default=None,
        metadata={
            "help": "MinHash: LSH bands, 1 to --num-perm (default: derived from --threshold); rows per "
            "band = num_perm // bands, leftover columns unused for banding."
        },
    )
    seed: int = field(default=42, metadata={"help": "MinHash: seed of the permutations."})
    verify: str = field(  # "estimate": trust the MinHash estimate (faster, less precise)
        default="exact",
        metadata={
            "choices": ("exact", "estimate"),
            "help": "MinHash: confirm candidates by exact Jaccard of the shingle sets, or trust the "
            "signature estimate.",
        },
    )
    semantic_threshold: float | None = field(  # default per embedder
        default=None,
        metadata={
            "help": "Semantic: cosine threshold. Default per model and language (measured): use 0.95 "
            "for Chinese rows, 0.90 otherwise; minilm 0.97 / 0.95."
        },
    )
    embed_model: str = field(
        default="use", metadata={"help": "Semantic: use, minilm, or a local sentence-transformers dir."}
    )
    keep: str = field(
        default="first",
        metadata={"help": "Survivor of a cluster: first, longest, or best:<numeric column> (highest wins)."},
    )
    chunk: int = field(
        default=5_000,
        metadata={
            "min": 1,
            "help": "Rows tokenised and hashed per step (memory vs overhead; results do not depend on it).",
        },
    )
    # bytes for MinHash's working memory besides the signatures and the rows themselves: stored
    # shingles (then spilled to ``spill_dir``), the shingle sets being verified, candidate pairs; a
    # size ("1GB", "512M") or a number of bytes
    memory_budget: int | str = field(
        default=DEFAULT_MEMORY_BUDGET,
        metadata={
            "type": "text",
            "show_default": "1GB",
            "help": "MinHash: working memory besides the rows and signatures (stored shingles spill to "
            "the temp dir beyond a quarter of it).",
        },
    )
    spill_dir: str | None = field(  # default: the system temp dir
        default=None,
        metadata={
            "path": "dir",
            "help": "MinHash: where stored shingles spill past a quarter of --memory-budget (default: "
            "the temp dir).",
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            self.methods = tuple(m.strip() for m in self.methods.split(",") if m.strip())
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"unknown dedup method(s) {bad}: choose from {', '.join(METHODS)}")
        self.methods = tuple(m for m in METHODS if m in self.methods)
        self.fields = fields_for(self.fields)
        if not 0 < self.threshold <= 1:
            raise ValueError(f"--threshold must be in (0, 1], got {self.threshold}")
        if self.latin not in LATIN_UNITS:
            raise ValueError(f"latin units must be one of {', '.join(LATIN_UNITS)}, got {self.latin!r}")
        if self.ngram < 1:
            raise ValueError("--ngram must be at least 1")
        if not 1 <= self.latin_ngram <= 100:
            raise ValueError(f"latin_ngram must be between 1 and 100, got {self.latin_ngram}")
        if self.num_perm < 16 or self.num_perm > 1024:
            raise ValueError("--num-perm must be between 16 and 1024")
        if self.verify not in ("exact", "estimate"):
            raise ValueError("verify must be 'exact' or 'estimate'")
        if self.bands is not None and not 1 <= self.bands <= self.num_perm:
            raise ValueError(f"--bands must be between 1 and --num-perm ({self.num_perm}), got {self.bands}")
        if self.semantic_threshold is not None and not 0 < self.semantic_threshold <= 1:
            raise ValueError(f"--semantic-threshold must be in (0, 1], got {self.semantic_threshold}")
        cl.parse_keep(self.keep)
        if isinstance(self.memory_budget, str):
            self.memory_budget = parse_size(self.memory_budget)
        if self.memory_budget < 64 << 20:
            raise ValueError(f"--memory-budget must be at least 64MB, got {self.memory_budget:,} bytes")

    def lsh_shape(self) -> tuple[int, int]:
        """(bands, rows per band). With ``--bands`` the rows are ``num_perm // bands``; the last
        ``num_perm % bands`` signature columns are then not used for banding (still for verification)."""
        if self.bands is not None:
            return self.bands, self.num_perm // self.bands
        return bands_for(self.threshold, self.num_perm)


@dataclass
class Prior:
    """What an incremental index knows about earlier batches (see :mod:`curate.dedup.index`)."""

    rows: pl.DataFrame  # id, file, line, sheet, batch, kept, preview
    keys: np.ndarray  # uint64 exact keys, one per row
    mh_rows: np.ndarray  # int64 rows (into ``rows``) that have signatures
    mh: SignatureSet | None
    # embedder fingerprint -> (int64 rows into ``rows``, float32 embeddings)
    emb: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # fingerprints whose embeddings were not loaded -> their rows
    emb_other: dict[str, np.ndarray] = field(default_factory=dict)
    # per row, the row that survives it in the end (itself for kept rows); None: every row itself
    survivor: np.ndarray | None = None

    def final_survivor(self, i: int) -> int:
        return int(self.survivor[i]) if self.survivor is not None else i

    @property
    def n(self) -> int:
        return self.rows.height


@dataclass
class BatchData:
    """What the index stores for the batch just processed."""

    keys: np.ndarray
    mh_rows: np.ndarray
    mh: SignatureSet | None
    emb_rows: np.ndarray
    emb: np.ndarray | None
    emb_model: str | None
    kept: np.ndarray
    raw: pl.Series  # the compared text of every row of the batch
    ngram: int
    # per row, who survives it in the end: a row of this batch (-1: none) or of the index (-1: none);
    # a kept row is its own survivor
    survivor_new: np.ndarray | None = None
    survivor_prior: np.ndarray | None = None


@dataclass
class DedupResult(StageResult):
    clusters: list[dict[str, Any]] = field(default_factory=list)
    batch: BatchData | None = None


def _source_str(file: Any, line: Any, sheet: Any = None) -> str | None:
    if file is None:
        return None
    s = str(file)
    if sheet:
        s += f"[{sheet}]"
    if line is not None:
        s += f":{line}"
    return s


class _Nodes:
    """Participants of one method: prior rows first (ids into Prior.rows), then new rows."""

    def __init__(self, prior_idx: np.ndarray, new_idx: np.ndarray):
        self.prior_idx = prior_idx
        self.new_idx = new_idx
        self.p = len(prior_idx)
        self.n = self.p + len(new_idx)


SURVIVOR_KEYS = ("survivor_id", "survivor_source", "survivor_batch")


def resolve_survivors(
    drop_info: dict[int, dict[str, Any]],
    matched: dict[int, tuple[str, int]],
    clusters: list[dict[str, Any]],
    describe_new: Callable[[int], dict[str, Any]],
) -> dict[int, tuple[str, int]]:
    """Point every dropped row at a row that is kept in the end (shared by the local and Ray engines).

    ``drop_info[i]`` names the survivor row ``i`` was matched to; ``matched[i]`` is ``("new", j)`` when
    that is row ``j`` of this run, ``("prior", k)`` when it is (already resolved to) kept row ``k`` of an
    index. A new survivor may itself be dropped by a later method: its chain is followed to the row that
    is kept, which becomes ``survivor_*`` while the row matched is kept as ``via_*``. Cluster members get
    their final ``kept`` flag and a cluster whose survivor was dropped later a ``resolved_survivor``.
    Returns, per dropped row, its final survivor (``("new", j)`` or ``("prior", k)``)."""
    final: dict[int, tuple[str, int]] = {}
    fields: dict[int, dict[str, Any]] = {}
    for i in sorted(drop_info):
        j = i
        while matched[j][0] == "new" and matched[j][1] in drop_info:
            j = matched[j][1]
        final[i] = matched[j]
        if j == i:
            continue
        if matched[j][0] == "prior":
            fields[i] = {k: drop_info[j][k] for k in SURVIVOR_KEYS if k in drop_info[j]}
        else:
            d = describe_new(matched[j][1])
            fields[i] = {"survivor_id": d["id"], "survivor_source": d["source"]}
    for i, f in fields.items():
        info = drop_info[i]
        via = {"via_id": info["survivor_id"], "via_source": info["survivor_source"]}
        if "survivor_batch" in info:
            via["via_batch"] = info["survivor_batch"]
        for k in SURVIVOR_KEYS:
            info.pop(k, None)
        info.update(f)
        info.update(via)
    for c in clusters:
        for m in c["members"]:
            if "row" in m:
                m["kept"] = m["row"] not in drop_info
        s_row = c["survivor"].get("row")
        if s_row is not None and s_row in drop_info:
            info = drop_info[s_row]
            c["resolved_survivor"] = {
                "id": info["survivor_id"],
                "source": info["survivor_source"],
                "batch": info.get("survivor_batch"),
            }
    return final


def run(
    frame: pl.DataFrame,
    config: DedupConfig | None = None,
    prior: Prior | None = None,
    progress: ProgressFactory | None = None,
    embedder=None,
) -> DedupResult:
    config = config or DedupConfig()
    t0 = time.perf_counter()
    n = frame.height
    raw = compare_text(frame, config.fields) if n else pl.Series([], dtype=pl.Utf8)
    # "longest" means the most content in the row (question and answer), whatever is compared
    lengths = content_lengths(frame, raw, config.fields)
    rank_new = cl.policy_key(frame, config.keep, lengths) if n else np.zeros(0)
    ids = frame["id"].to_list() if "id" in frame.columns else [str(i) for i in range(n)]
    if "source" in frame.columns and n:
        src = frame["source"].struct.unnest()
        new_sources = [
            _source_str(f, ln, sh) for f, ln, sh in zip(src["file"], src["line"], src["sheet"], strict=True)
        ]
    else:
        new_sources = [None] * n

    stats: dict[str, Any] = {"methods": ",".join(config.methods), "fields": ",".join(config.fields)}
    drop_method: dict[int, str] = {}
    drop_info: dict[int, dict[str, Any]] = {}
    matched: dict[int, tuple[str, int]] = {}
    clusters_out: list[dict[str, Any]] = []
    active = np.ones(n, dtype=bool)

    # exact keys and (when needed) signatures, in one chunked pass
    ss_all: SignatureSet | None = None
    store: ShingleStore | None = None
    tm = time.perf_counter()
    if "minhash" in config.methods:
        tick = progress("signatures", n) if progress else None
        # every row's shingles, kept for verification (in memory up to a quarter of the budget, then
        # in a temporary file) instead of being recomputed for each candidate
        store = ShingleStore(config.memory_budget // 4, config.spill_dir)
        ss_all, keys = signatures(
            raw,
            config.ngram,
            config.num_perm,
            config.seed,
            chunk=config.chunk,
            progress=tick,
            keep_shingles=False,
            normalised=False,
            latin=config.latin,
            latin_ngram=config.latin_ngram,
            store=store,
        )
    else:
        parts = [
            doc_keys(tokenize(normalise(raw[s : s + config.chunk]).to_list(), config.latin))
            for s in range(0, n, config.chunk)
        ]
        keys = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    t_sig = time.perf_counter() - tm
    empty = keys == 0
    stats["empty_not_compared"] = int(empty.sum())
    active &= ~empty

    prior_rows = prior.rows if prior is not None else None
    p_kept = prior_rows["kept"].to_numpy() if prior_rows is not None else np.zeros(0, dtype=bool)

    def tier_rank_of(nodes: _Nodes) -> tuple[np.ndarray, np.ndarray]:
        """(tier, rank): earlier batches first (kept rows before dropped ones, in index order), then
        new rows by the keep policy; ties go to the lower node."""
        tier = np.full(nodes.n, 2, dtype=np.int8)
        rank = np.empty(nodes.n, dtype=np.float64)
        pi = nodes.prior_idx
        tier[: nodes.p] = np.where(p_kept[pi], 0, 1)
        rank[: nodes.p] = pi
        rank[nodes.p :] = rank_new[nodes.new_idx]
        return tier, rank

    def describe_prior(k: int) -> dict[str, Any]:
        pr = prior_rows.row(int(k), named=True)
        return {
            "id": pr["id"],
            "source": _source_str(pr["file"], pr["line"], pr["sheet"]),
            "batch": pr["batch"],
            "text": pr.get("preview"),
        }

    def describe_new(i: int) -> dict[str, Any]:
        return {
            "id": ids[i],
            "source": new_sources[i],
            "batch": None,
            "text": display_text(raw[i])[:PREVIEW],
            "row": i,
        }

    def describe(nodes: _Nodes, node: int) -> dict[str, Any]:
        if node < nodes.p:
            return describe_prior(int(nodes.prior_idx[node]))
        return describe_new(int(nodes.new_idx[node - nodes.p]))

    def settle(
        method: str, nodes: _Nodes, labels: np.ndarray, sim: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ):
        tier, rank = tier_rank_of(nodes)
        surv = cl.survivors(labels, rank, tier)
        new_nodes = np.arange(nodes.p, nodes.n)
        lost = new_nodes[surv[new_nodes] != new_nodes]
        if len(lost) == 0:
            return 0, 0
        # clusters that lost a new row, numbered by survivor order
        lab_lost = np.unique(labels[lost])
        in_cluster = np.flatnonzero(np.isin(labels, lab_lost))
        surv_of_label = dict(zip(labels[in_cluster].tolist(), surv[in_cluster].tolist(), strict=True))
        cluster_no = {lab: k for k, lab in enumerate(sorted(surv_of_label, key=surv_of_label.__getitem__))}
        sims = sim(in_cluster, surv[in_cluster])
        sim_of = dict(zip(in_cluster.tolist(), sims.tolist(), strict=True))
        members_by: dict[int, list[int]] = {}
        for node in in_cluster.tolist():
            members_by.setdefault(int(labels[node]), []).append(node)
        for lab, members in members_by.items():
            cid = f"{method}-{cluster_no[lab]:06d}"
            s_node = int(surv[members[0]])
            s_desc = describe(nodes, s_node)
            resolved = None
            if s_node < nodes.p:
                # an earlier batch's row: if it was dropped there, its own survivor (kept) stands in
                s_prior = int(nodes.prior_idx[s_node])
                k = prior.final_survivor(s_prior)
                if k != s_prior:
                    resolved = describe_prior(k)
                target = ("prior", k)
            else:
                target = ("new", int(nodes.new_idx[s_node - nodes.p]))
            out_members = []
            for node in members:
                d = describe(nodes, node)
                d["similarity"] = round(float(sim_of[node]), 4)
                d["kept"] = bool(p_kept[nodes.prior_idx[node]]) if node < nodes.p else node == s_node
                out_members.append(d)
                if node >= nodes.p and node != s_node:
                    i = d["row"]
                    drop_method[i] = method
                    final = resolved or s_desc
                    info = {
                        "method": method,
                        "cluster": cid,
                        "survivor_id": final["id"],
                        "survivor_source": final["source"],
                        "similarity": d["similarity"],
                    }
                    if final["batch"] is not None:
                        info["survivor_batch"] = final["batch"]
                    if resolved is not None:
                        info["via_id"] = s_desc["id"]
                        info["via_source"] = s_desc["source"]
                        info["via_batch"] = s_desc["batch"]
                    drop_info[i] = info
                    matched[i] = target
                    active[i] = False
            cluster = {
                "cluster": cid,
                "method": method,
                "size": len(members),
                "survivor": s_desc,
                "min_similarity": min(m["similarity"] for m in out_members),
                "members": out_members,
            }
            if resolved is not None:
                cluster["resolved_survivor"] = {k: resolved[k] for k in ("id", "source", "batch")}
            clusters_out.append(cluster)
        return len(members_by), len(lost)

    # ---- exact
    if "exact" in config.methods:
        tm = time.perf_counter()
        new_idx = np.flatnonzero(active)
        p_idx = np.arange(prior.n) if prior is not None else np.zeros(0, dtype=np.int64)
        nodes = _Nodes(p_idx, new_idx)
        node_keys = np.concatenate(
            [prior.keys if prior is not None else np.zeros(0, np.uint64), keys[new_idx]]
        )
        labels = cl.group_labels(node_keys, node_keys != 0)
        c, d = settle("exact", nodes, labels, lambda a, b: np.ones(len(a), dtype=np.float32))
        stats["exact"] = {"clusters": c, "dropped": d, "seconds": round(time.perf_counter() - tm, 3)}

    # ---- minhash
    mh_rows_new = np.zeros(0, dtype=np.int64)
    mh_new: SignatureSet | None = None
    if "minhash" in config.methods:
        tm = time.perf_counter()
        bands, rows = config.lsh_shape()
        new_idx = np.flatnonzero(active)
        mh_rows_new = new_idx
        mh_new = _compact(ss_all, new_idx)
        del ss_all
        if prior is not None and prior.mh is not None and prior.mh.n:
            if prior.mh.sigs.shape[1] != config.num_perm:
                raise ValueError(
                    f"the index was built with num_perm={prior.mh.sigs.shape[1]}; use the same or a new --state"
                )
            p_idx = prior.mh_rows
            both = SignatureSet.concat([prior.mh, mh_new], config.num_perm)
        else:
            p_idx = np.zeros(0, dtype=np.int64)
            both = mh_new
        nodes = _Nodes(p_idx, new_idx)
        is_new = np.zeros(nodes.n, dtype=bool)
        is_new[nodes.p :] = True
        eligible = ~both.empty
        prior_mh = prior.mh if nodes.p else None

        def fetch(node_ids: np.ndarray, _p=nodes.p, _new=new_idx, _prior=prior_mh):
            """Shingles of sorted node ids: earlier batches' from the index, new rows' from the store."""
            old, fresh = node_ids[node_ids < _p], node_ids[node_ids >= _p]
            parts = []
            if len(old):
                parts.append(gather_rows(_prior.shingles, _prior.offsets, old))
            if len(fresh):
                parts.append(store.arrays(_new[fresh - _p]))
            if len(parts) == 1:
                return parts[0]
            (fa, oa), (fb, ob) = parts
            return np.concatenate([fa, fb]), np.concatenate([oa, ob[1:] + oa[-1]])

        sets = ShingleArrays(fetch, canonical=prior_mh is None)  # the store's rows are canonical
        # pairs verified together: about 64 bytes per shingle of both sides in a quarter of the budget
        mean = max(1.0, store.mean_size(n))
        block = int(max(1_000, min(VERIFY_BLOCK, config.memory_budget // 4 // (128 * mean))))
        tc = progress("near-duplicate candidates", 1) if progress else None
        labels, counts = stream_clusters(
            both.sigs,
            bands,
            rows,
            eligible,
            config.threshold,
            sets,
            is_new=is_new,
            exact=config.verify == "exact",
            budget=config.memory_budget,
            verify_block=block,
        )
        if tc:
            tc(1)

        def mh_sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            out = np.empty(len(a), dtype=np.float32)
            for s in range(0, len(a), block):
                out[s : s + block] = sets.jaccard_many(a[s : s + block], b[s : s + block])
            return out

        c, d = settle("minhash", nodes, labels, mh_sim)
        store.close()
        stats["minhash"] = minhash_stats(
            config,
            bands,
            rows,
            mh_new.short.sum(),
            counts["candidate_pairs"],
            counts["verified_pairs"],
            c,
            d,
            t_sig,
            n,
            tm,
        )
        if not counts["candidates_exact"]:
            # more unique candidates than the budget remembers: repeats were verified again (same
            # decisions), so the count includes them
            stats["minhash"]["candidate_pairs_upper_bound"] = True

    # ---- semantic
    emb_rows_new = np.zeros(0, dtype=np.int64)
    emb_new = None
    emb_model = None
    if "semantic" in config.methods:
        from curate.dedup.semantic import is_cjk, neighbour_pairs, thresholds_for
        from curate.embed import get_embedder

        tm = time.perf_counter()
        emb = embedder or get_embedder(config.embed_model)
        emb_model = emb.fingerprint
        new_idx = np.flatnonzero(active)
        if config.semantic_threshold:
            by_lang = {"zh": config.semantic_threshold, "other": config.semantic_threshold}
        else:
            by_lang = thresholds_for(emb.name)
        # per-row threshold by language (measured defaults); a pair must pass the stricter of its two
        row_thr = np.where(is_cjk(raw[new_idx] if n else raw), by_lang["zh"], by_lang["other"]).astype(
            np.float32
        )
        tick = progress(f"embeddings ({emb.name})", len(new_idx)) if progress else None
        emb_new = emb.encode(
            display_series(raw.gather(new_idx)).to_list() if len(new_idx) else [], progress=tick
        )
        emb_rows_new = new_idx
        if prior is not None and prior.n:
            stats.setdefault("warnings", []).extend(_embedding_warnings(prior, emb_model))
        if prior is not None and emb_model in prior.emb and len(prior.emb[emb_model][0]):
            p_idx, p_emb = prior.emb[emb_model]
            corpus = np.concatenate([p_emb, emb_new])
        else:
            p_idx, corpus = np.zeros(0, dtype=np.int64), emb_new
        nodes = _Nodes(p_idx, new_idx)
        thr = float(min(by_lang.values()))
        pairs, sims = neighbour_pairs(emb_new, corpus, thr, query_offset=nodes.p)
        if len(pairs) and by_lang["zh"] != by_lang["other"]:
            node_thr = np.full(nodes.n, max(by_lang.values()), dtype=np.float32)
            node_thr[nodes.p :] = row_thr  # earlier batches: the stricter threshold
            ok = sims >= np.maximum(node_thr[pairs[:, 0]], node_thr[pairs[:, 1]])
            pairs = pairs[ok]
        labels = cl.components(nodes.n, pairs[:, 0], pairs[:, 1]) if len(pairs) else np.full(nodes.n, -1)

        def sem_sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.einsum("ij,ij->i", corpus[a], corpus[b]).astype(np.float32)

        c, d = settle("semantic", nodes, labels, sem_sim)
        stats["semantic"] = {
            "model": emb.name,
            "threshold": by_lang["other"]
            if by_lang["zh"] == by_lang["other"]
            else f"zh {by_lang['zh']}, other {by_lang['other']}",
            "cjk_rows": int(is_cjk(raw[new_idx]).sum()) if len(new_idx) else 0,
            "pairs": int(len(pairs)),
            "clusters": c,
            "dropped": d,
            "seconds": round(time.perf_counter() - tm, 3),
        }

    final = resolve_survivors(drop_info, matched, clusters_out, describe_new)
    survivor_new = np.arange(n, dtype=np.int64)
    survivor_prior = np.full(n, -1, dtype=np.int64)
    for i, (kind, t) in final.items():
        if kind == "new":
            survivor_new[i] = t
        else:
            survivor_new[i] = -1
            survivor_prior[i] = t

    dropped_idx = np.array(sorted(drop_method), dtype=np.int64)
    kept_mask = np.ones(n, dtype=bool)
    kept_mask[dropped_idx] = False
    kept = frame.filter(pl.Series(kept_mask)) if n else frame
    dframe = dropped_frame(frame, dropped_idx, drop_method, drop_info)
    stats["seconds_total"] = round(time.perf_counter() - t0, 3)
    batch = BatchData(
        keys=keys,
        mh_rows=mh_rows_new,
        mh=mh_new,
        emb_rows=emb_rows_new,
        emb=emb_new,
        emb_model=emb_model,
        kept=kept_mask,
        raw=raw,
        ngram=config.ngram,
        survivor_new=survivor_new,
        survivor_prior=survivor_prior,
    )
    clusters_out.sort(key=lambda c: (METHODS.index(c["method"]), c["cluster"]))
    return DedupResult(kept, dframe, stats, clusters_out, batch)


def parse_size(text: str) -> int:
    """``"2GB"``, ``"512M"``, ``"1.5 GiB"`` or a plain number of bytes."""
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b?)\s*", str(text).lower())
    if not m:
        raise ValueError(f"--memory-budget {text!r}: expected a size such as 2GB or 512MB")
    return int(float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2) or "_"))


def _compact(ss: SignatureSet, rows: np.ndarray) -> SignatureSet:
    """``ss.take(rows)`` for increasing ``rows`` without a second copy of the signatures: they are
    moved forward in place, chunk by chunk (each chunk reads rows at or after the ones it writes)."""
    if len(rows) == ss.n:
        return ss
    sigs = ss.sigs
    for s in range(0, len(rows), 65_536):
        chunk = rows[s : s + 65_536]
        sigs[s : s + len(chunk)] = sigs[chunk]
    return SignatureSet(sigs[: len(rows)], None, None, ss.short[rows], ss.empty[rows])


def dropped_frame(
    frame: pl.DataFrame, dropped_idx: np.ndarray, drop_method: dict[int, str], drop_info: dict[int, dict]
) -> pl.DataFrame:
    """The dropped rows with ``drop_*`` and ``dup_*`` columns (shared by the local and Ray engines)."""
    if not len(dropped_idx):
        return empty_dropped(frame)
    dframe = frame[dropped_idx]
    infos = [drop_info[int(i)] for i in dropped_idx]
    dframe = mark_dropped(dframe, STAGE, [REASONS[drop_method[int(i)]] for i in dropped_idx], infos)
    return dframe.with_columns(
        pl.Series("dup_method", [x["method"] for x in infos], dtype=pl.Utf8),
        pl.Series("dup_cluster", [x["cluster"] for x in infos], dtype=pl.Utf8),
        pl.Series("dup_of", [x["survivor_id"] for x in infos], dtype=pl.Utf8),
        pl.Series("dup_of_source", [x["survivor_source"] for x in infos], dtype=pl.Utf8),
        pl.Series("dup_similarity", [x["similarity"] for x in infos], dtype=pl.Float64),
    )


def _embedding_warnings(prior: Prior, model: str) -> list[str]:
    """Earlier rows the semantic step cannot compare: embedded with another model, or never embedded
    (their batch ran without the semantic method)."""
    out = []
    embedded = np.zeros(prior.n, dtype=bool)
    for rows, _ in prior.emb.values():
        embedded[rows] = True
    others: dict[str, np.ndarray] = {m: r for m, (r, _) in prior.emb.items() if m != model}
    others.update({m: r for m, r in prior.emb_other.items() if m != model})
    for m, rows in sorted(others.items()):
        embedded[rows] = True
        out.append(
            f"{len(rows):,} earlier rows were embedded with {m}, not {model}: not compared semantically "
            "(use that --embed-model, or a new --state to compare everything with this one)"
        )
    kept = prior.rows["kept"].to_numpy() & (prior.keys != 0)
    missing = int((kept & ~embedded).sum())
    if missing:
        out.append(
            f"{missing:,} earlier kept rows have no embeddings (their batches ran without the semantic "
            "method): not compared semantically"
        )
    return out
