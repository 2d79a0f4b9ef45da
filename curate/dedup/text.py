"""Text preparation shared by every dedup method: which fields are compared, normalisation, and
vectorised (numpy) tokenisation into units and shingles that works for CJK, Latin and mixed text.

Normalisation: Unicode NFKC (folds full-width/half-width forms), lower case, and every character that
is neither a letter/digit nor CJK treated as a separator (whitespace and punctuation vanish).

Units: each CJK character (Han, kana, bopomofo, CJK extensions) is one unit; every maximal run of
letters/digits/marks of any other script is one unit (a word); Japanese punctuation inside the kana
block (``・ ゠ ゛ ゜`` and the stand-alone sound marks NFKC leaves of the last two) are separators.
``"Python 3 的安装"`` gives the units ``python``, ``3``, ``的``, ``安``, ``装``. Shingles are ``n``
consecutive units, so Chinese is compared by character n-grams and English by word n-grams, and mixed
text by both in one stream.

Fields: the compared fields of a row (history turns, question, answer) are joined with
:data:`FIELD_SEP`, a control character that tokenises to a unit of its own (never a word character),
so ``("What is", "Python")`` and ``("What", "is Python")`` differ. A document whose only units are
field separators has no unit (it is empty, or compared by its punctuation). Displayed text (previews,
embeddings) shows the separator as a newline (:func:`display_text`).

Everything here is numpy over a chunk of documents at once (UTF-32 code points, polynomial hashes with
wrap-around uint64 arithmetic), so no Python code runs per character or per shingle.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from curate.configs.dedup import LATIN_UNITS, fields_setting  # noqa: F401  (re-exported)
from curate.core import vocab

FIELD_CHOICES = ("question", "answer", "both")

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_P = np.uint64(0x100000001B3)  # odd multiplier for polynomial hashes
_Q = np.uint64(0x9E3779B97F4A7C15)
_TAG_SHORT = np.uint64(0x5BD1E9955BD1E995)
_TAG_RAW = np.uint64(0x27D4EB2F165667C5)
_TAG_SPACE = np.uint64(0x2545F4914F6CDD1D)  # the boundary unit between two Latin words (chars mode)
_TAG_NUMBER = np.uint64(0xD6E8FEB86659FD93)  # number shingles (chars mode)

CJK_RANGES = vocab.CJK_RANGES  # Han, kana, bopomofo: one definition for every stage
# inside the kana block but punctuation: combining/stand-alone (han)dakuten as NFKC leaves them after
# a space, the double hyphen, the middle dot
CJK_SEPARATORS = (0x3099, 0x309A, 0x309B, 0x309C, 0x30A0, 0x30FB)

# Joins the compared fields of a row: a unit of its own in the key and shingle stream (class 3), so
# field boundaries count. U+001E (information separator two / record separator): never a letter, kept
# by NFKC and lower-casing, and replaced by a space where a field itself contains it.
FIELD_SEP = "\x1e"
_SEP_CLASS = 3
# Version of keys and shingles (normalisation, units, field separators): an incremental index built
# with another version holds incompatible keys and signatures.
KEY_VERSION = "nfkc-lower-units-fieldsep-v2"
# Version of the near-duplicate shingles: Latin-script text shingled by characters (word boundaries as
# units of their own) since format 3; format 2 used word n-grams, so its signatures are incompatible.
SHINGLE_VERSION = "latin-chars-numbers-v4"
# Numbers carry meaning that a few characters cannot show ("case 3" and "case 11", "#512" and "#733"
# are different rows; a typo never touches them), so in chars mode every distinct number (a word of
# decimal digits only) of a document adds this many shingles per shingle of its text, at least
# NUMBER_MIN_SHINGLES, all the numbers of a document together at most NUMBER_MAX_SHARE of its text
# shingles. Chosen with bench/bench_dedup_shingles.py (templated rows differing only in numbers kept
# apart, typo recall and MRPC/LCQMC precision unchanged or better).
NUMBER_WEIGHT = 0.2
NUMBER_MIN_SHINGLES = 4
NUMBER_MAX_SHARE = 0.5


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, vectorised (wrap-around uint64 arithmetic)."""
    h = h ^ (h >> _S33)
    h = h * _M1
    h = h ^ (h >> _S33)
    h = h * _M2
    return h ^ (h >> _S33)


