"""Dedup benchmarks; every figure is printed next to a baseline run in the same process.

    python bench/bench_dedup.py                      # throughput, lsh, quality (about 2 minutes)
    python bench/bench_dedup.py --only e2e --rows 1000000
    python bench/bench_dedup.py --only paraphrase    # USE vs MiniLM on ../shared/data (a few minutes)

Sections
- throughput: MinHash signatures of ~200-character documents (45 % English, 45 % Chinese, 10 % mixed),
  shingling included, num_perm=128: ours (numpy shingles + rensa) vs datasketch per-shingle ``update``
  (on a subset) and ``MinHash.bulk``, and character shingles for Latin text with number shingles
  (default) vs without them (index format 3) and vs word shingles (before format 3); about one English
  word in 12 is a number. Target >= 20,000 docs/s, and within 20 % of the other two.
- lsh: index build + query of all documents: our numpy banding vs datasketch ``MinHashLSH``.
- quality: planted near-duplicates (edit rates 0-12 %); truth = brute-force exact Jaccard over all pairs
  (sparse matrix product); recall and precision of the pairs we put in one cluster, for Chinese, English
  and short Chinese questions, against datasketch LSH with its own parameters.
- e2e: ``curate dedup`` on N generated rows (JSONL in, JSONL out) in a subprocess; wall time and peak
  RSS against the targets (10 min, 8 GB for 1M rows).
- short: MinHash shingle size (ngram 2/3/5) on real short Chinese questions (LCQMC, AFQMC pairs):
  how many pairs reach Jaccard 0.8 and how many of those are labelled same-intent.
- paraphrase: cosine of USE-multilingual vs MiniLM on LCQMC, AFQMC, PAWS-X (zh) and MRPC (en) pairs:
  ROC-AUC, and precision/recall at thresholds; picks a threshold per model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

CJK_LO, CJK_HI = 0x4E00, 0x9FA5


# ----------------------------------------------------------------------------------------- data
def _vocab(rnd: random.Random, n: int = 13000) -> list[str]:
    return [
        "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(n)
    ]


def make_docs(
    n: int, length: int = 200, seed: int = 0, langs=("en", "zh", "mixed"), weights=(0.45, 0.45, 0.1)
):
    rnd = random.Random(seed)
    vocab = _vocab(rnd)
    out, lang_of = [], []
    for _ in range(n):
        lang = rnd.choices(langs, weights)[0]
        if lang == "en":
            words, total = [], 0
            while total < length:
                w = rnd.choice(vocab)
                words.append(w)
                total += len(w) + 1
            out.append(" ".join(words))
        elif lang == "zh":
            out.append(
                "".join(
                    chr(rnd.randint(CJK_LO, CJK_HI)) if rnd.random() > 0.08 else "，" for _ in range(length)
                )
            )
        else:
            half = length // 2
            out.append(
                " ".join(rnd.choice(vocab) for _ in range(half // 6))
                + "".join(chr(rnd.randint(CJK_LO, CJK_HI)) for _ in range(half))
            )
        lang_of.append(lang)
    return out, lang_of


def mutate(text: str, rate: float, rnd: random.Random) -> str:
    """Edit about ``rate`` of the characters (substitute, delete, insert)."""
    chars = list(text)
    k = max(1, round(len(chars) * rate)) if rate > 0 else 0
    for _ in range(k):
        if not chars:
            break
        i = rnd.randrange(len(chars))
        op = rnd.random()
        c = chars[i]
        new = (
            chr(rnd.randint(CJK_LO, CJK_HI))
            if "\u4e00" <= c <= "\u9fff"
            else rnd.choice("abcdefghijklmnopqrstuvwxyz")
        )
        if op < 0.5:
            chars[i] = new
        elif op < 0.75:
            del chars[i]
        else:
            chars.insert(i, new)
    return "".join(chars)


def planted(
    n_orig: int,
    n_var: int,
    langs,
    weights,
    length: int,
    seed: int,
    rates=(0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12),
):
    rnd = random.Random(seed + 1)
    docs, _ = make_docs(n_orig, length, seed, langs, weights)
    for _ in range(n_var):
        docs.append(mutate(docs[rnd.randrange(n_orig)], rnd.choice(rates), rnd))
    rnd.shuffle(docs)
    return docs


def python_shingles(text: str, n: int = 5) -> list[str]:
    t = " ".join(text.lower().split())
    return [t[i : i + n] for i in range(max(1, len(t) - n + 1))]


# ----------------------------------------------------------------------------------- sections
def section_throughput(n: int) -> dict:
    import polars as pl
    from datasketch import MinHash

    from curate.dedup import text
    from curate.dedup.minhash import signatures
    from curate.dedup.text import char_classes, normalise

    docs, _ = make_docs(n)
    # about one word in 12 a number (1-4 digits), so the number shingles (index format 4) are exercised
    rnd = random.Random(1)
    docs = [
        " ".join(str(rnd.randint(0, 9999)) if rnd.random() < 0.08 else w for w in d.split(" ")) for d in docs
    ]
    char_classes()
    signatures(normalise(pl.Series(docs[:2000])).to_list(), 5, 128, 42)  # warm-up
    # character shingles for Latin text with number shingles (the default since index format 4)
    # against the same without number shingles (format 3) and word shingles (before format 3),
    # interleaved three times: the best of each, so other jobs on the machine weigh on all alike
    rates: dict[str, list[float]] = {"chars": [], "chars_no_numbers": [], "words": []}
    weight = text.NUMBER_WEIGHT
    for _ in range(3):
        for variant in ("words", "chars_no_numbers", "chars"):
            text.NUMBER_WEIGHT = 0.0 if variant == "chars_no_numbers" else weight
            t = time.perf_counter()
            norm = normalise(pl.Series(docs)).to_list()
            signatures(norm, 5, 128, 42, latin="words" if variant == "words" else "chars")
            rates[variant].append(n / (time.perf_counter() - t))
    text.NUMBER_WEIGHT = weight
    ours, words, no_numbers = max(rates["chars"]), max(rates["words"]), max(rates["chars_no_numbers"])

    sub = docs[:1000]
    t = time.perf_counter()
    for d in sub:
        m = MinHash(num_perm=128)
        for s in python_shingles(d):
            m.update(s.encode("utf-8"))
    per_update = len(sub) / (time.perf_counter() - t)

    t = time.perf_counter()
    MinHash.bulk([[s.encode("utf-8") for s in python_shingles(d)] for d in docs], num_perm=128)
    bulk = n / (time.perf_counter() - t)
    res = {
        "docs": n,
        "ours_docs_per_s": round(ours),
        "word_shingles_docs_per_s": round(words),
        "ratio_chars_vs_words": round(ours / words, 3),
        "within_20pct_of_word_shingles": ours >= 0.8 * words,
        "chars_without_number_shingles_docs_per_s": round(no_numbers),
        "ratio_vs_without_number_shingles": round(ours / no_numbers, 3),
        "within_20pct_of_without_number_shingles": ours >= 0.8 * no_numbers,
        "datasketch_update_docs_per_s": round(per_update),
        "datasketch_bulk_docs_per_s": round(bulk),
        "ratio_vs_update": round(ours / per_update, 1),
        "ratio_vs_bulk": round(ours / bulk, 1),
        "target_20k_met": ours >= 20000,
    }
    return res


def section_lsh(n: int) -> dict:
    import polars as pl
    from datasketch import MinHash, MinHashLSH

    from curate.dedup.minhash import bands_for, candidate_pairs, signatures
    from curate.dedup.text import normalise

    docs = planted(int(n * 0.9), n - int(n * 0.9), ("en", "zh", "mixed"), (0.45, 0.45, 0.1), 200, 3)
    ss, _ = signatures(normalise(pl.Series(docs)).to_list(), 5, 128, 42)
    b, r = bands_for(0.8, 128)
    t = time.perf_counter()
    cand = candidate_pairs(ss.sigs, b, r, ~ss.empty)
    ours = time.perf_counter() - t

    mhs = MinHash.bulk([[s.encode() for s in python_shingles(d)] for d in docs], num_perm=128)
    t = time.perf_counter()
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for i, m in enumerate(mhs):
        lsh.insert(i, m)
    npairs = 0
    for i, m in enumerate(mhs):
        npairs += sum(1 for j in lsh.query(m) if j > i)
    ds = time.perf_counter() - t
    return {
        "docs": n,
        "ours_bands_rows": [b, r],
        "ours_build_query_s": round(ours, 3),
        "ours_candidates": int(len(cand)),
        "datasketch_bands_rows": list(lsh.b_r if hasattr(lsh, "b_r") else (lsh.b, lsh.r)),
        "datasketch_build_query_s": round(ds, 3),
        "datasketch_candidates": npairs,
        "speedup": round(ds / ours, 1),
    }


def true_pairs(docs: list[str], ngram: int, threshold: float):
    """Brute-force exact Jaccard of every pair (sparse binary matrix product) on our shingle sets."""
    import polars as pl
    from scipy.sparse import csr_matrix

    from curate.dedup.minhash import signatures
    from curate.dedup.text import normalise

    ss, _ = signatures(normalise(pl.Series(docs)).to_list(), ngram, 128, 42)
    rows, cols = [], []
    for i in range(ss.n):
        u = np.unique(ss.shingles[ss.offsets[i] : ss.offsets[i + 1]])
        rows.append(np.full(len(u), i))
        cols.append(u)
    r = np.concatenate(rows)
    _, c = np.unique(np.concatenate(cols), return_inverse=True)
    a = csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(ss.n, c.max() + 1))
    sizes = np.asarray(a.sum(axis=1)).ravel()
    inter = (a @ a.T).tocoo()
    m = inter.row < inter.col
    i, j, x = inter.row[m], inter.col[m], inter.data[m]
    jac = x / (sizes[i] + sizes[j] - x)
    keep = jac >= threshold - 1e-9
    return set(zip(i[keep].tolist(), j[keep].tolist(), strict=True)), ss


def _cluster_pairs(labels: np.ndarray) -> set:
    out = set()
    groups: dict[int, list[int]] = {}
    for i, lab in enumerate(labels.tolist()):
        if lab >= 0:
            groups.setdefault(lab, []).append(i)
    for g in groups.values():
        for x in range(len(g)):
            for y in range(x + 1, len(g)):
                out.add((g[x], g[y]))
    return out


def _pr(found: set, truth: set, true_j_ok) -> tuple[float, float]:
    recall = len(found & truth) / len(truth) if truth else 1.0
    precision = sum(1 for p in found if true_j_ok(p)) / len(found) if found else 1.0
    return recall, precision


def section_quality(n: int, threshold: float = 0.8) -> dict:
    from datasketch import MinHash, MinHashLSH

    from curate.dedup import cluster as cl
    from curate.dedup.minhash import ShingleSets, bands_for, candidate_pairs, stream_clusters, verify

    out = {}
    cases = {
        "zh_200chars": (("zh",), (1.0,), 200, 5),
        "en_200chars": (("en",), (1.0,), 200, 5),
        "mixed_200chars": (("mixed",), (1.0,), 200, 5),
        "zh_short_questions_20chars": (("zh",), (1.0,), 20, 5),
        "zh_short_questions_ngram3": (("zh",), (1.0,), 20, 3),
    }
    for name, (langs, w, length, ngram) in cases.items():
        docs = planted(n // 2, n // 2, langs, w, length, seed=hash(name) % 1000)
        truth, ss = true_pairs(docs, ngram, threshold)
        sets = ShingleSets(ss)

        def ok(p, sets=sets):
            return sets.jaccard(p[0], p[1]) >= threshold - 1e-9

        b, r = bands_for(threshold, 128)
        cand = candidate_pairs(ss.sigs, b, r, ~ss.empty)
        pairs, _ = verify(ss, cand, threshold)
        edges = {tuple(p) for p in pairs.tolist()}
        est_pairs, _ = verify(ss, cand, threshold, exact=False)
        rec_est, prec_est = _pr({tuple(p) for p in est_pairs.tolist()}, truth, ok)
        labels = cl.components(ss.n, pairs[:, 0], pairs[:, 1]) if len(pairs) else np.full(ss.n, -1)
        clusters = _cluster_pairs(labels)
        # the bounded-memory path the engine uses: the same clusters and counts
        streamed, counts = stream_clusters(ss.sigs, b, r, ~ss.empty, threshold, ShingleSets(ss))
        same_stream = _cluster_pairs(streamed) == clusters and counts["candidate_pairs"] == len(cand)
        rec_e, prec_e = _pr(edges, truth, ok)
        rec_c, prec_c = _pr(clusters, truth, ok)
        # baseline: datasketch LSH (its own b, r) + its estimate, same shingles
        mhs = []
        for i in range(ss.n):
            m = MinHash(num_perm=128)
            m.update_batch(
                [int(x).to_bytes(4, "little") for x in ss.shingles[ss.offsets[i] : ss.offsets[i + 1]]]
            )
            mhs.append(m)
        lsh = MinHashLSH(threshold=threshold, num_perm=128)
        for i, m in enumerate(mhs):
            lsh.insert(i, m)
        ds = {(min(i, j), max(i, j)) for i, m in enumerate(mhs) for j in lsh.query(m) if j != i}
        rec_d, prec_d = _pr(ds, truth, ok)
        out[name] = {
            "docs": len(docs),
            "true_pairs": len(truth),
            "recall_pairs": round(rec_e, 4),
            "precision_pairs": round(prec_e, 4),
            "recall_clusters": round(rec_c, 4),
            "precision_clusters": round(prec_c, 4),
            "estimate_only_recall": round(rec_est, 4),
            "estimate_only_precision": round(prec_est, 4),
            "datasketch_lsh_recall": round(rec_d, 4),
            "datasketch_lsh_precision": round(prec_d, 4),
            "targets_met": rec_e >= 0.95 and prec_e >= 0.95,
            "streamed_clusters_identical": same_stream,
        }
    return out


def _gen_rows(n: int, path: Path, seed: int = 7) -> None:
    """n SFT rows: ~20-char question + ~180-char answer; 10 % exact copies, 5 % near copies."""
    rng = np.random.default_rng(seed)
    base = int(n * 0.85)
    with open(path, "w", encoding="utf-8") as f:
        chunk = 50_000
        qs_all: list[str] = []
        as_all: list[str] = []
        for s in range(0, base, chunk):
            m = min(chunk, base - s)
            cps = rng.integers(CJK_LO, CJK_HI, size=(m, 200), dtype=np.uint32)
            big = cps.tobytes().decode("utf-32-le")
            for i in range(m):
                seg = big[i * 200 : (i + 1) * 200]
                q, a = seg[:20] + "？", seg[20:]
                f.write(json.dumps({"instruction": q, "output": a}, ensure_ascii=False) + "\n")
                if len(qs_all) < 200_000:
                    qs_all.append(q)
                    as_all.append(a)
        rnd = random.Random(seed)
        for k in range(n - base):
            i = rnd.randrange(len(qs_all))
            q, a = qs_all[i], as_all[i]
            if k % 3 == 2:
                a = mutate(a, 0.01, rnd)
            f.write(json.dumps({"instruction": q, "output": a}, ensure_ascii=False) + "\n")


def section_e2e(rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "rows.jsonl"
        t = time.perf_counter()
        _gen_rows(rows, inp)
        gen_s = time.perf_counter() - t
        out = Path(tmp) / "rows.deduped.jsonl"
        cmd = [str(Path(sys.executable).parent / "curate"), "dedup", str(inp), "-o", str(out), "--json"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - t
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
        summary = (
            json.loads(proc.stdout.strip().splitlines()[-1])
            if proc.stdout.strip()
            else {"stderr": proc.stderr[-2000:]}
        )
    return {
        "rows": rows,
        "generate_s": round(gen_s, 1),
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(peak_gb, 2),
        "ratio_to_10min_budget": round(wall / 600 * (1_000_000 / rows), 3),
        "kept": summary.get("kept"),
        "dropped": summary.get("dropped_by_reason"),
        "minhash_docs_per_s": (summary.get("minhash") or {}).get("docs_per_second"),
        "exit_code": proc.returncode,
    }


def _read_pairs(name: str, limit: int) -> tuple[list[str], list[str], np.ndarray]:
    a, b, y = [], [], []
    if name == "lcqmc":
        lines = (SHARED / "lcqmc" / "test.txt").read_text(encoding="utf-8").splitlines()
        rows = [ln.split("\t") for ln in lines]
    elif name == "afqmc":
        rows = [
            ln.split("\t") for ln in (SHARED / "afqmc" / "dev.txt").read_text(encoding="utf-8").splitlines()
        ]
    elif name == "pawsx_zh":
        lines = (SHARED / "pawsx-zh" / "test_2k.tsv").read_text(encoding="utf-8").splitlines()[1:]
        rows = [ln.split("\t")[1:] for ln in lines]
    else:  # mrpc
        lines = (SHARED / "mrpc" / "msr_paraphrase_test.txt").read_text(encoding="utf-8-sig").splitlines()[1:]
        rows = [[p[3], p[4], p[0]] for p in (ln.split("\t") for ln in lines)]
    for r in rows:
        if len(r) >= 3 and r[2].strip() in ("0", "1"):
            a.append(r[0])
            b.append(r[1])
            y.append(int(r[2]))
    rnd = random.Random(0)
    idx = list(range(len(a)))
    rnd.shuffle(idx)
    idx = idx[:limit]
    return [a[i] for i in idx], [b[i] for i in idx], np.array([y[i] for i in idx])


def _auc(scores: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = y == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def section_paraphrase(limit: int) -> dict:
    import polars as pl

    from curate.dedup.minhash import signatures
    from curate.dedup.text import normalise
    from curate.embed import get_embedder

    if not SHARED.is_dir():
        return {"skipped": "../shared/data not present"}
    out = {}
    models = {"use": get_embedder("use"), "minilm": get_embedder("minilm")}
    for name in ("lcqmc", "afqmc", "pawsx_zh", "mrpc"):
        a, b, y = _read_pairs(name, limit)
        res = {"pairs": len(y), "positive_rate": round(float(y.mean()), 3)}
        for key, emb in models.items():
            t = time.perf_counter()
            ea, eb = emb.encode(a), emb.encode(b)
            secs = time.perf_counter() - t
            cos = np.einsum("ij,ij->i", ea, eb)
            row = {"auc": round(_auc(cos, y), 4), "sent_per_s": round(2 * len(y) / secs)}
            for thr in (0.8, 0.85, 0.9, 0.95):
                flag = cos >= thr
                row[f"p@{thr}"] = round(float(y[flag].mean()), 3) if flag.any() else None
                row[f"r@{thr}"] = round(float(flag[y == 1].mean()), 3)
            res[key] = row
        # lexical reference: exact Jaccard of char/word 3-gram shingles
        sa, _ = signatures(normalise(pl.Series(a)).to_list(), 3, 128, 42)
        sb, _ = signatures(normalise(pl.Series(b)).to_list(), 3, 128, 42)
        jac = []
        for i in range(len(y)):
            x = set(sa.shingles[sa.offsets[i] : sa.offsets[i + 1]].tolist())
            z = set(sb.shingles[sb.offsets[i] : sb.offsets[i + 1]].tolist())
            jac.append(len(x & z) / max(1, len(x | z)))
        jac = np.array(jac)
        res["jaccard_ngram3"] = {
            "auc": round(_auc(jac, y), 4),
            "pairs_ge_0.8": int((jac >= 0.8).sum()),
            "p@0.8": round(float(y[jac >= 0.8].mean()), 3) if (jac >= 0.8).any() else None,
        }
        out[name] = res
    return out


def section_short(limit: int) -> dict:
    """MinHash shingle size on real short Chinese questions: LCQMC and AFQMC pairs (10-40 characters).
    For each --ngram: pairs whose exact Jaccard reaches 0.8, the share of them labelled same-intent,
    and the share of same-intent pairs reached (near-duplicate detection is not paraphrase detection:
    the useful figure is the precision of what it flags)."""
    import polars as pl

    from curate.dedup.minhash import signatures
    from curate.dedup.text import normalise

    if not SHARED.is_dir():
        return {"skipped": "../shared/data not present"}
    out = {}
    for name in ("lcqmc", "afqmc"):
        a, b, y = _read_pairs(name, limit)
        res = {"pairs": len(y), "mean_chars": round(float(np.mean([len(t) for t in a + b])), 1)}
        for ngram in (2, 3, 5):
            sa, _ = signatures(normalise(pl.Series(a)).to_list(), ngram, 128, 42)
            sb, _ = signatures(normalise(pl.Series(b)).to_list(), ngram, 128, 42)
            jac = np.array(
                [
                    len(x & z) / max(1, len(x | z))
                    for x, z in ((sa.shingle_set(i), sb.shingle_set(i)) for i in range(len(y)))
                ]
            )
            flag = jac >= 0.8
            res[f"ngram{ngram}"] = {
                "flagged": int(flag.sum()),
                "precision": round(float(y[flag].mean()), 3) if flag.any() else None,
                "recall_of_same_intent": round(float(flag[y == 1].mean()), 3),
            }
        out[name] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="throughput,lsh,quality", help="comma list of sections, or 'all'")
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--quality-docs", type=int, default=4_000)
    ap.add_argument("--rows", type=int, default=200_000, help="e2e rows")
    ap.add_argument("--pairs", type=int, default=2_000, help="paraphrase pairs per set")
    args = ap.parse_args()
    sections = (
        ["throughput", "lsh", "quality", "e2e", "paraphrase"] if args.only == "all" else args.only.split(",")
    )
    results = {}
    for s in sections:
        t = time.perf_counter()
        if s == "throughput":
            r = section_throughput(args.docs)
        elif s == "lsh":
            r = section_lsh(args.docs)
        elif s == "quality":
            r = section_quality(args.quality_docs)
        elif s == "e2e":
            r = section_e2e(args.rows)
        elif s == "paraphrase":
            r = section_paraphrase(args.pairs)
        elif s == "short":
            r = section_short(100_000)
        else:
            raise SystemExit(f"unknown section {s}")
        results[s] = r
        print(f"## {s} ({time.perf_counter() - t:.1f} s)")
        print(json.dumps(r, ensure_ascii=False, indent=1))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
