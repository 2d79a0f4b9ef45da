"""A fastText quality classifier: train on good/bad rows, report held-out precision/recall/AUC, save a
quantised model, and score rows with ``quality`` = P(good).

Text given to fastText (``fasttext_text``): NFKC, lower case, newlines and tabs folded to spaces, every
CJK character its own token (fastText splits on whitespace only, so Chinese would otherwise be one
"word" per sentence), the question and the answer marked with ``__q__`` / ``__a__`` tokens. Word bigrams
(``wordNgrams=2``) then give character bigrams for Chinese and word pairs for English.

Uses ``fasttext-wheel`` 0.9.2 and its low-level ``model.f.predict(text, k, threshold, "strict")``: the
high-level ``predict`` of that build raises with numpy 2 on one string and repeats the top probability
for k > 1 on lists (see the stack notes). ``bucket`` and ``dim`` are explicit so that bigram models stay
megabytes, not hundreds of megabytes; training is single-threaded with a fixed seed, so it is
deterministic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from curate.configs.score import TrainParams
from curate.core import vocab
from curate.io import atomic_write_text
from curate.score.common import ScoreError

GOOD, BAD = "__label__good", "__label__bad"
TEXT_VERSION = "ft-text/v1"

# one token per CJK character or Hangul syllable, and per CJK / full-width punctuation mark
_CJK = re.compile(f"([{vocab.CJK_CHARS}{vocab.HANGUL_CHARS}\u3000-\u303f\uff00-\uffef])")
_WS = re.compile(r"\s+")


def fasttext_text(row: Mapping[str, Any]) -> str:
    """The one-line text fastText sees for a canonical row (see the module docstring)."""
    kind = row.get("kind")
    if kind == "text":
        parts = [row.get("text") or ""]
    else:
        answer = row.get("chosen") if kind == "preference" else row.get("answer")
        parts = ["__q__", row.get("question") or "", "__a__", answer or ""]
    return clean(" ".join(parts))


def clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _CJK.sub(r" \1 ", text)
    return _WS.sub(" ", text).strip()


@contextlib.contextmanager
def _quiet_stderr():
    """fasttext-wheel prints a deprecation warning from C++ on every load_model; hide only that call."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


def load_fasttext(path: Path | str):
    import fasttext

    p = Path(path)
    if not p.is_file():
        raise ScoreError(f"quality model {p} does not exist (train one with `curate quality train`)")
    try:
        with _quiet_stderr():
            model = fasttext.load_model(str(p))
    except Exception as exc:  # noqa: BLE001
        raise ScoreError(f"{p} is not a fastText model: {exc}") from None
    labels = set(model.get_labels())
    if labels != {GOOD, BAD}:
        raise ScoreError(
            f"{p} is a fastText model with labels {sorted(labels)}; a quality model has exactly "
            f"{GOOD} and {BAD} (train one with `curate quality train`)"
        )
    return model


def prob_good(model, texts: Sequence[str]) -> list[float]:
    out = []
    for t in texts:
        pairs = model.f.predict(t, 2, 0.0, "strict")
        p = next((prob for prob, label in pairs if label == GOOD), None)
        if p is None:  # only the other label came back
            p = 1.0 - next(prob for prob, label in pairs if label == BAD)
        out.append(min(1.0, max(0.0, float(p))))
    return out


def file_fingerprint(path: Path) -> str:
    h = hashlib.sha256(TEXT_VERSION.encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class QualityScorer:
    name = "quality"
    columns = ("quality",)

    def __init__(self, model_path: Path | str):
        self.path = Path(model_path)
        self.model = load_fasttext(self.path)
        self.fingerprint = file_fingerprint(self.path)

    def payload(self, row: Mapping[str, Any]) -> Any:
        return fasttext_text(row)

    def score_rows(
        self, rows: list[Mapping[str, Any]], advance: Callable[[float], None] = lambda n: None
    ) -> list[dict[str, Any]]:
        results = []
        for row in rows:
            text = fasttext_text(row)
            if not text.replace("__q__", "").replace("__a__", "").strip():
                results.append({"error": "empty text"})
                continue
            try:
                results.append({"quality": prob_good(self.model, [text])[0]})
            except Exception as exc:  # noqa: BLE001
                results.append({"error": f"fastText failed: {type(exc).__name__}: {exc}"})
        advance(len(rows))
        return results

    def describe(self) -> dict[str, Any]:
        meta_path = self.path.with_name(self.path.name + ".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        return {
            "scorer": "quality",
            "model": str(self.path),
            "fingerprint": self.fingerprint,
            "text": TEXT_VERSION,
            "trained": {k: meta[k] for k in ("params", "rows", "heldout") if k in meta},
        }


# ---------------------------------------------------------------------------------------------- training
def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); None without both classes."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    probs: Sequence[float], labels: Sequence[bool], threshold: float
) -> dict[str, Any]:
    tp = sum(1 for p, y in zip(probs, labels, strict=True) if p >= threshold and y)
    fp = sum(1 for p, y in zip(probs, labels, strict=True) if p >= threshold and not y)
    fn = sum(1 for p, y in zip(probs, labels, strict=True) if p < threshold and y)
    tn = len(labels) - tp - fp - fn
    auc = roc_auc(probs, labels)
    return {
        "rows": len(labels),
        "positives": sum(labels),
        "threshold": threshold,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "accuracy": round((tp + tn) / len(labels), 4) if labels else None,
        "auc": None if auc is None else round(auc, 4),
    }


