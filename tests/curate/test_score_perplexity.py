"""Perplexity / IFD: batched scores equal a straightforward per-row reference loop, and do not depend on
batch size, row order, padding side or model family (rotary Llama, absolute-position GPT-2)."""

from __future__ import annotations

import math
import random
import shutil

import pytest

from curate.records import Record, Turn, to_frame

REL = 1e-4


def _rows():
    return [
        Record(
            "sft",
            question="How do I restart a pod?",
            answer="kubectl delete pod x; the deployment recreates it.",
        ).as_row(),
        Record(
            "sft", question="什么是容器？", answer="容器是一种轻量级的虚拟化技术。", system="你是运维助手"
        ).as_row(),
        Record(
            "sft",
            question="and the logs?",
            answer="kubectl logs -n ns pod --previous shows the crashed container.",
            history=[Turn("user", "my pod restarts"), Turn("assistant", "check the events first")],
        ).as_row(),
        Record("sft", question="Why?", answer="Because the memory limit is too low: OOMKilled.").as_row(),
        Record("sft", question="x", answer="y").as_row(),
        Record(
            "preference", question="Which?", chosen="The first one, it is stable.", rejected="no"
        ).as_row(),
        Record("sft", question="Describe the cluster " * 12, answer="It has three nodes " * 9).as_row(),
    ]


@pytest.fixture(scope="module")
def lm(tiny_models):
    from curate.score.perplexity import PerplexityScorer, PplConfig

    return PerplexityScorer(PplConfig(str(tiny_models["lm"]), device="cpu"))


@pytest.fixture(scope="module")
def gpt2_dir(tiny_models, tmp_path_factory):
    """A GPT-2 (absolute position embeddings) with the tiny tokenizer: left padding is only right for it
    if position ids are passed explicitly."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    out = tmp_path_factory.mktemp("gpt2")
    tok = AutoTokenizer.from_pretrained(str(tiny_models["tokenizer"]))
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=1024,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    GPT2LMHeadModel(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def reference(model_dir, rows, max_tokens=None):
    """Per-row loop, no batching, no padding: HF's own loss with labels -100 outside the answer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curate.records import messages_of

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    probe = [{"role": "user", "content": "x"}]
    with_gen = tok.apply_chat_template(probe, tokenize=True, add_generation_prompt=True)["input_ids"]
    without = tok.apply_chat_template(probe, tokenize=True)["input_ids"]
    assert with_gen[: len(without)] == without
    header = with_gen[len(without) :]
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    out = []
    for row in rows:
        field = "chosen" if row["kind"] == "preference" else "answer"
        msgs = messages_of(row, answer_field=None)
        prompt = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)["input_ids"]
        full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": row[field]}], tokenize=True)[
            "input_ids"
        ]
        assert full[: len(prompt)] == prompt
        answer = full[len(prompt) :]
        while answer[-len(newline) :] == newline:  # the template's trailing newline is not the answer
            answer = answer[: -len(newline)]
        res = {}
        for name, ctx in (("ppl", prompt), ("ppl_answer", header)):
            ids = torch.tensor([ctx + answer])
            labels = torch.tensor([[-100] * len(ctx) + answer])
            with torch.no_grad():
                loss = model(input_ids=ids, labels=labels).loss
            res[name] = math.exp(float(loss))
        res["ifd"] = res["ppl"] / res["ppl_answer"]
        res["n"] = len(answer)
        out.append(res)
    return out


def close(a, b, rel=REL):
    return abs(a - b) <= rel * abs(b)


def test_batched_equals_reference_loop(lm, tiny_models):
    rows = _rows()
    got = lm.score_rows(rows)
    ref = reference(tiny_models["lm"], rows)
    for g, r in zip(got, ref, strict=True):
        assert g["ppl_tokens"] == r["n"]
        for k in ("ppl", "ppl_answer", "ifd"):
            assert close(g[k], r[k]), (k, g[k], r[k])
        assert not g["truncated"]


@pytest.mark.parametrize("padding", ["left", "right"])
def test_gpt2_absolute_positions_match_reference(gpt2_dir, padding):
    from curate.score.perplexity import PerplexityScorer, PplConfig

    rows = _rows()
    scorer = PerplexityScorer(PplConfig(str(gpt2_dir), device="cpu", padding=padding, max_batch=8))
    got = scorer.score_rows(rows)
    ref = reference(gpt2_dir, rows)
    for g, r in zip(got, ref, strict=True):
        for k in ("ppl", "ppl_answer", "ifd"):
            assert close(g[k], r[k]), (padding, k, g[k], r[k])


