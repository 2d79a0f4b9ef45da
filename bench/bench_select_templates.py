"""Template similarity vs near-duplication in select's diversity pass, measured on real sets.

The diversity pass drops a row whose embedding cosine to a row already taken is >= --diversity. On
answers written from one template (lawyer-llama's GPT-4 consultations: "首先…其次…", the same law
citations) that removes rows that say different things. select now checks each such drop on its text
(character 5-gram Jaccard with the nearest taken row, curate.select.NEAR_DUP_OVERLAP) and reports
near-duplicates and same-template rows apart. This script measures, on real data:

1. for planted near-copies (a row with a few characters edited, a sentence added) the text overlap
   with their original: where near-duplicates lie;
2. for every row, its nearest other row: cosine and text overlap (how many close-embedding pairs are
   only template-similar);
3. the diversity pass, dropping template rows from cosine 0.9 (a plain cosine test) and with the
   default (template rows only from curate.select.TEMPLATE_COSINE): drops by kind.

Usage: python bench/bench_select_templates.py [DATA_DIR]   (default ../shared/data; rows: 1,000 each)
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETS = {
    "lawyer-llama zixun_gpt4": "lawyer-llama-legal-qa/zixun_gpt4.json",
    "lawyer-llama legal_advice": "lawyer-llama-legal-qa/legal_advice.json",
    "medicalgpt medical_sft": "medicalgpt-samples/medical_sft_1K_format.jsonl",
}
ROWS = 1000


def near_copy(text: str, rng: random.Random) -> str:
    """A near-duplicate as exports hold them: a few characters changed, a short phrase added."""
    chars = list(text)
    for _ in range(max(1, len(chars) // 60)):
        i = rng.randrange(len(chars))
        chars[i] = rng.choice("的了是在和，。")
    return "".join(chars) + rng.choice(["谢谢。", "希望对您有帮助。", " 以上仅供参考。"])


def main() -> None:
    from curate.augment.common import char_ngrams, jaccard
    from curate.embed import get_embedder
    from curate.io import load
    from curate.select import NEAR_DUP_OVERLAP, SelectConfig, row_texts, run

    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    emb = get_embedder("use")
    rng = random.Random(0)
    print(f"NEAR_DUP_OVERLAP = {NEAR_DUP_OVERLAP}; USE embeddings; first {ROWS} rows of each set\n")
    for name, rel in SETS.items():
        path = data / rel
        if not path.is_file():
            print(f"{name}: {path} not found, skipped")
            continue
        frame = load([path]).frame.head(ROWS)
        texts = row_texts(frame)
        t0 = time.perf_counter()
        vecs = emb.encode(texts)
        secs = time.perf_counter() - t0
        grams = [char_ngrams(t) for t in texts]
        # 1. planted near-copies
        planted = [jaccard(grams[i], char_ngrams(near_copy(texts[i], rng))) for i in range(0, len(texts), 10)]
        # 2. nearest other row
        sims = vecs @ vecs.T
        np.fill_diagonal(sims, -1)
        nn = sims.argmax(axis=1)
        cos = sims[np.arange(len(texts)), nn]
        overlap = np.array([jaccard(grams[i], grams[j]) for i, j in enumerate(nn)])
        print(f"== {name}: {len(texts)} rows (embedded in {secs:.1f} s)")
        print(
            f"  planted near-copies: text overlap min {min(planted):.2f}, p5 {np.quantile(planted, 0.05):.2f}, "
            f"median {np.median(planted):.2f}  (n={len(planted)})"
        )
        for t in (0.85, 0.9, 0.95):
            close = cos >= t
            dup = close & (overlap >= NEAR_DUP_OVERLAP)
            print(
                f"  rows whose nearest row has cosine >= {t}: {int(close.sum())}; of those text overlap >= "
                f"{NEAR_DUP_OVERLAP} (near-duplicate): {int(dup.sum())}, below (template only): "
                f"{int((close & ~dup).sum())}; overlap median {np.median(overlap[close]) if close.any() else 0:.2f}"
            )
        # 3. the diversity pass: template rows dropped from 0.9 (what a plain cosine test did) vs the
        # default (near-duplicates from 0.9, template-only rows from TEMPLATE_COSINE)
        for label, cfg in (
            (
                "--diversity 0.9 --template-diversity 0.9",
                SelectConfig(target=len(texts), template_diversity=0.9),
            ),
            ("default (--diversity 0.9, template 0.95)", SelectConfig(target=len(texts))),
        ):
            res = run(frame, cfg, embedder=emb)
            print(f"  select {label}: kept {res.kept.height}, {res.stats['diversity_drops']}")
        print()


if __name__ == "__main__":
    main()
