"""The ``pii`` check: personal data and secrets (see :mod:`curate.rules.pii`)."""

from __future__ import annotations

from collections import Counter

import polars as pl

from curate.rules import pii
from curate.rules.checks.base import Check, CheckError, Hit, Param, as_bool


class Pii(Check):
    name = "pii"
    help = "Personal data and secrets: " + ", ".join(pii.TYPES) + " (IDs checksum- and cards Luhn-verified)."
    default_fields = ("system", "question", "answer", "chosen", "rejected", "text", "history")
    params = {
        "types": Param((list,), list(pii.TYPES), "Which kinds of personal data to look for."),
        "public_ip_only": Param(
            (bool,), True, "Only public IPs count (127.0.0.1, 192.168.x.x are not personal)."
        ),
    }
    can_redact = True

    def prepare(self) -> None:
        bad = [t for t in self.p["types"] if t not in pii.TYPES]
        if bad:
            raise CheckError(f"unknown type {bad[0]!r}; choose from {', '.join(pii.TYPES)}", "types")

    def detect(self, s: pl.Series) -> pl.Series:
        hits = pii.scan(
            s.cast(pl.Utf8).fill_null(""), self.p["types"], public_ip_only=self.p["public_ip_only"]
        )
        out = [False] * len(s)
        for i in hits:
            out[i] = True
        return as_bool(pl.Series(out, dtype=pl.Boolean))

    def explain(self, text: str) -> Hit | None:
        fs = pii.find(text, self.p["types"], public_ip_only=self.p["public_ip_only"])
        if not fs:
            return None
        kinds = Counter(f.type for f in fs)
        # the value itself is never reported: only its type and where it is
        return Hit(
            "personal data: " + ", ".join(f"{k} x{n}" for k, n in kinds.items()),
            fs[0].start,
            fs[0].end,
            f"[{fs[0].type.upper()}]",
        )

    def redact(self, s: pl.Series, placeholder: str) -> tuple[pl.Series, Counter]:
        return pii.redact_series(s, self.p["types"], placeholder, public_ip_only=self.p["public_ip_only"])