@lru_cache(maxsize=1)
def digit_chars() -> np.ndarray:
    """bool per code point: a decimal digit of any script (Unicode category Nd; NFKC has already
    folded full-width digits to ASCII)."""
    table = np.zeros(0x110000, dtype=bool)
    table[[c for c in range(0x110000) if unicodedata.category(chr(c)) == "Nd"]] = True
    return table


@lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """uint8 per code point: 0 separator, 1 word character, 2 CJK character (one unit each), 3 the
    field separator (a unit of its own)."""
    table = np.zeros(0x110000, dtype=np.uint8)
    bmp = np.fromiter(
        (1 if (ch.isalnum() or unicodedata.category(ch)[0] == "M") else 0 for ch in map(chr, range(0x10000))),
        dtype=np.uint8,
        count=0x10000,
    )
    table[:0x10000] = bmp
    table[0xD800:0xE000] = 0
    table[0x10000:] = 1
    table[0x1F000:0x20000] = 0  # emoji and symbols
    table[0xE0000:] = 0  # tags, private use
    for lo, hi in CJK_RANGES:
        table[lo : hi + 1] = 2
    table[list(CJK_SEPARATORS)] = 0
    table[ord(FIELD_SEP)] = _SEP_CLASS
    return table


_POW_CACHE: dict[int, np.ndarray] = {}


def _powers(base: np.uint64, n: int) -> np.ndarray:
    key = int(base)
    have = _POW_CACHE.get(key)
    if have is None or len(have) < n:
        size = max(n, 1024, 2 * len(have) if have is not None else 0)
        arr = np.full(size, base, dtype=np.uint64)
        arr[0] = 1
        have = np.cumprod(arr, dtype=np.uint64)  # wraps modulo 2**64
        _POW_CACHE[key] = have
    return have[:n]


