"""`train eval RUN --data HELDOUT`: how the tuned model does on rows it did not train on.

- answer loss and perplexity (token-weighted over the answer tokens, the same completion-only labels
  as training) for the tuned model and for the base model;
- preference data: pairwise accuracy (reward models: score(chosen) > score(rejected); policies: the
  implicit DPO reward, log-ratio to the base, higher for chosen);
- ``--reward-model``: greedy answers from the tuned and the base model to the held-out prompts, scored
  by the reward model; win rate = share where the tuned answer scores higher (ties count half).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from train import data as D
from train.callbacks import LineProgress
from train.data import IGNORE
from train.export import (
    base_model_path,
    load_run_tokenizer,
    load_trained,
    read_run,
    set_pad_token,
    trust_remote_code,
)


class EvalError(RuntimeError):
    pass


def _batches(items: list, n: int, label: str = "eval"):
    """Batches of ``n``, with ``eval: 120/400 rows (30%), 4.1 rows/s, ETA 1 min`` lines on stderr every
    few seconds (:class:`train.callbacks.LineProgress`): evaluation can run for many minutes."""
    progress = LineProgress(label, len(items))
    for i in range(0, len(items), n):
        yield items[i : i + n]
        progress.update(len(items[i : i + n]))
    progress.close()


def sequence_logprobs(model, rows: list[dict[str, list[int]]], pad_id: int, batch_size: int = 8):
    """(sum of log p over label tokens, number of label tokens) for every row.

    Prompt tuning and P-tuning (PEFT) prepend their virtual tokens to the input embeddings, so the model
    returns logits for ``virtual + n`` positions; only the last ``n`` belong to the row's tokens and the
    virtual ones are dropped. (Prefix tuning puts its virtual tokens in the key/value cache and returns
    ``n`` positions already.)"""
    import torch
    import torch.nn.functional as F

    out = []
    model.eval()
    with torch.inference_mode():
        for batch in _batches(rows, batch_size):
            n = max(len(r["input_ids"]) for r in batch)
            ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
            lab = torch.full((len(batch), n), IGNORE, dtype=torch.long)
            att = torch.zeros((len(batch), n), dtype=torch.long)
            for i, r in enumerate(batch):
                k = len(r["input_ids"])
                ids[i, :k] = torch.tensor(r["input_ids"])
                lab[i, :k] = torch.tensor(r["labels"])
                att[i, :k] = 1
            logits = model(input_ids=ids, attention_mask=att).logits
            logits = logits[:, logits.shape[1] - n : -1].float()  # drop virtual-token positions, if any
            target = lab[:, 1:]
            mask = target != IGNORE
            lp = -F.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
            lp = (lp * mask).sum(1)
            for s, m in zip(lp.tolist(), mask.sum(1).tolist(), strict=False):
                out.append((s, int(m)))
    return out


def eval_dtype():
    """The one dtype every model of an evaluation is loaded in (tuned, base and reward model): fp32, so
    that tuned-versus-base differences come from training, not from bf16 rounding of one side."""
    import torch

    return torch.float32


def load_base(meta: dict[str, Any], run_dir: Path | None = None, tokenizer=None):
    """The run's base model in :func:`eval_dtype`. Left to ``from_pretrained`` it would load in the
    checkpoint's dtype (often bf16) while the tuned model is fp32."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if meta["stage"] == "rm" else AutoModelForCausalLM
    kw = {"num_labels": 1} if meta["stage"] == "rm" else {}
    model = cls.from_pretrained(
        base_model_path(run_dir, meta) if run_dir else meta["model"],
        dtype=eval_dtype(),
        use_safetensors=True,
        local_files_only=True,
        trust_remote_code=trust_remote_code(run_dir) if run_dir else False,
        **kw,
    )
    set_pad_token(model, tokenizer)
    return model


def _loss(lps) -> dict[str, float]:
    tot = sum(s for s, _ in lps)
    n = sum(m for _, m in lps)
    loss = -tot / max(1, n)
    return {"loss": round(loss, 5), "ppl": round(math.exp(min(loss, 50)), 4), "tokens": n}


def _disabled(model):
    return model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()


