"""Build the embedded demonstration models in ``samples/models/`` from the sample data in this repo.

    python samples/models/build.py            # about a minute or two on 2 CPU cores
    python samples/models/build.py --check    # rebuild into a temp dir and compare hashes with the committed ones

What it builds (all offline, deterministic: fixed seeds, a fixed thread count, deterministic torch algorithms):

``lm/``            a small Llama-style causal LM (BPE tokenizer trained here, ChatML template), trained
                   from scratch with a plain next-token loss on the good rows (planted junk and broken
                   rows left out) of the *training split* of ``samples/ops_qa.jsonl``, plus the other
                   sample texts (multi-turn chats, docs, preferred answers) when present: a reference
                   model of good in-domain text, as perplexity filters use.
``reward/``        a Llama sequence-classification reward model: the LM's backbone plus a scalar head,
                   trained with the Bradley-Terry pairwise loss on ``samples/ops_prefs.jsonl`` (chosen >
                   rejected) when present, and on self-made pairs from the training split (a row's own
                   answer > another row's answer to a different question).
``quality.ftz``    a quantised fastText classifier: clean rows of the training split are good, planted junk
                   rows bad (ground truth from ``samples/labels.jsonl``), plus preference chosen/rejected.
``metrics.json``   what the shipped models score on the samples: AUC of each score separating planted junk
                   from clean rows, on the held-out split (never trained on) and on all rows.

The split holds out 30% of the logical items of ops_qa.jsonl by a hash of the item number; duplicates
go with their original, so no held-out row has a copy in the training data.

These models are for demonstration and as a small in-domain reference: they make `curate score` run on a
fresh clone with no download. For real work point `curate score` at real models (`--lm`,
`--reward-model`, `--quality-model`; see docs/score.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent
ROOT = SAMPLES.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SEED = 20261128
HOLDOUT = 0.3
LM_SHAPE = {"hidden": 128, "layers": 3, "heads": 4, "kv_heads": 2, "max_pos": 1024}
VOCAB = 2048
MAX_LEN = 256
RM_MAX_LEN = 160  # reward pairs keep the end of the conversation, where the score is read
THREADS = 2  # fixed: results are reproducible for a given thread count


def log(msg: str) -> None:
    print(f"[build] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- data
def load_samples():
    from curate.io import load

    qa = load([SAMPLES / "ops_qa.jsonl"]).frame.to_dicts()
    labels = {}
    for line in (SAMPLES / "labels.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        if d["file"] == "ops_qa.jsonl":
            labels[d["line_or_row"]] = d
    item_of_line = {ln: d.get("item") for ln, d in labels.items()}
    for r in qa:
        lab = labels.get(r["source"]["line"], {})
        r["_planted"] = lab.get("planted", "unknown")
        group = lab.get("item")
        if lab.get("of") is not None:  # a duplicate goes with its original
            group = item_of_line.get(lab["of"], group)
        r["_group"] = group if group is not None else r["id"]
        h = int(hashlib.sha256(f"{SEED}:{r['_group']}".encode()).hexdigest()[:8], 16)
        r["_heldout"] = h / 0xFFFFFFFF < HOLDOUT
    extra = {}
    for name in ("ops_multiturn.sharegpt.jsonl", "ops_prefs.jsonl", "ops_docs.txt"):
        p = SAMPLES / name
        if p.is_file():
            extra[name] = load([p]).frame.to_dicts()
    return qa, extra


def conversation_texts(tok, rows):
    from curate.records import messages_of

    out = []
    for r in rows:
        if r["kind"] == "text":
            if r.get("text"):
                out.append(r["text"] + tok.eos_token)
            continue
        field = "chosen" if r["kind"] == "preference" else "answer"
        if not (r.get(field) or "").strip():
            continue
        out.append(tok.apply_chat_template(messages_of(r, answer_field=field), tokenize=False))
    return out


# ------------------------------------------------------------------------------------------- models
def set_determinism():
    import torch

    torch.manual_seed(SEED)
    random.seed(SEED)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)


def train_lm(out: Path, tok_dir: Path, texts: list[str], epochs: int, quick: bool):
    import torch
    from transformers import AutoTokenizer

    from curate.tiny_models import build_causal_lm

    set_determinism()
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    model = build_causal_lm(tok_dir, out, seed=SEED, **LM_SHAPE)
    seqs = [tok(t, add_special_tokens=False)["input_ids"][:MAX_LEN] for t in texts]
    seqs = [s for s in seqs if len(s) > 1]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01, betas=(0.9, 0.98))
    batch = 8
    steps_total = epochs * ((len(seqs) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps_total, pct_start=0.1)
    rng = random.Random(SEED)
    model.train()
    t0 = time.perf_counter()
    step = 0
    for ep in range(epochs):
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        batches = [order[i : i + batch] for i in range(0, len(order), batch)]
        rng.shuffle(batches)
        total, count = 0.0, 0
        for b in batches:
            longest = max(len(seqs[i]) for i in b)
            ids = torch.full((len(b), longest), tok.pad_token_id)
            labels = torch.full((len(b), longest), -100)
            mask = torch.zeros((len(b), longest), dtype=torch.long)
            for r, i in enumerate(b):
                s = torch.tensor(seqs[i])
                ids[r, : len(s)] = s
                labels[r, : len(s)] = s
                mask[r, : len(s)] = 1
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            total += float(loss.detach()) * len(b)
            count += len(b)
        log(f"lm epoch {ep + 1}/{epochs}: loss {total / count:.3f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    model.to(torch.bfloat16)  # halves the committed size; scoring on CPU upcasts to float32
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return model


def train_reward(out: Path, lm_dir: Path, pairs: list[tuple[list[dict], str, str]], epochs: int):
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    set_determinism()
    tok = AutoTokenizer.from_pretrained(str(lm_dir))
    model = LlamaForSequenceClassification.from_pretrained(str(lm_dir), num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    with torch.no_grad():
        model.score.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(SEED))

    def enc(msgs, answer):
        text = tok.apply_chat_template(msgs + [{"role": "assistant", "content": answer}], tokenize=False)
        ids = tok(text.rstrip(), add_special_tokens=False)["input_ids"]
        return ids[-RM_MAX_LEN:]

    data = [(enc(m, c), enc(m, r)) for m, c, r in pairs]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    rng = random.Random(SEED)
    batch = 8

    def scores(seqs):
        longest = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), longest), tok.pad_token_id)
        mask = torch.zeros((len(seqs), longest), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        last = torch.tensor([len(s) - 1 for s in seqs])
        return model.score(hidden[torch.arange(len(seqs)), last]).squeeze(-1)

    model.train()
    t0 = time.perf_counter()
    for ep in range(epochs):
        order = list(range(len(data)))
        rng.shuffle(order)
        total, acc, n = 0.0, 0, 0
        for i in range(0, len(order), batch):
            b = [data[j] for j in order[i : i + batch]]
            s = scores([c for c, _ in b] + [r for _, r in b])
            margin = s[: len(b)] - s[len(b) :]
            loss = -torch.nn.functional.logsigmoid(margin).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * len(b)
            acc += int((margin > 0).sum())
            n += len(b)
        log(
            f"reward epoch {ep + 1}/{epochs}: loss {total / n:.3f}, pair accuracy {acc / n:.2f} ({time.perf_counter() - t0:.0f} s)"
        )
    model.eval()
    model.to(torch.bfloat16)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))


def reward_pairs(train_rows, prefs, seed=SEED):
    """Preference rows as (messages, chosen, rejected), plus self-made pairs: a row's own answer beats
    the answer of another training row (a mismatched answer) for the same question."""
    from curate.records import messages_of

    pairs = []
    for p in prefs:
        if p.get("chosen") and p.get("rejected"):
            pairs.append((messages_of(p, answer_field=None), p["chosen"], p["rejected"]))
    rng = random.Random(seed)
    answered = [r for r in train_rows if (r.get("answer") or "").strip()]
    for r in answered:
        other = rng.choice(answered)
        if other["answer"] != r["answer"]:
            pairs.append((messages_of(r, answer_field=None), r["answer"], other["answer"]))
    return pairs


# ------------------------------------------------------------------------------------------- eval
def evaluate(out_dir: Path, qa_rows) -> dict:
    from curate.records import to_frame
    from curate.score import ScoreConfig, run
    from curate.score.quality import roc_auc

    core = [{k: v for k, v in r.items() if not k.startswith("_")} for r in qa_rows]
    frame = to_frame(core)
    cfg = ScoreConfig(
        lm=str(out_dir / "lm"),
        reward_model=str(out_dir / "reward"),
        quality_model=str(out_dir / "quality.ftz"),
        device="cpu",
    )
    scored = run(frame, cfg).kept
    planted = [r["_planted"] for r in qa_rows]
    held = [r["_heldout"] for r in qa_rows]
    # orientation fixed in advance: higher ppl/ifd = more junk-like, lower reward/quality = more junk-like
    orient = {"ppl": 1, "ppl_answer": 1, "ifd": 1, "reward": -1, "quality": -1}
    result = {"rows": {"all": len(qa_rows)}, "auc": {}, "nulls": {}}
    # "unseen": every planted junk row against held-out clean rows. The LM and the reward model were
    # trained on neither (only quality.ftz saw training-split junk: judge it on "heldout").
    unseen = [h or p.startswith("junk") for h, p in zip(held, planted, strict=True)]
    for split_name, keep in (("unseen", unseen), ("heldout", held), ("all", [True] * len(held))):
        idx = [
            i for i, k in enumerate(keep) if k and (planted[i] == "clean" or planted[i].startswith("junk"))
        ]
        result["rows"][split_name] = {
            "clean": sum(planted[i] == "clean" for i in idx),
            "junk": sum(planted[i].startswith("junk") for i in idx),
        }
        result["auc"][split_name] = {}
        result["nulls"][split_name] = {}
        for col, sign in orient.items():
            vals = scored[col].to_list()
            pts = [(sign * vals[i], planted[i].startswith("junk")) for i in idx if vals[i] is not None]
            result["nulls"][split_name][col] = sum(vals[i] is None for i in idx)
            auc = roc_auc([p for p, _ in pts], [y for _, y in pts])
            result["auc"][split_name][col] = None if auc is None else round(auc, 3)
    by_kind: dict[str, dict[str, list]] = {}
    for i in range(len(qa_rows)):
        if planted[i].startswith("junk") or (held[i] and planted[i] == "clean"):
            d = by_kind.setdefault(planted[i], {})
            for col in ("ppl", "ifd", "reward", "quality"):
                d.setdefault(col, []).append(scored[col][i])
    result["median_by_kind"] = {
        k: {c: _median(v) for c, v in d.items()} | {"rows": len(d["ifd"])} for k, d in sorted(by_kind.items())
    }
    return result


def _median(values):
    v = sorted(x for x in values if x is not None)
    return None if not v else round(v[len(v) // 2], 4)


# ------------------------------------------------------------------------------------------- main
def build(out_dir: Path, quick: bool = False) -> dict:
    from transformers import AutoTokenizer

    from curate.score.quality import TrainParams, fasttext_text, train_classifier
    from curate.tiny_models import build_tokenizer

    started = time.perf_counter()
    qa, extra = load_samples()
    train_rows = [r for r in qa if not r["_heldout"]]
    log(
        f"ops_qa.jsonl: {len(qa)} rows, {len(train_rows)} in the training split; extra files: {sorted(extra)}"
    )
    others = [r for rows in extra.values() for r in rows]
    prefs = extra.get("ops_prefs.jsonl", [])

    tmp = Path(tempfile.mkdtemp(prefix="tamis-build-"))
    try:
        tok_dir = tmp / "tok"
        # the tokenizer is trained on the training split and the other sample texts (raw text)
        raw = []
        for r in train_rows + others:  # raw text of every training row: the vocabulary must cover junk too
            raw += [
                t
                for t in (r.get("system"), r.get("question"), r.get("answer"), r.get("chosen"), r.get("text"))
                if t
            ]
        build_tokenizer(sorted(raw), tok_dir, vocab_size=VOCAB)
        tok = AutoTokenizer.from_pretrained(str(tok_dir))
        good_rows = [r for r in train_rows if not r["_planted"].startswith(("junk", "broken"))]
        texts = conversation_texts(tok, good_rows + others)
        log(f"lm: {len(texts)} training texts")
        staging = tmp / "out"
        staging.mkdir()
        train_lm(staging / "lm", tok_dir, texts, epochs=1 if quick else 5, quick=quick)
        pairs = reward_pairs(good_rows, prefs)
        log(f"reward: {len(pairs)} pairs ({len(prefs)} from ops_prefs.jsonl)")
        train_reward(staging / "reward", staging / "lm", pairs, epochs=1)
        good = [fasttext_text(r) for r in train_rows if r["_planted"] == "clean"]
        bad = [fasttext_text(r) for r in train_rows if r["_planted"].startswith("junk")]
        good += [fasttext_text({**p, "kind": "preference"}) for p in prefs if p.get("chosen")]
        bad += [
            fasttext_text({**p, "kind": "preference", "chosen": p["rejected"]})
            for p in prefs
            if p.get("rejected")
        ]
        info = train_classifier(
            good,
            bad,
            staging / "quality.ftz",
            TrainParams(epoch=50, lr=0.5, dim=16, bucket=20_000, cutoff=5_000, holdout=0.2, seed=0),
        )
        log(f"quality: {info['rows']} heldout {info['heldout']}")
        for name in ("lm", "reward", "quality.ftz", "quality.ftz.json"):
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            shutil.move(str(staging / name), str(target))
        side = out_dir / "quality.ftz.json"  # name the model as shipped, not the staging path
        side.write_text(json.dumps(json.loads(side.read_text()) | {"model": "quality.ftz"}, indent=1) + "\n")
        metrics = evaluate(out_dir, qa)
        metrics["build_seconds"] = round(time.perf_counter() - started, 1)
        metrics["build_cpu_seconds"] = round(time.process_time(), 1)
        metrics["sizes_bytes"] = {
            name: sum(f.stat().st_size for f in (out_dir / name).rglob("*") if f.is_file())
            if (out_dir / name).is_dir()
            else (out_dir / name).stat().st_size
            for name in ("lm", "reward", "quality.ftz")
        }
        metrics["hashes"] = hashes(out_dir)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n")
        log(json.dumps(metrics["auc"], ensure_ascii=False))
        return metrics
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def hashes(out_dir: Path) -> dict[str, str]:
    out = {}
    for f in sorted(out_dir.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".ftz", ".json") and f.name != "metrics.json":
            if f.name.endswith(".ftz.json"):
                continue  # holds a timing
            out[f.relative_to(out_dir).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: samples/models)")
    ap.add_argument("--quick", action="store_true", help="a few epochs only (for testing the script)")
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare with --out")
    ap.add_argument(
        "--eval-only", action="store_true", help="only re-measure the shipped models (metrics.json)"
    )
    args = ap.parse_args()
    if args.eval_only:
        path = args.out / "metrics.json"
        old = json.loads(path.read_text()) if path.is_file() else {}
        qa, _ = load_samples()
        m = evaluate(args.out, qa)
        for k in ("build_seconds", "build_cpu_seconds", "sizes_bytes", "hashes"):
            if k in old:
                m[k] = old[k]
        path.write_text(json.dumps(m, indent=1, ensure_ascii=False) + "\n")
        log(json.dumps(m["auc"], ensure_ascii=False))
        return
    if args.check:
        with tempfile.TemporaryDirectory() as d:
            m = build(Path(d))
            committed = json.loads((args.out / "metrics.json").read_text())["hashes"]
            same = m["hashes"] == committed
            print(json.dumps({"identical": same, "rebuilt": m["hashes"], "committed": committed}, indent=1))
            sys.exit(0 if same else 1)
    args.out.mkdir(parents=True, exist_ok=True)
    build(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