def _in_holdout(text: str, fraction: float, seed: int) -> bool:
    h = int(hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction


def train_classifier(
    pos_texts: Sequence[str], neg_texts: Sequence[str], out: Path | str, params: TrainParams | None = None
) -> dict[str, Any]:
    """Train, evaluate on a held-out split (chosen by a hash of each text, so it is stable), save.

    The saved model is the one evaluated (quantised when ``params.quantize``). A JSON sidecar
    ``<model>.json`` records the parameters, row counts and held-out metrics.
    """
    import fasttext

    params = params or TrainParams()
    out = Path(out)
    pos = sorted({t for t in pos_texts if t.strip()})
    neg = sorted({t for t in neg_texts if t.strip()})
    conflict = set(pos) & set(neg)
    pos = [t for t in pos if t not in conflict]
    neg = [t for t in neg if t not in conflict]
    if len(pos) < 2 or len(neg) < 2:
        raise ScoreError(
            f"need at least 2 distinct good and 2 distinct bad texts to train (got {len(pos)} good, "
            f"{len(neg)} bad after removing empties, duplicates and {len(conflict)} texts in both sets)"
        )
    if not 0 <= params.holdout < 1:
        raise ScoreError(f"holdout must be at least 0 and below 1 (got {params.holdout})")
    train, held = [], []
    for texts, label in ((pos, GOOD), (neg, BAD)):
        split = [(t, _in_holdout(t, params.holdout, params.seed)) for t in texts]
        ho = [t for t, h in split if h]
        tr = [t for t, h in split if not h]
        if params.holdout > 0 and not ho:  # tiny sets: hold out at least one of each class
            ho, tr = tr[:1], tr[1:]
        if not tr and len(ho) > 1:  # ...and train on at least one of each class
            tr, ho = ho[:1], ho[1:]
        if not tr:
            name = "good" if label == GOOD else "bad"
            raise ScoreError(
                f"no {name} text is left to train on: all {len(ho)} fell into the held-out split "
                f"(holdout={params.holdout}); add more {name} texts or lower the holdout"
            )
        train += [(label, t) for t in tr]
        held += [(label, t) for t in ho]
    # fastText reads its training data from a file; order is fixed (sorted, then by label) for determinism
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tamis-ft-") as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(f"{label} {t}\n" for label, t in train), encoding="utf-8")
        model = fasttext.train_supervised(
            str(train_file),
            epoch=params.epoch,
            lr=params.lr,
            wordNgrams=params.word_ngrams,
            dim=params.dim,
            bucket=params.bucket,
            minCount=params.min_count,
            loss="softmax",
            thread=1,
            seed=params.seed,
            verbose=0,
        )
        if params.quantize:
            model.quantize(input=str(train_file), qnorm=True, retrain=False, cutoff=params.cutoff)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_model = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        try:
            model.save_model(tmp_model)
            os.replace(tmp_model, out)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_model)
            raise
    seconds = round(time.perf_counter() - started, 2)
    metrics_train = classification_metrics(
        prob_good(model, [t for _, t in train]), [lab == GOOD for lab, _ in train], params.threshold
    )
    metrics_held = (
        classification_metrics(
            prob_good(model, [t for _, t in held]), [lab == GOOD for lab, _ in held], params.threshold
        )
        if held
        else None
    )
    info = {
        "model": str(out),
        "bytes": out.stat().st_size,
        "text": TEXT_VERSION,
        "params": asdict(params),
        "rows": {
            "good": len(pos),
            "bad": len(neg),
            "train": len(train),
            "heldout": len(held),
            "conflicting": len(conflict),
        },
        "train": metrics_train,
        "heldout": metrics_held,
        "seconds": seconds,
    }
    atomic_write_text(
        out.with_name(out.name + ".json"), json.dumps(info, indent=1, ensure_ascii=False) + "\n"
    )
    return info


def evaluate(
    model_path: Path | str, pos_texts: Sequence[str], neg_texts: Sequence[str], threshold: float = 0.5
):
    model = load_fasttext(model_path)
    texts = list(pos_texts) + list(neg_texts)
    labels = [True] * len(pos_texts) + [False] * len(neg_texts)
    return classification_metrics(prob_good(model, texts), labels, threshold)
