"""Credentials never written down: URLs are stored without user:password or secret query values.

A teacher endpoint may carry its key in the URL (``https://user:key@host/v1``, ``...?api-key=...``,
Azure's ``?sig=``). Requests need it; manifests, cache entries (``stats.json``), summaries and logs do
not. :func:`public_url` is the URL as it may be written down, :func:`scrub` applies it to every URL in
a nested structure (a manifest, a stage's config), and :func:`redact_text` removes known secret
strings from free text (an endpoint's error body that echoes the request).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

MASK = "***"
# query parameters whose value is a credential (matched case-insensitively inside the name)
SECRET_PARAM = re.compile(r"key|token|secret|passw|pwd|sig|auth|credential|session|code", re.I)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def public_url(url: str) -> str:
    """``url`` without user:password and with secret query values masked (other parameters, such as
    ``api-version``, stay: they say which API was called)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{urllib.parse.quote(k, safe='-_.~')}={MASK if SECRET_PARAM.search(k) else urllib.parse.quote(v, safe='-_.~')}"
            for k, v in pairs
        )
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, query, ""))


def url_secrets(url: str) -> list[str]:
    """The credential strings inside ``url`` (password, secret query values), for :func:`redact_text`."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return []
    out = []
    if parts.password:
        out.append(urllib.parse.unquote(parts.password))
    for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if v and SECRET_PARAM.search(k):
            out.append(v)
    return out


def redact_text(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (and its URL-encoded form) replaced by ``***``, and every URL in it
    made public."""
    for s in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        for form in {s, urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s)}:
            text = text.replace(form, MASK)
    return _URL.sub(lambda m: public_url(m.group(0)), text)


def scrub(obj: Any) -> Any:
    """A copy of a JSON-like structure with every URL string made public (for manifests and caches)."""
    if isinstance(obj, str):
        return _URL.sub(lambda m: public_url(m.group(0)), obj) if "://" in obj else obj
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub(v) for v in obj]
    return obj