def fields_for(fields: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    if isinstance(fields, str):
        fields = tuple(f.strip() for f in fields.split(",") if f.strip())
    out: list[str] = []
    for f in fields:
        if f == "both":
            out += ["question", "answer"]
        elif f in ("question", "answer"):
            out.append(f)
        else:
            raise ValueError(f"unknown field {f!r}: choose question, answer or both")
    if not out:
        raise ValueError("no fields to compare")
    return tuple(dict.fromkeys(out))


def compare_text(frame: pl.DataFrame, fields: tuple[str, ...], sep: str = FIELD_SEP) -> pl.Series:
    """The raw text compared for each row: history turns and ``question`` (when ``question`` is a
    field), then the answer (``answer`` for SFT/KTO, ``chosen`` for preference rows), joined by ``sep``
    (:data:`FIELD_SEP`: field boundaries count; a field's own ``sep`` characters become spaces);
    ``text`` for plain-text rows whatever the fields. Null fields count as empty; a row without history
    has no history part. With ``sep="\\n"`` the fields are joined by a newline, leading and trailing
    newlines stripped (plain concatenation: no boundary)."""

    def clean(e: pl.Expr) -> pl.Expr:
        return e.str.replace_all(FIELD_SEP, " ", literal=True) if sep == FIELD_SEP else e

    parts: list[pl.Expr] = []
    if "question" in fields:
        if "history" in frame.columns:
            turns = (
                pl.col("history")
                .list.eval(pl.element().struct.field("content").fill_null(""))
                .list.eval(clean(pl.element()))
                .list.join(sep)
            )
            has_turns = pl.col("history").list.len().fill_null(0) > 0
            parts.append(pl.when(has_turns).then(turns + pl.lit(sep)).otherwise(pl.lit("")))
        parts.append(clean(pl.col("question").fill_null("")))
        if "answer" in fields:
            parts.append(pl.lit(sep))
    if "answer" in fields:
        ans = pl.col("answer").fill_null("")
        if "chosen" in frame.columns and "kind" in frame.columns:
            ans = pl.when(pl.col("kind") == "preference").then(pl.col("chosen").fill_null("")).otherwise(ans)
        parts.append(clean(ans))
    expr = pl.concat_str(parts, separator="")
    if sep == "\n":
        expr = expr.str.strip_chars("\n")
    if "text" in frame.columns and "kind" in frame.columns:
        expr = pl.when(pl.col("kind") == "text").then(clean(pl.col("text").fill_null(""))).otherwise(expr)
    if frame.height == 0:
        return pl.Series("compare_text", [], dtype=pl.Utf8)
    return frame.select(expr.alias("compare_text")).to_series()


def display_text(text: str | None) -> str:
    """A compared text as shown to people (previews, embeddings): field separators as newlines."""
    return (text or "").replace(FIELD_SEP, "\n").strip("\n")


def display_series(texts: pl.Series) -> pl.Series:
    """:func:`display_text` over a polars Series."""
    return texts.fill_null("").str.replace_all(FIELD_SEP, "\n", literal=True).str.strip_chars("\n")


def content_lengths(
    frame: pl.DataFrame, raw: pl.Series | None = None, fields=("question", "answer")
) -> np.ndarray:
    """Characters of question + answer (history included) per row, for ``--keep longest``; ``raw``
    is :func:`compare_text` of ``frame`` when ``fields`` already are both (reused, not recomputed)."""
    if frame.height == 0:
        return np.zeros(0, dtype=np.int64)
    full = (
        raw
        if raw is not None and tuple(fields) == ("question", "answer")
        else compare_text(frame, ("question", "answer"))
    )
    n_chars = full.fill_null("").str.len_chars()
    n_sep = full.fill_null("").str.count_matches(FIELD_SEP, literal=True)
    return (n_chars - n_sep).fill_null(0).to_numpy().astype(np.int64)


def normalise(texts: pl.Series) -> pl.Series:
    """NFKC + lower case (vectorised in polars); separators are dropped later, at tokenisation."""
    return texts.fill_null("").str.normalize("NFKC").str.to_lowercase()


@dataclass
class Tokens:
    """Units of a chunk of documents: ``hashes`` (uint64) in document order, ``doc`` (int64) per unit,
    ``counts`` units per document; ``raw_hash`` for documents with characters but no unit (only
    punctuation or emoji: compared by their exact normalised text), 0 where the document is empty."""

    hashes: np.ndarray
    doc: np.ndarray
    counts: np.ndarray
    raw_hash: np.ndarray
    n_chars: np.ndarray
    # ``latin="chars"`` mode: True for the units of Latin-script words (characters and boundaries);
    # a shingle that starts on one spans ``latin_n`` units (see :func:`shingles`)
    latin: np.ndarray | None = None
    # ``latin="chars"`` mode: True for the digits of numbers (words of decimal digits only)
    digit: np.ndarray | None = None


def _codepoints(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    cp = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    return cp, lengths


def tokenize(texts: list[str], latin: str = "words") -> Tokens:
    """Units of already-normalised texts (see :func:`normalise`).

    ``latin="words"``: every run of letters/digits of a non-CJK script is one unit (decontamination's
    13-word n-grams). ``latin="chars"`` (near-duplicate shingles): every such character is a unit and
    a boundary unit stands between two words, so ``"the cat"`` gives ``t h e _ c a t``; CJK characters
    and field separators are units as in words mode. Both modes group the same texts as exact
    duplicates (:func:`doc_keys`), with different key values."""
    if latin not in LATIN_UNITS:
        raise ValueError(f"latin units must be one of {', '.join(LATIN_UNITS)}, got {latin!r}")
    n_docs = len(texts)
    cp, lengths = _codepoints(texts)
    char_doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    cls = char_classes()[cp]
    keep = cls > 0
    pos = np.flatnonzero(keep)
    kcp = cp[pos].astype(np.uint64)
    kcls = cls[pos]
    kdoc = char_doc[pos]
    n = len(pos)
    starts_flag = np.ones(n, dtype=bool)
    if n > 1:
        cont = (kcls[1:] == 1) & (kcls[:-1] == 1) & (pos[1:] == pos[:-1] + 1) & (kdoc[1:] == kdoc[:-1])
        starts_flag[1:] = ~cont
    if latin == "chars":
        return _char_units(texts, lengths, kcp, kcls, kdoc, starts_flag)
    unit_starts = np.flatnonzero(starts_flag)
    # position of each kept character inside its unit
    unit_of_char = np.cumsum(starts_flag) - 1
    pos_in_unit = np.arange(n, dtype=np.int64) - unit_starts[unit_of_char]
    weights = _powers(_P, int(pos_in_unit.max()) + 1 if n else 1)[pos_in_unit]
    vals = (kcp + np.uint64(1)) * weights
    if n:
        uh = np.add.reduceat(vals, unit_starts)
        ulen = np.diff(np.append(unit_starts, n)).astype(np.uint64)
        uh = fmix64(uh ^ (ulen * _Q))
        udoc = kdoc[unit_starts]
        sep = kcls[unit_starts] == _SEP_CLASS
        if sep.any():
            # field separators count only in documents with at least one real unit
            real = np.bincount(udoc[~sep], minlength=n_docs)
            keep_unit = ~sep | (real[udoc] > 0)
            uh, udoc = uh[keep_unit], udoc[keep_unit]
    else:
        uh = np.zeros(0, dtype=np.uint64)
        udoc = np.zeros(0, dtype=np.int64)
    counts = np.bincount(udoc, minlength=n_docs).astype(np.int64)
    return Tokens(uh, udoc, counts, _raw_hashes(texts, counts, lengths), lengths)


def _char_units(
    texts: list[str],
    lengths: np.ndarray,
    kcp: np.ndarray,
    kcls: np.ndarray,
    kdoc: np.ndarray,
    word_start: np.ndarray,
) -> Tokens:
    """``latin="chars"`` units from the kept characters of :func:`tokenize`: one unit per character
    (the hash a one-character word has in words mode, so CJK characters and the field separator hash
    as before) and a boundary unit before every Latin word that follows another Latin word. The unit
    sequence determines the word sequence and back, so exact keys group the same texts as in words
    mode (their values differ)."""
    n_docs = len(texts)
    n = len(kcp)
    ch = fmix64((kcp + np.uint64(1)) ^ _Q)
    boundary = np.zeros(n, dtype=bool)
    if n > 1:
        boundary[1:] = word_start[1:] & (kcls[1:] == 1) & (kcls[:-1] == 1) & (kdoc[1:] == kdoc[:-1])
    nb = int(boundary.sum())
    at = np.arange(n, dtype=np.int64) + np.cumsum(boundary)  # each character's place among the units
    uh = np.empty(n + nb, dtype=np.uint64)
    udoc = np.empty(n + nb, dtype=np.int64)
    uh[at] = ch
    udoc[at] = kdoc
    # digits of numbers: words made of digits only ("3", "#512", "2023年"), not of identifiers ("t0",
    # "python3", "u5x3"), which stay plain text
    is_digit = digit_chars()[kcp]
    if n:
        word_of = np.cumsum(word_start) - 1
        all_digits = np.minimum.reduceat(is_digit, np.flatnonzero(word_start))
        is_digit &= all_digits[word_of] & (kcls == 1)
    digit = np.zeros(n + nb, dtype=bool)
    digit[at] = is_digit
    b_at = at[boundary] - 1
    uh[b_at] = fmix64(np.full(nb, _TAG_SPACE, dtype=np.uint64))
    udoc[b_at] = kdoc[boundary]
    cls = np.ones(n + nb, dtype=np.uint8)  # boundaries are Latin (class 1)
    cls[at] = kcls
    sep = cls == _SEP_CLASS
    if sep.any():
        real = np.bincount(udoc[~sep], minlength=n_docs)
        keep_unit = ~sep | (real[udoc] > 0)
        uh, udoc, cls, digit = uh[keep_unit], udoc[keep_unit], cls[keep_unit], digit[keep_unit]
    counts = np.bincount(udoc, minlength=n_docs).astype(np.int64)
    raw = _raw_hashes(texts, counts, lengths)
    return Tokens(uh, udoc, counts, raw, lengths, latin=cls == 1, digit=digit)


def _raw_hashes(texts: list[str], counts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Keys of documents with characters but no unit (punctuation or emoji only), 0 elsewhere."""
    n_docs = len(texts)
    raw_hash = np.zeros(n_docs, dtype=np.uint64)
    no_units = np.flatnonzero((counts == 0) & (lengths > 0))
    if len(no_units):
        # punctuation/emoji-only documents: hash every (non-space) character (the field separator is
        # whitespace to str.split, so it does not count here)
        for i in no_units:
            t = "".join(texts[i].split())
            if not t:
                continue
            arr = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64) + np.uint64(1)
            h = np.sum(arr * _powers(_P, len(arr)), dtype=np.uint64)
            raw_hash[i] = fmix64(np.array([h ^ _TAG_RAW], dtype=np.uint64))[0] | np.uint64(1)
    return raw_hash


def doc_keys(tok: Tokens) -> np.ndarray:
    """One uint64 per document identifying its normalised unit sequence (0 = empty document)."""
    n_docs = len(tok.counts)
    keys = tok.raw_hash.copy()
    if len(tok.hashes):
        starts = np.concatenate([[0], np.cumsum(tok.counts)[:-1]])
        pos = np.arange(len(tok.hashes), dtype=np.int64) - starts[tok.doc]
        vals = tok.hashes * _powers(_Q, int(pos.max()) + 1)[pos]
        has = tok.counts > 0
        sums = np.zeros(n_docs, dtype=np.uint64)
        sums[has] = np.add.reduceat(vals, starts[has])
        mixed = fmix64(sums ^ (tok.counts.astype(np.uint64) * _P)) | np.uint64(1)
        keys[has] = mixed[has]
    return keys


@dataclass
class Shingles:
    """Flat shingle hashes of a chunk of documents: document ``i`` owns
    ``hashes[offsets[i]:offsets[i+1]]``. ``short`` marks documents with fewer units than ``n`` (their
    single shingle is the whole unit sequence, so they match only near-exact copies)."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, n_docs + 1
    short: np.ndarray  # bool per document


def ngram_hashes(tok: Tokens, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of ``n`` consecutive units inside a document, with the document of each
    (documents with fewer than ``n`` units have none)."""
    uh, udoc = tok.hashes, tok.doc
    nu = len(uh)
    if nu < n:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    m = nu - n + 1
    valid = udoc[n - 1 :] == udoc[:m]
    h = uh[:m].copy()
    for k in range(1, n):
        h = h * _Q + uh[k : k + m]
    return fmix64(h[valid] ^ np.uint64(n)), udoc[:m][valid]


def mixed_ngram_hashes(tok: Tokens, n: int, latin_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`ngram_hashes` for ``latin="chars"`` units: a shingle starting on a CJK character
    (or a field separator) spans ``n`` units, one starting on a Latin character or word boundary spans
    ``latin_n`` units (a Latin letter carries less than a Chinese character). Pure CJK text gets
    exactly the shingles of :func:`ngram_hashes`. One pass of polynomial hashing up to the longer
    length, capturing each start position at its own length."""
    uh, udoc = tok.hashes, tok.doc
    nu = len(uh)
    want = np.where(tok.latin, np.int8(latin_n), np.int8(n)) if latin_n != n else None
    out_h, out_doc = [], []
    h = uh
    for length in range(1, max(n, latin_n) + 1):
        m = nu - length + 1
        if m <= 0:
            break
        if length > 1:
            h = h[:-1] * _Q + uh[length - 1 :]  # h[i]: units i .. i + length - 1
        if length not in (n, latin_n):
            continue
        sel = udoc[length - 1 :] == udoc[:m]
        if want is not None:
            sel &= want[:m] == length
        out_h.append(fmix64(h[sel] ^ np.uint64(length)))
        out_doc.append(udoc[:m][sel])
    if not out_h:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    return np.concatenate(out_h), np.concatenate(out_doc)


def number_shingles(tok: Tokens, text_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Extra shingles for the numbers of ``latin="chars"`` units (see :data:`NUMBER_WEIGHT`): each
    distinct number (a run of digit units: a word of digits only) of a document becomes ``k`` hashes (the run's hash salted
    ``0..k-1``), where ``k`` follows from the document's ``text_counts`` (its text shingles) and its
    number of distinct numbers. Two documents that differ in one number then differ in ``2k`` shingles
    more than their text shows, whatever their length; identical numbers add shared shingles."""
    dig = tok.digit
    if dig is None or NUMBER_WEIGHT <= 0 or not dig.any():
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    udoc = tok.doc
    idx = np.flatnonzero(dig)
    run_start = np.ones(len(idx), dtype=bool)
    run_start[1:] = (idx[1:] != idx[:-1] + 1) | (udoc[idx[1:]] != udoc[idx[:-1]])
    starts = np.flatnonzero(run_start)
    run_of = np.cumsum(run_start) - 1
    pos = np.arange(len(idx), dtype=np.int64) - starts[run_of]
    vals = tok.hashes[idx] * _powers(_Q, int(pos.max()) + 1)[pos]
    run_len = np.diff(np.append(starts, len(idx))).astype(np.uint64)
    run_h = fmix64(np.add.reduceat(vals, starts) ^ (run_len * _P) ^ _TAG_NUMBER)
    run_doc = udoc[idx[starts]]
    # distinct numbers per document (a repeated number counts once, as in a set of shingles)
    order = np.lexsort((run_h, run_doc))  # sorting, not np.unique(axis=0) (slow: see minhash.sorted_unique)
    run_doc, run_h = run_doc[order], run_h[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (run_doc[1:] != run_doc[:-1]) | (run_h[1:] != run_h[:-1])
    num_doc, num_h = run_doc[first], run_h[first]
    n_docs = len(tok.counts)
    per_doc = np.bincount(num_doc, minlength=n_docs)
    k_doc = np.maximum(np.ceil(NUMBER_WEIGHT * text_counts), NUMBER_MIN_SHINGLES)
    cap = np.floor(NUMBER_MAX_SHARE * text_counts / np.maximum(per_doc, 1))
    k_doc = np.maximum(np.minimum(k_doc, cap), 1).astype(np.int64)
    k = k_doc[num_doc]
    rep = np.repeat(np.arange(len(num_h)), k)
    salt = np.arange(len(rep), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
    out = fmix64(num_h[rep] ^ ((salt.astype(np.uint64) + np.uint64(1)) * _Q))
    return out, num_doc[rep]


def shingles(tok: Tokens, n: int, latin_n: int | None = None) -> Shingles:
    """Shingles of ``n`` units (``latin_n`` for those starting on a Latin unit in ``latin="chars"``
    mode, see :func:`mixed_ngram_hashes`). A document with units but no full shingle is one shingle
    of its whole unit sequence (``short``); one with no unit but punctuation is its raw hash."""
    n_docs = len(tok.counts)
    counts = tok.counts
    if tok.latin is not None:
        full, full_doc = mixed_ngram_hashes(tok, n, latin_n or n)
        text_counts = np.bincount(full_doc, minlength=n_docs)
        short = (counts > 0) & (text_counts == 0)
        num, num_doc = number_shingles(tok, np.where(short, 0, text_counts))
        keep_num = ~short[num_doc]  # a short document is matched by its whole unit sequence already
        full = np.concatenate([full, num[keep_num]])
        full_doc = np.concatenate([full_doc, num_doc[keep_num]])
    else:
        full, full_doc = ngram_hashes(tok, n)
        short = (counts > 0) & (counts < n)
    short_docs = np.flatnonzero(short)
    keys = doc_keys(tok)
    short_h = fmix64(keys[short_docs] ^ _TAG_SHORT)
    raw_docs = np.flatnonzero((counts == 0) & (tok.raw_hash != 0))
    raw_h = fmix64(tok.raw_hash[raw_docs] ^ _TAG_SHORT)
    all_doc = np.concatenate([full_doc, short_docs, raw_docs])
    all_h = np.concatenate([full, short_h, raw_h])
    order = np.argsort(all_doc, kind="stable")
    all_doc = all_doc[order]
    all_h = all_h[order]
    per_doc = np.bincount(all_doc, minlength=n_docs)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(per_doc, out=offsets[1:])
    return Shingles(all_h, offsets, short | (counts == 0) & (tok.raw_hash != 0))


def prepare(frame: pl.DataFrame, fields: tuple[str, ...]) -> tuple[pl.Series, list[str]]:
    raw = compare_text(frame, fields)
    return raw, normalise(raw).to_list()
