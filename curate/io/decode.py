"""Bytes -> text: decompression (.gz, .zst) and encoding detection that never silently mangles.

Order: BOM (UTF-8, UTF-16, UTF-32) -> UTF-16 without BOM (NUL-byte pattern) -> strict UTF-8 ->
mostly UTF-8 (a few broken lines, rejected) -> strict GB18030 (a superset of GBK/GB2312, the usual encoding of Chinese Excel/CSV exports) ->
charset-normalizer's best guess, accepted only when it decodes strictly. If nothing decodes cleanly the
text is decoded as UTF-8 and every line holding an undecodable byte is reported (the caller rejects
those rows with the byte offset), so nothing is replaced without a trace.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from curate.core.errors import InputUnusable


class InputError(InputUnusable):
    """The whole input cannot be read (exit code 2)."""


COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2"}


@dataclass
class Decoded:
    text: str
    encoding: str
    compression: str | None = None
    # problems that affect part of the file: (line number or None, message)
    warnings: list[tuple[int | None, str]] = field(default_factory=list)
    truncated: bool = False
    bad_lines: dict[int, str] = field(default_factory=dict)  # line -> reason (undecodable bytes)
    # a statistical guess: {encoding, confidence, alternatives}
    guess: dict | None = None


def split_compression(path: Path) -> tuple[str | None, str]:
    """('gzip', '.jsonl') for data.jsonl.gz; (None, '.csv') for data.csv."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        inner = suffixes[-2] if len(suffixes) > 1 else ""
        return COMPRESSIONS[suffixes[-1]], inner
    return None, suffixes[-1] if suffixes else ""


def read_bytes(path: Path) -> tuple[bytes, str | None, bool, str | None]:
    """Return (data, compression, truncated, note). A truncated archive yields what could be read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    compression, _ = split_compression(path)
    if compression is None:
        # sniff: a .jsonl that is really gzip
        if raw[:2] == b"\x1f\x8b":
            compression = "gzip"
        elif raw[:4] == b"\x28\xb5\x2f\xfd":
            compression = "zstd"
        else:
            return raw, None, False, None
    if compression == "gzip":
        return _gunzip(path, raw)
    if compression == "zstd":
        return _unzstd(path, raw)
    try:
        return bz2.decompress(raw), "bz2", False, None
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a valid bz2 file ({exc})") from None


def _gunzip(path: Path, raw: bytes) -> tuple[bytes, str, bool, str | None]:
    note = None
    if not raw.startswith(b"\x1f\x8b"):
        raise InputError(f"{path}: not a gzip file")
    try:
        return gzip.decompress(raw), "gzip", False, None
    except EOFError:
        pass
    except (OSError, zlib.error) as exc:
        note = f"gzip stream is corrupt ({exc}); kept what could be read"
    # Truncated (or corrupt at the end): keep everything that decompresses.
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw)
    except zlib.error:
        out = b""
        # decompress in small chunks to salvage the readable prefix
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunks = []
        for i in range(0, len(raw), 4096):
            try:
                chunks.append(d.decompress(raw[i : i + 4096]))
            except zlib.error:
                break
        out = b"".join(chunks)
    if not out:
        raise InputError(f"{path}: gzip stream is corrupt or truncated before any data")
    return out, "gzip", True, note or "gzip stream ends early (truncated file)"


def _unzstd(path: Path, raw: bytes) -> tuple[bytes, str, bool, str | None]:
    """Decompress every frame; a frame that never reaches its end marker means a truncated file
    (zstd's streaming reader returns the short data without an error, so check each frame's eof)."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    chunks: list[bytes] = []
    view, pos, n = memoryview(raw), 0, len(raw)
    step = 1 << 20  # bounded slices: unused_data copies what is left, so whole-buffer feeding is O(n^2)
    try:
        while pos < n:
            dobj = dctx.decompressobj()
            while not dobj.eof and pos < n:
                piece = view[pos : pos + step]
                pos += len(piece)
                chunks.append(dobj.decompress(piece))
            if not dobj.eof:
                data = b"".join(chunks)
                if not data:
                    raise InputError(f"{path}: zstd stream is truncated before any data")
                return data, "zstd", True, "zstd stream ends early (truncated file); kept what could be read"
            pos -= len(dobj.unused_data)
    except zstandard.ZstdError as exc:
        data = b"".join(chunks)
        if not data:
            raise InputError(f"{path}: zstd stream is corrupt ({exc})") from None
        return (
            data,
            "zstd",
            True,
            f"zstd stream is corrupt after {len(data)} bytes ({exc}); kept what could be read",
        )
    return b"".join(chunks), "zstd", False, None


