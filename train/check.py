"""Pre-flight checks: run by `train check` and before every training run (no model weights loaded).

What is checked, and why it matters:
- the chat template renders every row (a template that raises on a role or a system turn silently drops
  rows in other tools);
- every row has trained tokens (completion-only or assistant-only masks that cover nothing train nothing);
- the end-of-turn token is trained (otherwise the model never learns to stop);
- pad differs from eos (collators that mask pad ids would mask the eos too);
- rows dropped or truncated are counted with reasons;
- a token-by-token label preview of a few rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from train.data import IGNORE, Prepared, Tokenized, count_spans, end_of_turn_ids


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


@dataclass
class CheckReport:
    stage: str
    checks: list[Check] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    previews: list[list[tuple[str, int, bool]]] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "ok": not self.failed,
            "checks": [c.__dict__ for c in self.checks],
            "counts": self.counts,
        }


def run_checks(tok, prep: Prepared, tk: Tokenized, max_length: int, preview_rows: int = 2) -> CheckReport:
    rep = CheckReport(stage=prep.stage)
    n_in = len(prep.rows)
    # 1. template applies to every row
    if prep.stage != "pt":
        rep.checks.append(_template_check(tk, n_in))
    # rows left to train at all (after rows too long for max_length were dropped)
    if not tk.rows:
        dropped_now = dict(prep.dropped)
        why = "; ".join(f"{n} x {r}" for r, n in dropped_now.items()) or "every row failed"
        rep.checks.append(Check("rows left", "fail", f"no row can be trained: {why}"))
    # 2.-3. masks and end of turn (SFT/PT are tokenized with labels)
    long_rows = sum(1 for n in tk.lengths if n > max_length)
    trunc = 0 if prep.stage == "pt" else long_rows  # continued pretraining splits long documents instead
    if prep.stage in ("sft", "pt") and tk.rows:
        rep.checks.extend(_label_checks(tok, prep.stage, tk, max_length))
    # 4. pad vs eos
    rep.checks.append(_pad_check(tok))
    # 5. accounting
    _account(rep, prep, tk, max_length, trunc, long_rows)
    # 6. preview
    if prep.stage in ("sft", "pt"):
        for r in tk.rows[:preview_rows]:
            rep.previews.append(token_pieces(tok, r["input_ids"][:max_length], r["labels"][:max_length]))
    return rep


def _template_check(tk: Tokenized, n_in: int) -> Check:
    failed = sum(tk.failures.values())
    if not failed:
        return Check("chat template", "ok", f"renders all {n_in} rows")
    reasons = "; ".join(f"{n} x {r} (e.g. id {tk.failure_examples[r][0]})" for r, n in tk.failures.items())
    status = "fail" if failed == n_in else "warn"
    return Check("chat template", status, f"{failed} of {n_in} rows failed: {reasons}")


def _label_checks(tok, stage: str, tk: Tokenized, max_length: int) -> list[Check]:
    """Loss mask, truncation of every trained token, assistant turns and end of turn trained (SFT/PT)."""
    out = []
    eot = end_of_turn_ids(tok)
    empty, eot_missing, trained_tokens, total_tokens = 0, 0, 0, 0
    empty_after_trunc = 0
    for r in tk.rows:
        labels = r["labels"]
        trained = [x for x in labels[1:] if x != IGNORE]
        trained_tokens += len(trained)
        total_tokens += len(labels)
        if not trained:
            empty += 1
        elif not any(x != IGNORE for x in labels[1:max_length]):
            empty_after_trunc += 1
        if stage == "sft" and trained and not (eot & set(trained)):
            eot_missing += 1
    if empty:
        out.append(
            Check(
                "loss mask",
                "fail" if empty == len(tk.rows) else "warn",
                f"{empty} rows have no trained token",
            )
        )
    else:
        share = trained_tokens / max(1, total_tokens)
        detail = f"every row trains tokens ({trained_tokens} of {total_tokens}, {share:.0%})"
        out.append(Check("loss mask", "ok", detail))
    if empty_after_trunc:
        detail = f"{empty_after_trunc} rows lose every trained token at max_length {max_length}"
        out.append(Check("truncation", "warn", detail))
    if stage == "sft" and tk.expected_spans:
        out.extend(_turns_check(tk))
    if stage == "sft":
        out.append(_end_of_turn_check(tok, eot, eot_missing))
    return out


def _turns_check(tk: Tokenized) -> list[Check]:
    """Every assistant turn must be trained: a template that renders turns differently depending on what
    follows (Qwen3's <think> on the last turn) must not leave earlier turns untrained."""
    short = [
        (rid, got, want)
        for r, rid, want in zip(tk.rows, tk.ids, tk.expected_spans, strict=False)
        if want and 0 < (got := count_spans(r["labels"])) < want
    ]
    turns = sum(tk.expected_spans)
    if short:
        rid, got, want = short[0]
        detail = (
            f"{len(short)} rows train fewer assistant turns than they have (e.g. id {rid}: "
            f"{got} of {want}); the chat template hides turns from the loss mask"
        )
        return [Check("assistant turns trained", "fail", detail)]
    if turns > len(tk.rows):
        return [Check("assistant turns trained", "ok", f"all {turns} assistant turns")]
    return []


def _end_of_turn_check(tok, eot: set[int], eot_missing: int) -> Check:
    names = ", ".join(sorted(tok.convert_ids_to_tokens(list(eot)) or []))
    if eot_missing:
        detail = f"{eot_missing} rows never train an end-of-turn token ({names}): the model would not learn to stop"
        return Check("end of turn trained", "fail", detail)
    return Check("end of turn trained", "ok", f"every row trains {names}")


def _pad_check(tok) -> Check:
    if tok.pad_token_id is None:
        return Check("pad token", "warn", "no pad token")
    if tok.pad_token_id == tok.eos_token_id:
        detail = (
            f"pad == eos ({tok.eos_token!r}); tamis builds labels explicitly so eos is still trained, but tools "
            "that mask pad ids would mask eos too"
        )
        return Check("pad token", "warn", detail)
    return Check("pad token", "ok", f"pad {tok.pad_token!r} differs from eos {tok.eos_token!r}")


def _account(rep: CheckReport, prep: Prepared, tk: Tokenized, max_length: int, trunc: int, long_rows: int):
    """The counts of the report, and the checks on long, truncated and dropped rows."""
    dropped = dict(prep.dropped)
    for r, n in tk.failures.items():
        dropped[r] = dropped.get(r, 0) + n
    rep.counts = {
        "input_rows": prep.input_rows,
        "rejected_unreadable": prep.rejected,
        "records": len(prep.rows),
        "usable": len(tk.rows),
        "dropped": dropped,
        "truncated": trunc,
        "max_length": max_length,
    }
    if prep.stage == "pt":
        rep.counts["split_documents"] = long_rows
        if long_rows:
            detail = (
                f"{long_rows} documents are longer than max_length {max_length}: split into "
                f"max_length pieces (no token is cut)"
            )
            rep.checks.append(Check("long documents", "ok", detail))
    if trunc:
        share = trunc / max(1, len(tk.rows))
        detail = f"{trunc} rows ({share:.1%}) exceed max_length {max_length}"
        rep.checks.append(Check("truncation", "warn" if share > 0.05 else "ok", detail))
    if dropped:
        detail = "; ".join(f"{n} x {r}" for r, n in sorted(dropped.items(), key=lambda x: -x[1]))
        rep.checks.append(Check("dropped rows", "warn", detail))


def token_pieces(tok, ids: list[int], labels: list[int], max_span: int = 8) -> list[tuple[str, int, bool]]:
    """(text, first token id, trained) per piece of the preview. A piece is one token, or the few
    tokens that together decode to whole characters: byte-level BPE splits a CJK character (3 UTF-8
    bytes) over tokens whose single decodes are replacement characters (``|�|�|``), so the span is
    decoded as one. ``trained``: the piece's first token carries a label."""
    out: list[tuple[str, int, bool]] = []
    start = 0
    for end in range(1, len(ids) + 1):
        text = tok.decode(ids[start:end])
        if text.endswith("\ufffd") and end < len(ids) and end - start < max_span:
            continue  # an incomplete character: take the next token too
        out.append((text, ids[start], labels[start] != IGNORE))
        start = end
    return out


def render_report(rep: CheckReport, console, preview: bool = True) -> None:
    t = Table(title=f"train {rep.stage} check")
    t.add_column("check")
    t.add_column("status")
    t.add_column("detail", overflow="fold")
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    for c in rep.checks:
        t.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail)
    console.print(t)
    c = rep.counts
    console.print(
        f"rows: {c.get('input_rows')} read, {c.get('rejected_unreadable')} unreadable, "
        f"{c.get('usable')} usable, {sum(c.get('dropped', {}).values())} dropped, {c.get('truncated')} truncated"
    )
    if preview:
        for k, rows in enumerate(rep.previews):
            line = Text(f"row {k}: ")
            for tokstr, _, trained in rows:
                shown = tokstr.replace("\n", "\\n")
                line.append(shown, style="bold green" if trained else "dim")
                line.append("|", style="dim")
            console.print(line)
        if rep.previews:
            console.print("[dim]dim = masked (-100), [/dim][bold green]green = trained[/bold green]")