def evaluate_run(
    run_dir: Path,
    data: list[str],
    *,
    reward_model: str | None = None,
    limit: int = 200,
    max_new_tokens: int = 64,
    batch_size: int = 8,
) -> dict[str, Any]:
    meta = read_run(run_dir)
    stage = meta["stage"]
    if reward_model and not Path(reward_model).is_dir():  # before any model is loaded or answer generated
        raise EvalError(f"--reward-model {reward_model}: not a directory")
    tok = load_run_tokenizer(run_dir)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    max_len = meta.get("plan", {}).get("max_length") or 1024
    res: dict[str, Any] = {"run": str(run_dir), "stage": stage, "method": meta.get("method")}
    res_frame = D.load_frame(data).frame
    kinds = set(res_frame["kind"].to_list())
    if "preference" in kinds:
        prep = D.prepare(data, "dpo")
    elif "sft" in kinds:
        prep = D.prepare(data, "sft")
    elif "kto" in kinds:
        # labelled answers: the answer loss on the good ones (like SFT), and on the bad ones separately
        prep = D.prepare(data, "kto")
    else:
        prep = D.prepare(data, "pt")
    rows = prep.rows[:limit]
    bad_rows: list[dict[str, Any]] = []
    if prep.stage == "kto":
        bad_rows = [r for r in rows if not r["label"]]
        rows = [r for r in rows if r["label"]]
        res["undesirable_rows"] = len(bad_rows)
    res["rows"] = len(rows)
    # tuned and base in the same precision (fp32), so the comparison measures training, not rounding
    model = load_trained(run_dir, meta, merged=False, dtype=eval_dtype(), tokenizer=tok)
    is_peft = hasattr(model, "disable_adapter")
    base = None
    if not is_peft:
        base = load_base(meta, run_dir, tok)

    if stage == "rm":
        if prep.stage != "dpo":
            raise EvalError("a reward model is evaluated on preference pairs (kind=preference)")
        ch = _scores(model, tok, [r["prompt"] + r["chosen"] for r in rows], max_len, batch_size)
        rj = _scores(model, tok, [r["prompt"] + r["rejected"] for r in rows], max_len, batch_size)
        res["pairwise_accuracy"] = round(
            sum(c > r for c, r in zip(ch, rj, strict=False)) / max(1, len(rows)), 4
        )
        res["mean_margin"] = round(sum(c - r for c, r in zip(ch, rj, strict=False)) / max(1, len(rows)), 5)
        return res

    def tokenized(side: str | None, rows=rows):
        out = []
        for r in rows:
            if prep.stage == "pt":
                t = D.tokenize_text(tok, r)
            else:
                rec = {"prompt": r["prompt"], "completion": r[side] if side else r["completion"]}
                t = D.tokenize_sft(tok, rec, "completion")
            out.append({"input_ids": t["input_ids"][:max_len], "labels": t["labels"][:max_len]})
        return out

    main_side = "chosen" if prep.stage == "dpo" else None
    seqs = tokenized(main_side)
    tuned = sequence_logprobs(model, seqs, tok.pad_token_id, batch_size)
    if is_peft:
        with _disabled(model):
            based = sequence_logprobs(model, seqs, tok.pad_token_id, batch_size)
    else:
        based = sequence_logprobs(base, seqs, tok.pad_token_id, batch_size)
    res["tuned"], res["base"] = _loss(tuned), _loss(based)
    if bad_rows:
        # a KTO-tuned model should make the undesirable answers less likely than the base does
        bad = tokenized(None, bad_rows)
        t_bad = sequence_logprobs(model, bad, tok.pad_token_id, batch_size)
        if is_peft:
            with _disabled(model):
                b_bad = sequence_logprobs(model, bad, tok.pad_token_id, batch_size)
        else:
            b_bad = sequence_logprobs(base, bad, tok.pad_token_id, batch_size)
        res["undesirable"] = {"tuned": _loss(t_bad), "base": _loss(b_bad)}
    if prep.stage == "dpo":
        rej = tokenized("rejected")
        t_r = sequence_logprobs(model, rej, tok.pad_token_id, batch_size)
        if is_peft:
            with _disabled(model):
                b_r = sequence_logprobs(model, rej, tok.pad_token_id, batch_size)
        else:
            b_r = sequence_logprobs(base, rej, tok.pad_token_id, batch_size)
        wins = [
            (tc - bc) > (tr - br)
            for (tc, _), (bc, _), (tr, _), (br, _) in zip(tuned, based, t_r, b_r, strict=False)
        ]
        res["preference_accuracy"] = round(sum(wins) / max(1, len(wins)), 4)

    if reward_model and prep.stage != "pt" and rows:
        res["reward"] = _win_rate(model, base, tok, rows, reward_model, max_new_tokens, batch_size, max_len)
    return res