_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]


def detect_and_decode(
    data: bytes, path: Path, encoding: str | None = None, guesses: list[dict] | None = None
) -> tuple[str, str, dict[int, str]]:
    """Return (text, encoding name, {line: reason} for lines with undecodable bytes). A statistical
    guess (charset-normalizer) is appended to ``guesses`` (encoding, confidence, alternatives)."""
    if encoding:
        try:
            return data.decode(encoding), encoding, {}
        except LookupError as exc:
            raise InputError(f"{path}: cannot decode as {encoding}: {exc}") from None
        except UnicodeDecodeError as exc:
            # the user named the encoding: a few broken lines are rejected, their neighbours kept
            if _line_safe(encoding):
                lines = re.split(rb"\r\n|\r|\n", data)
                bad = _undecodable_lines(lines, encoding)
                if len(bad) <= max(10, len(lines) // 2):
                    return _decode_with_bad_lines(lines, bad, encoding)
            raise InputError(f"{path}: cannot decode as {encoding}: {exc}") from None
    for bom, name in _BOMS:
        if data.startswith(bom):
            body, bad = _whole_code_units(data[len(bom) :], name)
            try:
                return (
                    body.decode(name.replace("-sig", "")),
                    name.replace("-le", "").replace("-be", "") + " (BOM)",
                    bad,
                )
            except UnicodeDecodeError:
                break
    # UTF-16 first: ASCII text in UTF-16 is also valid UTF-8 (NUL is a legal code point).
    utf16 = _guess_utf16(data)
    if utf16:
        body, bad = _whole_code_units(data, utf16)
        try:
            return body.decode(utf16), "utf-16", bad
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf-8", {}
    except UnicodeDecodeError:
        pass
    # A UTF-8 file with a few broken bytes must not be re-read as GB18030 (which decodes almost any
    # byte string, turning every Chinese character into mojibake): when the non-ASCII lines that do
    # decode as UTF-8 clearly outnumber the ones that don't, keep UTF-8 and reject the broken lines.
    # lines as the reader will number them (CR-only files too: the text's line ends are normalised)
    lines = re.split(rb"\r\n|\r|\n", data)
    bad = _undecodable_utf8_lines(lines)
    utf8_non_ascii = sum(1 for i, line in enumerate(lines, start=1) if i not in bad and not line.isascii())
    # a legacy-encoded (GBK, Big5...) line is almost never valid UTF-8 by chance, so as many valid
    # non-ASCII UTF-8 lines as broken ones means a UTF-8 file with damage
    if utf8_non_ascii >= max(1, len(bad)):
        return _utf8_with_bad_lines(lines, bad)
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    else:
        # Big5 (Traditional Chinese) bytes also decode as GB18030, as rare characters: when they do
        # not read as common Chinese but decode as Big5, Big5 is the better (announced) guess
        non_ascii = [line for line in lines if not line.isascii()]
        if non_ascii and not _reads_as_common_chinese(non_ascii):
            try:
                big5 = data.decode("big5")
            except UnicodeDecodeError:
                pass
            else:
                if guesses is not None:
                    guesses.append({"encoding": "big5", "confidence": 0.9, "alternatives": ["gb18030"]})
                return big5, "big5", {}
        return text, "gb18030", {}
    # "Mostly GB18030": Chinese exports with a few damaged bytes. GB18030 decodes most byte strings, so
    # the lines that decode must also read as Chinese: nearly all their characters among GB2312's 6,763
    # common ones (Latin-1 or Big5 bytes read as GB18030 give rare characters), and they must outnumber
    # the broken lines.
    gb_bad = _undecodable_lines(lines, "gb18030")
    gb_ok = [line for i, line in enumerate(lines, start=1) if i not in gb_bad and not line.isascii()]
    if len(gb_ok) >= max(1, len(gb_bad)) and _reads_as_common_chinese(gb_ok):
        return _decode_with_bad_lines(lines, gb_bad, "gb18030")
    guessed = _statistical_guess(data)
    if guessed is not None:
        try:
            text = data.decode(guessed["encoding"])
        except (UnicodeDecodeError, LookupError):
            pass
        else:
            if guesses is not None:
                guesses.append(guessed)
            return text, guessed["encoding"], {}
    if len(bad) > max(10, len(lines) // 2):
        raise InputError(
            f"{path}: cannot determine the text encoding (tried UTF-8, UTF-16, GB18030 and a statistical "
            "guess); pass --encoding NAME (e.g. --encoding big5) or convert the file to UTF-8"
        )
    return _utf8_with_bad_lines(lines, bad)


# Single-byte code pages of Western European text: a statistical detector may rank a rare Baltic or
# Central European page first (cp1257 turns "Naïve" into "Naļve"), so these win when they read the
# text as letters and common punctuation.
_WESTERN = ("cp1252", "latin_1", "iso8859_15")
_WESTERN_PUNCT = set("‘’‚“”„–—…€«»°·×÷§©®™¡¿")


def _statistical_guess(data: bytes) -> dict | None:
    """charset-normalizer's candidates, with the common encodings of the text's script preferred over
    rare ones: {encoding, confidence, alternatives}."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover
        return None
    results = list(from_bytes(data[:200_000]))
    if not results:
        return None
    best = results[0]
    chosen = best
    if best.encoding not in _WESTERN:
        for m in results:
            if m.encoding in _WESTERN and m.chaos <= best.chaos + 0.1 and _reads_western(str(m)):
                chosen = m
                break
    names = [m.encoding for m in results if m.encoding != chosen.encoding]
    return {
        "encoding": chosen.encoding,
        "confidence": round(max(0.0, 1.0 - chosen.chaos) * chosen.coherence**0.5, 2),
        "alternatives": names[:4],
    }


def _reads_western(text: str) -> bool:
    """Nearly every non-ASCII character is a letter or common punctuation (a wrong code page gives
    symbols in the middle of words: ³, ¹, ¿)."""
    other = [c for c in text if ord(c) > 127]
    if not other:
        return True
    good = sum(1 for c in other if c.isalpha() or c in _WESTERN_PUNCT)
    return good >= 0.95 * len(other)


def _reads_as_common_chinese(lines: list[bytes], sample: int = 4000) -> bool:
    """At least 90% of the non-ASCII characters of these (GB18030-decodable) lines are GB2312
    characters, the common Chinese set every real Chinese text stays within."""
    chars: list[str] = []
    for line in lines:
        chars += [c for c in line.decode("gb18030") if ord(c) > 127]
        if len(chars) >= sample:
            break
    if not chars:
        return False
    common = 0
    for c in chars:
        try:
            c.encode("gb2312")
            common += 1
        except UnicodeEncodeError:
            pass
    return common >= 0.9 * len(chars)


def _line_safe(encoding: str) -> bool:
    """An ASCII-compatible encoding whose multi-byte characters never contain a line-end byte, so the
    bytes can be split into lines before decoding."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False
    return not any(x in name for x in ("utf-16", "utf-32", "utf-7", "utf_16", "utf_32", "utf_7")) and (
        "a\n".encode(name) == b"a\n"
    )


def _undecodable_lines(lines: list[bytes], encoding: str) -> dict[int, str]:
    bad: dict[int, str] = {}
    label = codecs.lookup(encoding).name.upper().replace("_", "-")
    for i, line in enumerate(lines, start=1):
        if line.isascii():
            continue
        try:
            line.decode(encoding)
        except UnicodeDecodeError as exc:
            bad[i] = f"invalid {label} byte 0x{line[exc.start]:02x} at byte {exc.start} of the line"
    return bad


def _decode_with_bad_lines(
    lines: list[bytes], bad: dict[int, str], encoding: str
) -> tuple[str, str, dict[int, str]]:
    """Decode line by line; broken lines are reported (the reader rejects those rows)."""
    out = [
        line.decode(encoding, errors="replace") if i in bad else line.decode(encoding)
        for i, line in enumerate(lines, start=1)
    ]
    name = f"{encoding} (with undecodable lines)" if bad else encoding
    return "\n".join(out), name, bad


def _whole_code_units(data: bytes, encoding: str) -> tuple[bytes, dict[int, str]]:
    """UTF-16/32 data whose length is not a whole number of code units (a cut file): drop the partial
    unit and report the last line as damaged, so the reader rejects it instead of failing the file."""
    unit = 4 if "32" in encoding else 2 if "16" in encoding else 1
    extra = len(data) % unit
    if not extra:
        return data, {}
    data = data[:-extra]
    nl = "\n".encode(encoding.replace("-sig", ""))
    last = data.count(nl) + 1
    return data, {last: f"the file ends inside a character ({extra} stray byte(s) of {encoding})"}


def _undecodable_utf8_lines(lines: list[bytes]) -> dict[int, str]:
    return _undecodable_lines(lines, "utf-8")


def _utf8_with_bad_lines(lines: list[bytes], bad: dict[int, str]) -> tuple[str, str, dict[int, str]]:
    """Decode per line; broken lines are reported (the reader rejects those rows), never kept mangled."""
    text, _, bad = _decode_with_bad_lines(lines, bad, "utf-8")
    return text, "utf-8 (with undecodable lines)", bad


def _guess_utf16(data: bytes) -> str | None:
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    half = len(sample) / 2
    if odd > 0.3 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.3 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


def decode_file(path: Path, encoding: str | None = None) -> Decoded:
    data, compression, truncated, note = read_bytes(path)
    guesses: list[dict] = []
    text, enc, bad = detect_and_decode(data, path, encoding, guesses)
    text = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
    dec = Decoded(text=text, encoding=enc, compression=compression, truncated=truncated, bad_lines=bad)
    if guesses:
        g = dec.guess = guesses[0]
        alternatives = ", ".join(g["alternatives"]) or "none"
        dec.warnings.append(
            (
                None,
                f"the encoding is a statistical guess: {g['encoding']} (confidence {g['confidence']:.2f}; "
                f"alternatives: {alternatives}); pass --encoding NAME if the text reads wrong",
            )
        )
    if truncated:
        dec.warnings.append((None, note or "compressed stream is truncated"))
    return dec


# Mojibake repair ------------------------------------------------------------------------------------------


# Mojibake of UTF-8 read as Latin-1/CP1252 always contains characters from these blocks; clean CJK or
# ASCII text does not, so the (slow) ftfy detector runs only on candidates.
_MOJIBAKE_HINT = re.compile("[\u0080-\u024f\u02c6-\u02dc\u2013-\u2122\ufffd]")


def repair_mojibake(text: str) -> tuple[str, bool]:
    """Fix text that was UTF-8 decoded as Latin-1/CP1252 (``Ã©``, ``â€™``, ``ï»¿``) or as GBK.

    Uses ftfy's encoding fixer only (no quote or width changes) and only when ftfy's badness
    heuristic says the text is mojibake, so clean text is never touched.
    """
    if text.isascii() or _MOJIBAKE_HINT.search(text) is None:
        return text, False
    import ftfy
    from ftfy.badness import is_bad

    if not is_bad(text):
        return text, False
    fixed = ftfy.fix_encoding(text)
    return fixed, fixed != text
