"""Applying a rule set to a canonical frame: redact and fix rules first (they change the text), then
every drop and flag rule on the repaired text, each hit recorded with its field, reason and span;
per-rule stats and the rule that dropped most (:func:`top_drop`)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from curate.rules.checks import Hit
from curate.rules.checks.language import identify
from curate.rules.checks.structure import REQUIRED
from curate.rules.model import HISTORY_FIELDS, SCALAR_FIELDS, STAGE, Rule, RuleSet
from curate.stage import StageResult, empty_dropped, mark_dropped


def _history_frame(frame: pl.DataFrame, role: str | None) -> pl.DataFrame:
    """One row per history turn: _row (frame row), _turn (index in the history), role, content."""
    h = (
        frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"), pl.col("history"))
        .filter(pl.col("history").list.len() > 0)
        .with_columns(pl.int_ranges(pl.col("history").list.len()).alias("_turn"))
        .explode(["history", "_turn"])
        .unnest("history")
    )
    if role is not None:
        h = h.filter(pl.col("role") == role)
    return h


def _excerpt_hit(h: Hit, text: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {"reason": h.reason}
    if h.start is not None and h.end is not None:
        d["span"] = [h.start, h.end]
        if h.match is not None:
            d["text"] = h.match if len(h.match) <= 80 else h.match[:79] + "…"
        elif text is not None:
            frag = text[h.start : h.end]
            d["text"] = frag if len(frag) <= 80 else frag[:79] + "…"
    return d


@dataclass
class _Run:
    frame: pl.DataFrame
    ruleset: RuleSet
    hits: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    pii: Counter = field(default_factory=Counter)
    _lang: pl.Series | None = None

    def lang(self) -> pl.Series:
        if self._lang is None:
            f = self.frame
            parts = [
                pl.col(c).fill_null("") for c in ("question", "answer", "chosen", "text") if c in f.columns
            ]
            joined = (
                f.select(pl.concat_str(parts, separator="\n").alias("t"))["t"]
                if parts
                else pl.Series([""] * f.height)
            )
            s = self.ruleset.settings
            self._lang = identify(joined, s.get("lid_model"), s.get("lid_min_confidence", 0.5))
        return self._lang

    def scope(self, rule: Rule) -> pl.Series | None:
        return self.lang().is_in(list(rule.lang)) if rule.lang else None

    def record(self, rule: Rule, row: int, field_name: str, hit: Hit, text: str | None) -> None:
        d = {"rule": rule.id, "action": rule.action, "field": field_name, **_excerpt_hit(hit, text)}
        self.hits.setdefault(row, []).append(d)


def _detect_field(rule: Rule, frame: pl.DataFrame, fname: str, s: pl.Series) -> pl.Series:
    fired = rule.instance.detect(s)
    if rule.check == "empty" and fname in REQUIRED:
        fired = fired | (s.is_null() & frame["kind"].is_in(list(REQUIRED[fname])))
    return fired.fill_null(False)


def apply(frame: pl.DataFrame, ruleset: RuleSet, *, stage: str = STAGE, progress=None) -> StageResult:
    """Run ``ruleset`` over a canonical frame: (kept, dropped, stats). Nothing is lost.
    ``progress(rule_id)`` is called after each rule (the CLI drives a progress bar with it)."""
    n = frame.height
    run = _Run(frame, ruleset)
    rules = ruleset.active
    for r in rules:
        run.stats[r.id] = {
            "check": r.check,
            "action": r.action,
            "fired": 0,
            "dropped": 0,
            "flagged": 0,
            "redacted": 0,
            "fixed": 0,
            "seconds": 0.0,
        }
    if n == 0:
        out = (
            frame
            if "flags" in frame.columns
            else frame.with_columns(pl.lit(None, pl.List(pl.Utf8)).alias("flags"))
        )
        return StageResult(out, empty_dropped(out), {"rules": run.stats, "pii": {}, "flagged": 0})
    # phase 1: redact and fix change the text
    for r in (r for r in rules if r.action in ("redact", "fix")):
        t0 = time.perf_counter()
        changed = _rewrite(run, r)
        run.stats[r.id]["redacted" if r.action == "redact" else "fixed"] = len(changed)
        run.stats[r.id]["fired"] = len(changed)
        run.stats[r.id]["seconds"] = round(time.perf_counter() - t0, 3)
        if progress is not None:
            progress(r.id)
    # phase 2: drop and flag read the repaired text; every rule runs on every row
    drop = pl.Series([False] * n)
    flags: dict[int, list[str]] = {}
    for r in (r for r in rules if r.action in ("drop", "flag")):
        t0 = time.perf_counter()
        fired = _judge(run, r)
        st = run.stats[r.id]
        st["fired"] = int(fired.sum())
        if r.action == "drop":
            drop = drop | fired
            st["dropped"] = st["fired"]
        else:
            st["flagged"] = st["fired"]
            for i in fired.arg_true().to_list():
                flags.setdefault(i, []).append(r.id)
        st["seconds"] = round(time.perf_counter() - t0, 3)
        if progress is not None:
            progress(r.id)
    out = run.frame
    # flags: earlier stages' flags are kept, this run's are appended
    old = out["flags"].to_list() if "flags" in out.columns else [None] * n
    new_flags = [((old[i] or []) + flags[i]) if i in flags else old[i] for i in range(n)]
    out = out.with_columns(pl.Series("flags", new_flags, dtype=pl.List(pl.Utf8)))
    drop_idx = drop.arg_true()
    kept = out.filter(~drop)
    dropped_rows = out.gather(drop_idx)
    reasons, details = [], []
    for i in drop_idx.to_list():
        hs = run.hits.get(i, [])
        first = next((h["rule"] for h in hs if h["action"] == "drop"), "rules")
        reasons.append(first)
        details.append([h for h in hs if h["action"] in ("drop", "flag")])
    dropped = mark_dropped(dropped_rows, stage, reasons, details) if len(drop_idx) else empty_dropped(out)
    stats = {
        "rules": run.stats,
        "pii": dict(sorted(run.pii.items())),
        # kept rows that this run's flag rules flagged (flags from earlier stages are not counted)
        "flagged": int((~drop.gather(list(flags))).sum()) if flags else 0,
        "rule_files": ruleset.files,
    }
    return StageResult(kept, dropped, stats)


def top_drop(rule_stats: dict[str, dict[str, Any]], rows: int) -> dict[str, Any] | None:
    """The rule that dropped most rows, its share and how to turn it off (the summaries name it: a
    default rule that removes a sixth of a domain set is the first thing to look at)."""
    best = max(rule_stats.items(), key=lambda kv: kv[1].get("dropped", 0), default=None)
    if best is None or not best[1].get("dropped"):
        return None
    rid, st = best
    return {
        "rule": rid,
        "dropped": int(st["dropped"]),
        "share": round(st["dropped"] / rows, 4) if rows else None,
        "disable": f"curate filter --disable {rid} (recipe: disable: [{rid}] under the filter stage)",
    }


def _field_series(run: _Run, fname: str) -> pl.Series | None:
    if fname in SCALAR_FIELDS:
        return run.frame[fname] if fname in run.frame.columns else None
    return None


def _judge(run: _Run, r: Rule) -> pl.Series:
    frame, n = run.frame, run.frame.height
    scope = run.scope(r)
    chk = r.instance
    if chk.row_level:
        fired = chk.detect_rows(frame).fill_null(False)
        if scope is not None:
            fired = fired & scope
        idx = fired.arg_true()
        if len(idx):
            for i, res in zip(idx.to_list(), chk.explain_rows(frame.gather(idx)), strict=True):
                if res is not None:
                    run.record(r, i, res[0], res[1], None)
                else:
                    run.record(r, i, ",".join(r.fields), Hit(chk.help), None)
        return fired
    fired = pl.Series([False] * n)
    for fname in r.fields:
        if fname in HISTORY_FIELDS:
            if "history" not in frame.columns:
                continue
            h = _history_frame(frame, HISTORY_FIELDS[fname])
            if h.height == 0:
                continue
            f_turn = chk.detect(h["content"]).fill_null(False)
            if r.check == "empty":
                f_turn = f_turn | h["content"].is_null()
            rows = h["_row"].filter(f_turn)
            if scope is not None:
                keep = scope.gather(rows)
                rows, sub = rows.filter(keep), h.filter(f_turn).filter(keep)
            else:
                sub = h.filter(f_turn)
            sub = sub.unique("_row", keep="first", maintain_order=True)  # one hit per row explains it
            texts = [t or "" for t in sub["content"].to_list()]
            for row, turn, text, hit in zip(
                sub["_row"].to_list(), sub["_turn"].to_list(), texts, chk.explain_batch(texts), strict=True
            ):
                run.record(r, row, f"history[{turn}]", hit or Hit(chk.help), text)
            if rows.len():
                fired = fired.scatter(rows.unique(), True)
            continue
        s = _field_series(run, fname)
        if s is None:
            continue
        f = _detect_field(r, frame, fname, s)
        if scope is not None:
            f = f & scope
        idx = f.arg_true()
        if not len(idx):
            continue
        texts = s.gather(idx).to_list()
        present = [k for k, t in enumerate(texts) if t is not None]
        hits: list[Hit | None] = [Hit(f"{fname} is missing")] * len(texts)
        for k, h in zip(present, chk.explain_batch([texts[k] for k in present]), strict=True):
            hits[k] = h
        for i, text, hit in zip(idx.to_list(), texts, hits, strict=True):
            run.record(r, i, fname, hit or Hit(chk.help), text)
        fired = fired | f
    return fired


def _rewrite(run: _Run, r: Rule) -> set[int]:
    """Apply a redact or fix rule; returns the rows whose text changed."""
    frame = run.frame
    scope = run.scope(r)
    placeholder = r.placeholder or run.ruleset.settings.get("placeholder", "[{TYPE}]")
    changed: set[int] = set()
    updates: dict[str, pl.Series] = {}
    for fname in r.fields:
        if fname in HISTORY_FIELDS:
            if "history" not in frame.columns:
                continue
            h = _history_frame(frame, HISTORY_FIELDS[fname])
            if h.height == 0:
                continue
            content = h["content"]
            new, rows = _rewrite_series(
                run, r, content, placeholder, scope.gather(h["_row"]) if scope is not None else None
            )
            if not rows:
                continue
            hist = frame["history"].to_list()
            for k in rows:
                i, turn = h["_row"][k], h["_turn"][k]
                hist[i] = [dict(t) for t in hist[i]]
                hist[i][turn]["content"] = new[k]
                changed.add(i)
            frame = frame.with_columns(pl.Series("history", hist, dtype=frame["history"].dtype))
            continue
        s = _field_series(run, fname)
        if s is None:
            continue
        new, rows = _rewrite_series(run, r, s, placeholder, scope)
        if rows:
            updates[fname] = new
            changed.update(rows)
    if updates:
        frame = frame.with_columns(*[v.alias(k) for k, v in updates.items()])
    run.frame = frame
    return changed


def _rewrite_series(
    run: _Run, r: Rule, s: pl.Series, placeholder: str, scope: pl.Series | None
) -> tuple[pl.Series, list[int]]:
    chk = r.instance
    s = s.cast(pl.Utf8)
    if r.action == "redact":
        cand = s.is_not_null()
        if scope is not None:
            cand = cand & scope
        idx = cand.arg_true()
        if not len(idx):
            return s, []
        sub = s.gather(idx)
        new_sub, counts = chk.redact(sub, placeholder)
        if r.check == "pii":
            run.pii.update(counts)
    else:
        fired = chk.detect(s).fill_null(False) & s.is_not_null()
        if scope is not None:
            fired = fired & scope
        idx = fired.arg_true()
        if not len(idx):
            return s, []
        sub = s.gather(idx)
        new_sub = chk.fix(sub)
    diff = (new_sub != sub).fill_null(False)
    rows = idx.filter(diff).to_list()
    if not rows:
        return s, []
    return s.scatter(idx, new_sub), rows


def summary_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"rule": rid, **st} for rid, st in stats.get("rules", {}).items()]
