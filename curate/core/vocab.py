"""The vocabulary both halves share, defined once: record kinds and their text fields, "is this CJK"
and "how Chinese is this text", the extensions curate writes, file hashing and the fingerprint of a
model directory. Light (standard library only): `--help` may import it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

# ------------------------------------------------------------------ records

KINDS = ("sft", "preference", "kto", "text")
CONVERSATION_KINDS = ("sft", "preference", "kto")  # kinds with a question (and history, system)

# Which text fields carry content for each kind (ids, dedup, rules, stats).
CONTENT_FIELDS: dict[str, tuple[str, ...]] = {
    "sft": ("system", "question", "answer"),
    "kto": ("system", "question", "answer"),
    "preference": ("system", "question", "chosen", "rejected"),
    "text": ("text",),
}
TEXT_FIELDS = ("question", "answer", "chosen", "rejected", "text")  # every free-text column but system
# the text fields of a conversation, system prompt aside: question, answer, chosen, rejected
TURN_FIELDS = tuple(dict.fromkeys(f for k in CONVERSATION_KINDS for f in CONTENT_FIELDS[k] if f != "system"))
# The field holding each kind's response (a preference row's chosen one; a plain-text row's text, all it
# has): what a report shows as the answer, what dedup compares after the question.
RESPONSE_FIELD = {"sft": "answer", "preference": "chosen", "kto": "answer", "text": "text"}
RESPONSE_FIELDS = tuple(dict.fromkeys(RESPONSE_FIELD[k] for k in KINDS))  # answer, chosen, text

# ------------------------------------------------------------------ files

WRITABLE_EXTENSIONS = (".jsonl", ".json", ".parquet", ".csv", ".tsv", ".xlsx")
COMPRESSED_EXTENSIONS = (".gz", ".zst", ".zstd", ".bz2")
TRAINER_EXTENSIONS = (".jsonl", ".json")  # what `curate export` writes for a trainer


def side_path(out: Path, suffix: str) -> Path:
    """`data.filtered.jsonl` -> `data.filtered.dropped.jsonl`: the file beside an output holding its
    dropped / rejects / clusters rows (side files are always JSONL)."""
    return out.with_name(f"{output_stem(out)}.{suffix}.jsonl")


def output_stem(out: Path) -> str:
    """`data.filtered.jsonl` -> `data.filtered`: an output's name without its data extension."""
    name = out.name
    for ext in WRITABLE_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ model fingerprints
#
# A model's identity in cache keys (teacher generations, scores, embeddings, stage caches): what its
# files hold, never when they were written, so a copy of a model has the fingerprint of the original.
# The callers keep the header and the large-file sampling they have always used: each fingerprint is a
# key of caches users already have, and changing it would make every one of them miss.

FileContent = Callable[[Path, int], Iterable[bytes]]  # (file, size) -> the bytes that stand for it