def test_batch_size_order_and_padding_do_not_change_scores(lm, tiny_models):
    from curate.score.perplexity import PerplexityScorer, PplConfig

    rows = _rows() * 2
    base = lm.score_rows(rows)
    order = list(range(len(rows)))
    random.Random(1).shuffle(order)
    shuffled = lm.score_rows([rows[i] for i in order])
    for pos, i in enumerate(order):
        for k in ("ppl", "ppl_answer", "ifd"):
            assert close(shuffled[pos][k], base[i][k], 1e-5)
    for kwargs in ({"max_batch": 1}, {"max_batch": 3}, {"token_budget": 200}, {"padding": "right"}):
        other = PerplexityScorer(
            PplConfig(str(tiny_models["lm"]), device="cpu", **kwargs), model=lm.model, tokenizer=lm.tok
        )
        for a, b in zip(other.score_rows(rows), base, strict=True):
            for k in ("ppl", "ppl_answer", "ifd"):
                assert close(a[k], b[k], 1e-5), (kwargs, k)


@pytest.mark.parametrize("side", ["left", "right"])
def test_tokenizer_padding_side_is_irrelevant(lm, tiny_models, side):
    from transformers import AutoTokenizer

    from curate.score.perplexity import PerplexityScorer, PplConfig

    tok = AutoTokenizer.from_pretrained(str(tiny_models["lm"]), padding_side=side)
    s = PerplexityScorer(PplConfig(str(tiny_models["lm"]), device="cpu"), model=lm.model, tokenizer=tok)
    rows = _rows()
    for a, b in zip(s.score_rows(rows), lm.score_rows(rows), strict=True):
        assert close(a["ppl"], b["ppl"], 1e-6)


def test_truncation_rule_and_flag(lm, tiny_models):
    from curate.score.perplexity import PerplexityScorer, PplConfig

    s = PerplexityScorer(
        PplConfig(str(tiny_models["lm"]), device="cpu", max_tokens=64), model=lm.model, tokenizer=lm.tok
    )
    long_q = Record("sft", question="pod restart loop " * 60, answer="short answer.").as_row()
    long_a = Record("sft", question="short?", answer="the node is not ready " * 60).as_row()
    both = Record("sft", question="q " * 200, answer="a " * 200).as_row()
    res = s.score_rows([long_q, long_a, both])
    for r in res:
        assert r["truncated"] is True
        assert math.isfinite(r["ppl"]) and math.isfinite(r["ifd"])
    enc_q, enc_a, enc_b = (s.encode(r) for r in (long_q, long_a, both))
    assert len(enc_q.cond) <= 64
    assert enc_q.n == lm.encode(long_q).n  # a short answer is kept whole; the prompt loses its start
    assert enc_q.cond[-enc_q.n :] == lm.encode(long_q).cond[-enc_q.n :]
    assert len(enc_a.cond) <= 64 and len(enc_b.cond) <= 64
    assert len(enc_b.cond) - enc_b.n >= 32  # the prompt keeps at least half the budget
    assert enc_a.uncond[-enc_a.n :] == enc_a.cond[-enc_a.n :]  # both ppls on the same answer tokens


def test_bad_rows_get_null_and_reason_and_do_not_sink_the_batch(lm, monkeypatch):
    rows = _rows()
    bad = Record("sft", question="trigger", answer="§§§ poison §§§").as_row()
    empty = Record("sft", question="q", answer="   ").as_row()
    text = Record("text", text="plain text for pretraining").as_row()
    clean = lm.score_rows(rows)
    poison = set(lm.tok("§§§", add_special_tokens=False)["input_ids"])
    orig = lm.model.forward

    def forward(*args, **kwargs):
        ids = kwargs["input_ids"]
        if any(int(t) in poison for t in ids.flatten()):
            raise RuntimeError("simulated model failure")
        return orig(*args, **kwargs)

    monkeypatch.setattr(lm.model, "forward", forward)
    got = lm.score_rows(rows[:3] + [bad, empty, text] + rows[3:])
    assert "simulated model failure" in got[3]["error"]
    assert got[4] == {"error": "empty answer"}
    assert got[5]["ppl"] > 1 and "ifd" not in got[5]
    for g, c in zip(got[:3] + got[6:], clean, strict=True):
        assert close(g["ppl"], c["ppl"], 1e-5)