def _scores(rm, tok, conversations: list[list[dict]], max_len: int, batch_size: int) -> list[float]:
    import torch

    rm.eval()
    out: list[float] = []
    with torch.inference_mode():
        for batch in _batches(conversations, batch_size):
            texts = [tok.apply_chat_template(c, tokenize=False) for c in batch]
            enc = tok(
                texts,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_len,
                add_special_tokens=False,
            )
            out += rm(**enc).logits[:, 0].float().tolist()
    return out


def _generate(model, tok, prompts: list[list[dict]], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy answers; generation stops at eos and at the chat template's end-of-turn tokens."""
    import torch

    stops = D.template_stop_ids(tok) or None
    answers: list[str] = []
    old_side = tok.padding_side
    tok.padding_side = "left"
    try:
        with torch.inference_mode():
            for batch in _batches(prompts, batch_size):
                texts = [
                    tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in batch
                ]
                enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=stops,
                )
                for row in gen[:, enc["input_ids"].shape[1] :]:
                    answers.append(tok.decode(row, skip_special_tokens=True).strip())
    finally:
        tok.padding_side = old_side
    return answers


def _win_rate(model, base, tok, rows, reward_model: str, max_new_tokens: int, batch_size: int, max_len: int):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    prompts = [r["prompt"] for r in rows]
    tuned = _generate(model, tok, prompts, max_new_tokens, batch_size)
    if base is None:
        with _disabled(model):
            based = _generate(model, tok, prompts, max_new_tokens, batch_size)
    else:
        based = _generate(base, tok, prompts, max_new_tokens, batch_size)
    rtok = AutoTokenizer.from_pretrained(reward_model, local_files_only=True)
    if rtok.pad_token_id is None:
        rtok.pad_token = rtok.eos_token
    rm = AutoModelForSequenceClassification.from_pretrained(
        reward_model, num_labels=1, dtype=eval_dtype(), use_safetensors=True, local_files_only=True
    )
    if rm.config.pad_token_id is None:
        rm.config.pad_token_id = rtok.pad_token_id
    st = _scores(
        rm,
        rtok,
        [p + [{"role": "assistant", "content": a}] for p, a in zip(prompts, tuned, strict=False)],
        max_len,
        batch_size,
    )
    sb = _scores(
        rm,
        rtok,
        [p + [{"role": "assistant", "content": a}] for p, a in zip(prompts, based, strict=False)],
        max_len,
        batch_size,
    )
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(st, sb, strict=False))
    return {
        "win_rate": round(wins / max(1, len(st)), 4),
        "tuned_mean_reward": round(sum(st) / max(1, len(st)), 5),
        "base_mean_reward": round(sum(sb) / max(1, len(sb)), 5),
        "examples": [
            {"prompt": p[-1]["content"], "tuned": a, "base": b}
            for p, a, b in list(zip(prompts, tuned, based, strict=False))[:3]
        ],
    }


def render(res: dict[str, Any], console) -> None:
    t = Table(
        title=f"train eval: {res['run']} ({res['stage']}, {res.get('method')}, {res.get('rows')} held-out rows)"
    )
    t.add_column("metric")
    t.add_column("tuned", justify="right")
    t.add_column("base", justify="right")
    if "tuned" in res:
        t.add_row("answer loss", f"{res['tuned']['loss']:.4f}", f"{res['base']['loss']:.4f}")
        t.add_row("perplexity", f"{res['tuned']['ppl']:.3f}", f"{res['base']['ppl']:.3f}")
    if "undesirable" in res:
        u = res["undesirable"]
        t.add_row(
            f"undesirable answer loss ({res['undesirable_rows']} rows; higher is better)",
            f"{u['tuned']['loss']:.4f}",
            f"{u['base']['loss']:.4f}",
        )
    if "preference_accuracy" in res:
        t.add_row(
            "preference accuracy (implicit reward)",
            f"{res['preference_accuracy']:.1%}",
            "50% (by definition)",
        )
    if "pairwise_accuracy" in res:
        t.add_row("pairwise accuracy", f"{res['pairwise_accuracy']:.1%}", "")
    if "reward" in res:
        r = res["reward"]
        t.add_row("mean reward", f"{r['tuned_mean_reward']:.4f}", f"{r['base_mean_reward']:.4f}")
        t.add_row("win rate (tuned over base)", f"{r['win_rate']:.1%}", "")
    console.print(t)