def fingerprint_files(root: Path, skip_suffixes: tuple[str, ...] = ()) -> list[Path]:
    """The files a model fingerprint covers, sorted: every file under ``root``, subfolders included,
    except hidden files, files in hidden folders (``.git/``, the ``.cache/`` that ``hf download
    --local-dir`` leaves: they change when the model does not) and names ending in one of
    ``skip_suffixes`` (lower case); ``[root]`` when ``root`` is a file."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.suffix.lower() not in skip_suffixes
    )


def whole_or_ends(path: Path, size: int, whole_up_to: int = 64 << 20, end: int = 1 << 20) -> Iterator[bytes]:
    """A file's bytes for a fingerprint: all of them up to ``whole_up_to`` bytes, else the first and
    the last ``end`` bytes (weights: reading gigabytes for a cache key would cost more than the miss)."""
    with open(path, "rb") as fh:
        if size <= whole_up_to:
            yield from iter(lambda: fh.read(1 << 20), b"")
        else:
            yield fh.read(end)
            fh.seek(size - end)
            yield fh.read(end)


def dir_fingerprint(
    root: str | Path,
    *,
    entry: str = "{rel}:{size}",
    content: FileContent = whole_or_ends,
    skip_suffixes: tuple[str, ...] = (),
    seed: bytes = b"",
) -> str:
    """Hex sha256 identifying a model directory (or one model file) by content: ``seed``, then for each
    of :func:`fingerprint_files` its ``entry`` line (``rel``: the path relative to ``root`` with ``/``
    separators, the file name for a file; ``size``: its size in bytes) followed by the bytes
    ``content`` gives for it. No modification time: copying a model keeps its fingerprint."""
    root = Path(root)
    h = hashlib.sha256(seed)
    for f in fingerprint_files(root, skip_suffixes):
        size = f.stat().st_size
        rel = f.name if f == root else f.relative_to(root).as_posix()
        h.update(entry.format(rel=rel, size=size).encode())
        for chunk in content(f, size):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ CJK
#
# One answer to "is this character CJK?": scripts written WITHOUT spaces between words, so every
# character is a unit of its own (dedup shingles, repetition tokens, token estimates, fastText
# features). That is Han (every block, extension B and beyond included), Japanese kana and bopomofo.
# Hangul is not: Korean separates words with spaces, so a Hangul word is a word like a Latin one;
# tokenisers that want one unit per Hangul syllable add HANGUL_RANGES explicitly.
# "Is this Chinese?" (language detection) counts Han only: kana means Japanese.

HAN_RANGES: tuple[tuple[int, int], ...] = (
    (0x2E80, 0x2FDF),  # radicals
    (0x3005, 0x3007),  # 々〆〇
    (0x31C0, 0x31EF),  # strokes
    (0x3400, 0x4DBF),  # extension A
    (0x4E00, 0x9FFF),  # unified ideographs
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0x20000, 0x3FFFF),  # extensions B..H
)
KANA_RANGES: tuple[tuple[int, int], ...] = (
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x31F0, 0x31FF),  # katakana phonetic extensions
    (0xFF66, 0xFF9D),  # half-width katakana (NFKC folds most)
)
BOPOMOFO_RANGES: tuple[tuple[int, int], ...] = ((0x3100, 0x312F), (0x31A0, 0x31BF))
HANGUL_RANGES: tuple[tuple[int, int], ...] = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF))

CJK_RANGES: tuple[tuple[int, int], ...] = tuple(sorted(HAN_RANGES + KANA_RANGES + BOPOMOFO_RANGES))


def char_class(*range_sets: tuple[tuple[int, int], ...]) -> str:
    """The body of a regex character class (no brackets) for these code-point ranges; valid for
    Python's ``re`` and for polars (Rust regex)."""
    parts = []
    for ranges in range_sets:
        for lo, hi in ranges:
            parts.append(chr(lo) if lo == hi else f"{chr(lo)}-{chr(hi)}")
    return "".join(parts)


CJK_CHARS = char_class(CJK_RANGES)
HAN_CHARS = char_class(HAN_RANGES)
KANA_CHARS = char_class(KANA_RANGES)
HANGUL_CHARS = char_class(HANGUL_RANGES)
CJK_PATTERN = f"[{CJK_CHARS}]"  # one CJK character
HAN_PATTERN = f"[{HAN_CHARS}]"  # one Han character (Chinese)


def is_cjk(char: str) -> bool:
    """Whether one character is CJK in the sense above (Han, kana, bopomofo; not Hangul)."""
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def is_han(char: str) -> bool:
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in HAN_RANGES)


# "How Chinese is this text?": Han characters among Han characters plus Latin words. A word, not a
# letter, on the Latin side: one English word carries about as much as one Chinese character, so a
# Chinese question quoting an English term stays Chinese. Callers pick their own threshold.
LATIN_WORD_PATTERN = r"[A-Za-z]+"
_HAN = re.compile(HAN_PATTERN)
_LATIN_WORD = re.compile(LATIN_WORD_PATTERN)


def han_share(text: str) -> float | None:
    """Han characters / (Han characters + Latin words) in ``text``; None when it has neither. Kana and
    Hangul count on neither side (they are not Chinese, nor Latin words)."""
    han = len(_HAN.findall(text))
    units = han + len(_LATIN_WORD.findall(text))
    return han / units if units else None


# Settings of the teacher client (augment --cot, pairs generated) that change how requests are made,
# never what a row becomes: stage cache keys leave them out.
TEACHER_CLIENT_SETTINGS = (
    "cache",
    "no_cache",
    "concurrency",
    "rpm",
    "max_retries",
    "api_key_env",
    "timeout",
    "max_response_bytes",
)