def test_errors_are_clear(tiny_models, tmp_path):
    from curate.score.common import ScoreError
    from curate.score.perplexity import PerplexityScorer, PplConfig

    with pytest.raises(ScoreError, match="does not exist"):
        PerplexityScorer(PplConfig(str(tmp_path / "nope"), device="cpu"))
    with pytest.raises(ScoreError, match="local cache"):
        PerplexityScorer(PplConfig("some-org/not-downloaded-model", device="cpu"))
    with pytest.raises(ScoreError, match="not a causal language model"):
        PerplexityScorer(PplConfig(str(tiny_models["reward"]), device="cpu"))
    bare = tmp_path / "no_template"
    shutil.copytree(tiny_models["lm"], bare)
    (bare / "chat_template.jinja").unlink()
    with pytest.raises(ScoreError, match="no chat template"):
        PerplexityScorer(PplConfig(str(bare), device="cpu"))
    tpl = tmp_path / "t.jinja"
    tpl.write_text(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    s = PerplexityScorer(PplConfig(str(bare), device="cpu", chat_template=str(tpl)))
    assert math.isfinite(s.score_rows(_rows()[:1])[0]["ppl"])
    with pytest.raises(ScoreError, match="no CUDA"):
        PerplexityScorer(PplConfig(str(tiny_models["lm"]), device="cuda"))


def test_ppl_only_skips_the_answer_pass(lm, tiny_models):
    from curate.score.perplexity import PerplexityScorer, PplConfig

    s = PerplexityScorer(
        PplConfig(str(tiny_models["lm"]), device="cpu", ifd=False), model=lm.model, tokenizer=lm.tok
    )
    assert s.fingerprint != lm.fingerprint
    rows = _rows()
    for a, b in zip(s.score_rows(rows), lm.score_rows(rows), strict=True):
        assert "ifd" not in a and close(a["ppl"], b["ppl"], 1e-6)


def test_frame_columns(lm):
    from curate.score import ScoreConfig, run

    frame = to_frame(_rows() + [Record("sft", question="q", answer="").as_row()])
    res = run(frame, ScoreConfig(scorers=("ppl", "ifd")), scorers=[lm])
    out = res.kept
    assert out.height == frame.height and res.dropped.height == 0
    assert {"ppl", "ppl_answer", "ifd", "ppl_tokens", "ppl_error"} <= set(out.columns)
    assert out["ppl"].null_count() == 1 and out["ppl_error"].to_list()[-1] == "empty answer"
    assert res.stats["score_models"]["ppl"]["fingerprint"] == lm.fingerprint


def test_answer_only_rows_are_scored_after_an_empty_prompt(lm):
    """No question, no history, no system prompt: the conversation is the assistant turn alone (as the
    reward scorer renders it), not an error."""
    row = Record("sft", question="x", answer="kubectl get pods shows every pod.").as_row()
    row["question"] = None
    got = lm.score_rows([row])[0]
    assert "error" not in got, got
    assert got["ppl"] > 1 and got["ppl_tokens"] > 3
    # the template adds no default system prompt here, so the prompt is just the assistant header
    assert got["ifd"] == pytest.approx(1.0, rel=1e-5)


def test_trust_remote_code_reaches_the_tokenizer(lm, tiny_models, monkeypatch):
    from curate.score import perplexity, reward
    from curate.score.perplexity import PerplexityScorer, PplConfig
    from curate.score.reward import RewardConfig, RewardScorer

    seen = []

    def spy(real):
        def load(*a, **k):
            seen.append(k.get("trust_remote_code"))
            return real(*a, **k)

        return load

    monkeypatch.setattr(perplexity, "load_tokenizer", spy(perplexity.load_tokenizer))
    monkeypatch.setattr(reward, "load_tokenizer", spy(reward.load_tokenizer))
    PerplexityScorer(PplConfig(str(tiny_models["lm"]), device="cpu", trust_remote_code=True), model=lm.model)
    RewardScorer(RewardConfig(str(tiny_models["reward"]), device="cpu", trust_remote_code=True))
    assert seen == [True, True]
