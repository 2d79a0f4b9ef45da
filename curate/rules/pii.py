"""Personal data: find and redact e-mail addresses, phone numbers (mainland China and international),
Chinese resident ID numbers (checksum verified), bank card numbers (Luhn verified), IP addresses and
secrets (API keys, tokens, private keys, passwords in assignments).

Values are never logged: findings carry the type and the span only. A cheap vectorised prefilter
(polars) picks candidate rows; only those are scanned with the validating Python patterns.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

TYPES = ("email", "phone", "cn_id", "bank_card", "ip", "secret")

# anything that could start a finding; rows without it are skipped (Rust regex)
PREFILTER = (
    r"@|\d{7}|\d{3,4}[- .]\d{3,4}|\+\d|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-fA-F]{1,4}:[0-9a-fA-F]{0,4}:"
    r"|sk-|AKIA|ASIA|gh[pousr]_|github_pat_|xox[abposr]-|AIza|hf_|glpat-|-----BEGIN|eyJ"
    r"|(?i:api[_-]?key|secret|token|passw|pwd|密码|口令)"
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def cn_id_valid(s: str) -> bool:
    """GB 11643-1999 check digit of an 18-character resident ID."""
    if len(s) != 18 or not s[:17].isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == s[17].upper()


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?![A-Za-z0-9@-]|\.[A-Za-z0-9])"
)
CN_ID = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
)
BANK_CARD = re.compile(r"(?<![\d-])[2-6]\d{3}(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,3})?(?![\d-])")
PHONE_CN = re.compile(
    r"(?<![\d+])(?:(?:\+|00)86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"  # mobile
    r"|(?<![\d+])(?:\(0\d{2,3}\)|0\d{2,3})[- ]?[2-9]\d{6,7}(?:-\d{1,4})?(?!\d)"  # landline with area code
    r"|(?<!\d)400[- ]?\d{3}[- ]?\d{4}(?!\d)"  # service numbers
)
PHONE_INTL = re.compile(
    r"(?<![\w+])\+(?!86)[1-9]\d{0,2}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}(?!\d)"
    r"|(?<![\d-])\(\d{3}\)\s?\d{3}-\d{4}(?!\d)|(?<![\d-])\d{3}-\d{3}-\d{4}(?![\d-])"
)
# four octets of 0-255, not inside a longer dotted number (a digit or "." before it, ".digit" after it:
# a 5-part version); a "." closing a sentence may follow. The context checks are in _ip_context_ok().
IPV4 = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?!\d)(?!\.\d)"
)
IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})(?:(?<=::)[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?(?![0-9A-Fa-f:])"
)
SECRET = re.compile(
    r"(?<![\w-])(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}"
    r"|glpat-[A-Za-z0-9_-]{20}|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"
)
# password = "..." style assignments: only the value (group "v") is a secret
SECRET_ASSIGN = re.compile(
    r"(?i)(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password|passwd|pwd|密码|口令)"
    r"[\"']?\s*(?:[:=：]|是|为)\s*[\"']?(?P<v>[A-Za-z0-9_\-+/=.@#$%^&*!~]{8,})"
)
_PLACEHOLDER_VALUE = re.compile(
    r"(?i)^(?:.*(?:your|example|here|xxx|placeholder|dummy|changeme|\*\*\*).*|x+|\*+|\.+|<[^>]*>|\{[^}]*\}|\$\{?\w+\}?|your[_-]?\w*|changeme|example\w*|os\.environ.*|getenv.*|none|null|true|false|password\d*|secret)$"
)


# reserved for documentation and tests (RFC 2606 / 6761): addresses there belong to nobody
DOC_DOMAIN = re.compile(
    r"(?i)@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|[\w-]+\.(?:example|test|invalid|localhost))$"
)


# a dotted number right after these words is a version, not an address: "version 1.2.3.4", "v1.2.3.4",
# "ver. 1.2.3.4", "版本号：1.2.3.4", "build 10.0.19041.1"
_VERSION_CONTEXT = re.compile(r"(?i)(?:\bv|\bver|\bversion|\bbuild|\brev|版本号?)\.?\s*[:=：]?\s*$")


def _ip_context_ok(text: str, start: int, end: int) -> bool:
    """An address stands on its own: after a space, punctuation, ``//`` (a URL) or ``@`` (user@host);
    before a space, punctuation, ``/`` (a URL path or CIDR prefix), ``:`` (a port) or the end. Not a
    part of a word, a file name (``1.2.3.4.tar.gz``) or a version string."""
    prev = text[start - 1] if start else " "
    nxt = text[end] if end < len(text) else " "
    after = text[end + 1] if end + 1 < len(text) else " "
    # Chinese runs straight into an address (服务器地址8.8.8.8的): only ASCII letters and digits glue
    if _ascii_word(prev) or prev in "_-.":
        return False
    if prev == "/" and not text[:start].endswith("//"):
        return False  # a path segment (/opt/app/1.2.3.4/), not a URL host
    if _ascii_word(nxt) or nxt in "_-":
        return False
    if nxt == "." and (_ascii_word(after) or after in "_-"):
        return False  # 1.2.3.4.tar.gz, 1.2.3.4.5
    before = text[max(0, start - 12) : start]
    return not (_VERSION_CONTEXT.search(before) or _SECTION_CONTEXT.search(before))


def _ascii_word(c: str) -> bool:
    return c.isascii() and c.isalnum()


# "章节 1.2.1.1", "第1.2.3.4条", "§ 1.2.3.4": numbered sections of legal and technical documents
_SECTION_CONTEXT = re.compile(r"(?i)(?:章节?|第|条|节|款|\bsection|\bsec\.|§)\s*$")


@dataclass
class Finding:
    type: str
    start: int
    end: int


def _ip_ok(value: str, public_only: bool) -> bool:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    return ip.is_global if public_only else not ip.is_unspecified


def find(text: str, types: Iterable[str] = TYPES, *, public_ip_only: bool = True) -> list[Finding]:
    """Non-overlapping findings, earliest first; ID numbers win over bank cards and phones."""
    types = set(types)
    found: list[Finding] = []

    def add(kind: str, s: int, e: int) -> None:
        if any(s < f.end and f.start < e for f in found):
            return
        found.append(Finding(kind, s, e))

    if "secret" in types:
        for m in SECRET.finditer(text):
            add("secret", m.start(), m.end())
        for m in SECRET_ASSIGN.finditer(text):
            if not _PLACEHOLDER_VALUE.match(m.group("v")):
                add("secret", m.start("v"), m.end("v"))
    if "email" in types:
        for m in EMAIL.finditer(text):
            if not DOC_DOMAIN.search(m.group()):
                add("email", m.start(), m.end())
    if "cn_id" in types:
        for m in CN_ID.finditer(text):
            if cn_id_valid(m.group()):
                add("cn_id", m.start(), m.end())
    if "bank_card" in types:
        for m in BANK_CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 13 <= len(digits) <= 19 and luhn_valid(digits) and len(set(digits)) > 1:
                add("bank_card", m.start(), m.end())
    if "phone" in types:
        for pat in (PHONE_CN, PHONE_INTL):
            for m in pat.finditer(text):
                digits = re.sub(r"\D", "", m.group())
                if 7 <= len(digits) <= 15:
                    add("phone", m.start(), m.end())
    if "ip" in types:
        for pat in (IPV4, IPV6):
            for m in pat.finditer(text):
                if not _ip_context_ok(text, m.start(), m.end()):
                    continue  # part of a word, a file name, a version string or an outline number
                if _ip_ok(m.group(), public_ip_only):
                    add("ip", m.start(), m.end())
    found.sort(key=lambda f: f.start)
    return found


def redact_text(text: str, findings: list[Finding], placeholder: str = "[{TYPE}]") -> str:
    out, pos = [], 0
    for f in findings:
        out.append(text[pos : f.start])
        out.append(placeholder.format(type=f.type, TYPE=f.type.upper()))
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def candidates(s: pl.Series) -> pl.Series:
    """Rows that may hold personal data (vectorised; a superset of the rows with findings)."""
    return s.cast(pl.Utf8).fill_null("").str.contains(PREFILTER)


def scan(
    s: pl.Series, types: Iterable[str] = TYPES, *, public_ip_only: bool = True
) -> dict[int, list[Finding]]:
    """Row index -> findings, for the rows that have any."""
    types = tuple(types)
    texts = s.to_list()
    out: dict[int, list[Finding]] = {}
    for i in candidates(s).arg_true().to_list():
        f = find(texts[i], types, public_ip_only=public_ip_only)
        if f:
            out[i] = f
    return out


def redact_series(
    s: pl.Series, types: Iterable[str] = TYPES, placeholder: str = "[{TYPE}]", *, public_ip_only: bool = True
) -> tuple[pl.Series, Counter]:
    """The series with every finding replaced by its placeholder, and counts per type."""
    hits = scan(s, types, public_ip_only=public_ip_only)
    if not hits:
        return s, Counter()
    texts = s.to_list()
    counts: Counter = Counter()
    for i, fs in hits.items():
        texts[i] = redact_text(texts[i], fs, placeholder)
        counts.update(f.type for f in fs)
    return pl.Series(s.name, texts, dtype=pl.Utf8), counts
