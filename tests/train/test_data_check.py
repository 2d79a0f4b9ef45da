from __future__ import annotations

import pytest

from train import data as D
from train.check import run_checks


@pytest.fixture(scope="module")
def tok(tiny_models):
    return D.load_tokenizer(str(tiny_models["lm"]))


def test_prepare_counts_every_row(train_data):
    prep = D.prepare([str(train_data["mixed"])], "sft")
    assert len(prep.rows) == 4 and prep.input_rows == 8
    ((reason, n),) = prep.dropped.items()
    assert n == 4 and "preference" in reason
    assert prep.files[0]["sha256"] and len(D.fingerprint(prep.files)) == 16
    kto = D.prepare([str(train_data["pref"])], "kto")  # pairs become one good and one bad example
    assert len(kto.rows) == 48 and sorted({r["label"] for r in kto.rows}) == [False, True]
    with pytest.raises(D.DataError, match="no usable rows"):
        D.prepare([str(train_data["text"])], "dpo")
    with pytest.raises(D.DataError, match="not found"):
        D.prepare(["/nonexistent.jsonl"], "sft")


def test_manifest_is_recorded(train_data, tmp_path):
    import shutil

    p = tmp_path / "data.exported.jsonl"
    shutil.copy(train_data["sft"], p)
    (tmp_path / "manifest.json").write_text('{"version": "v3", "recipe": "ops"}')
    info = D.describe_file(p)
    assert info["version"] == "v3" and info["manifest"]["recipe"] == "ops"


def test_completion_labels_cover_exactly_the_answer(tok):
    rec = {
        "prompt": [{"role": "user", "content": "Status of node 7?"}],
        "completion": [{"role": "assistant", "content": "Node 7 is ready."}],
    }
    t = D.tokenize_sft(tok, rec, "completion")
    trained = [i for i, lbl in zip(t["input_ids"], t["labels"], strict=False) if lbl != D.IGNORE]
    text = tok.decode(trained)
    assert text.startswith("Node 7 is ready.") and "<|im_end|>" in text
    assert "Status" not in text and "user" not in text


def test_assistant_masks_with_and_without_generation_markers(tok, tiny_models):
    msgs = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello there"},
        {"role": "user", "content": "status?"},
        {"role": "assistant", "content": "all ready"},
    ]
    a = D.tokenize_sft(tok, {"messages": msgs}, "assistant")
    assert D.has_generation_markers(tok)
    plain = D.load_tokenizer(str(tiny_models["lm"]))
    plain.chat_template = tok.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    assert not D.has_generation_markers(plain)
    b = D.tokenize_sft(plain, {"messages": msgs}, "assistant")
    assert a == b  # the turn-by-turn fallback gives the same labels as the template's markers
    trained = tok.decode([i for i, lbl in zip(a["input_ids"], a["labels"], strict=False) if lbl != D.IGNORE])
    assert "hello there" in trained and "all ready" in trained and "status?" not in trained
    every = D.tokenize_sft(tok, {"messages": msgs}, "all")
    assert every["labels"] == every["input_ids"]


def _check(tok, train_data, stage="sft", max_length=None, path=None):
    prep = D.prepare([str(path or train_data[stage if stage != "dpo" else "pref"])], stage)
    tk = D.tokenize_all(tok, prep)
    return run_checks(tok, prep, tk, max_length or 512)


def test_checks_pass_on_good_data(tok, train_data):
    rep = _check(tok, train_data)
    status = {c.name: c.status for c in rep.checks}
    assert status == {
        "chat template": "ok",
        "loss mask": "ok",
        "end of turn trained": "ok",
        "pad token": "ok",
    }
    assert rep.counts["usable"] == 24 and not rep.failed
    assert rep.previews and any(trained for _, _, trained in rep.previews[0])
    assert not all(trained for _, _, trained in rep.previews[0])
    assert _check(tok, train_data, "dpo").counts["usable"] == 24


def test_checks_catch_a_template_that_breaks_and_an_untrained_eos(tiny_models, train_data):
    bad = D.load_tokenizer(str(tiny_models["lm"]))
    bad.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )
    rep = _check(bad, train_data)
    status = {c.name: c for c in rep.checks}
    assert status["chat template"].status == "warn" and "1 of 24" in status["chat template"].detail
    assert "no system role" in status["chat template"].detail
    assert status["end of turn trained"].status == "fail"  # this template never emits the eos token
    assert rep.failed


def test_checks_count_truncation_and_pad_eos(tiny_models, train_data, tok):
    rep = _check(tok, train_data, max_length=24)
    assert rep.counts["truncated"] > 0
    assert any(c.name == "truncation" for c in rep.checks)
    same = D.load_tokenizer(str(tiny_models["lm"]))
    same.pad_token = same.eos_token
    rep = _check(same, train_data)
    assert {c.name: c.status for c in rep.checks}["pad token"] == "warn"


def test_no_template_is_a_clear_failure(tiny_models, train_data):
    t = D.load_tokenizer(str(tiny_models["lm"]))
    t.chat_template = None
    rep = _check(t, train_data)
    assert rep.failed and "no chat template" in rep.checks[0].detail


def test_val_split_is_deterministic_and_complete(tiny_models, train_data, quick_cfg, tmp_path):
    from train.run import prepare

    cfg = quick_cfg("sft", tiny_models["lm"], train_data["sft"], tmp_path / "v", val_split=0.25)
    a, b = prepare(cfg), prepare(cfg)
    n_eval = a.plan["eval_rows"]
    assert 0 < n_eval < 24 and len(a.tokenized.rows) + n_eval == 24
    assert a.eval_tokenized.ids == b.eval_tokenized.ids
    assert not set(a.eval_tokenized.ids) & set(a.tokenized.ids)
    assert [len(r["input_ids"]) for r in a.tokenized.rows] == a.tokenized.lengths


def test_tokenizer_loads_local_files_only_even_when_online(tiny_models, monkeypatch):
    """With offline mode off, loading the tokenizer never touches the network: a local directory loads,
    a hub id that is not in the local cache fails at once with a DataError (no HEAD requests/retries)."""
    import socket

    import huggingface_hub.constants as hf_constants
    import transformers.utils.hub as tf_hub
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(tf_hub, "is_offline_mode", lambda: False)
    # huggingface_hub fetches an agent registry for its user-agent header once per process (not a model
    # file); pre-resolve it so only model-file requests would count
    monkeypatch.setattr(_detect_agent, "_registry", _detect_agent._EMPTY_REGISTRY)
    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    tok = D.load_tokenizer(str(tiny_models["lm"]))
    assert tok.chat_template and not attempts
    with pytest.raises(
        D.DataError, match="cannot load the tokenizer.*not in the local Hugging Face cache.*never downloads"
    ):
        D.load_tokenizer("tamis-test/not-in-the-local-cache")
    assert not attempts, attempts


def test_tokenizer_never_runs_remote_code_by_default(tiny_models, monkeypatch):
    from transformers import AutoTokenizer

    seen = {}
    real = AutoTokenizer.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", spy)
    D.load_tokenizer(str(tiny_models["lm"]))
    assert seen["trust_remote_code"] is False and seen["local_files_only"] is True


# ------------------------------------------------------------------ review fixes


def _trl_template(name: str) -> str:
    from pathlib import Path

    import trl

    p = Path(trl.__file__).parent / "chat_templates" / name
    if not p.is_file():
        pytest.skip(f"{name} is not shipped with this trl")
    return str(p)


def _rows(path, rows):
    import json

    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


MULTI = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello there"},
    {"role": "user", "content": "status?"},
    {"role": "assistant", "content": "all ready"},
]


def test_assistant_turns_with_a_template_that_is_not_prefix_preserving(tiny_models):
    """Qwen3's template renders `<think>` on the last assistant turn only, so a turn renders differently
    once another follows: every assistant turn must still be labelled."""
    tok = D.load_tokenizer(str(tiny_models["lm"]), _trl_template("qwen3.jinja"))
    assert not D.has_generation_markers(tok) and not D.template_prefix_preserving(tok)
    t = D.tokenize_sft(tok, {"messages": MULTI}, "assistant")
    assert D.count_spans(t["labels"]) == 2
    trained = tok.decode([x for x in t["labels"] if x != D.IGNORE])
    assert "hello there<|im_end|>" in trained and "all ready<|im_end|>" in trained
    assert "status?" not in trained and "user" not in trained
    # on a prefix-preserving template the text-located labels are the turn-by-turn ones
    plain = D.load_tokenizer(str(tiny_models["lm"]))
    plain.chat_template = plain.chat_template.replace("{% generation %}", "").replace(
        "{% endgeneration %}", ""
    )
    assert D.template_prefix_preserving(plain)
    ids = D._render(plain, MULTI)["input_ids"]
    assert D._labels_by_text(plain, MULTI, ids) == D._labels_by_turn_prefix(plain, MULTI, ids)


def test_check_fails_when_assistant_turns_go_untrained(tok, train_data):
    prep = D.prepare([str(train_data["sft"])], "sft", "assistant")
    tk = D.tokenize_all(tok, prep, "assistant")
    assert tk.expected_spans[-2] == 2  # the row with a history turn
    rep = run_checks(tok, prep, tk, 512)
    assert {c.name: c.status for c in rep.checks}["assistant turns trained"] == "ok" and not rep.failed
    # a mask that lost the earlier turn (what the old turn-by-turn fallback gave on Qwen3 templates)
    i = tk.expected_spans.index(2)
    labels = tk.rows[i]["labels"]
    first_end = next(j for j in range(1, len(labels)) if labels[j - 1] != D.IGNORE and labels[j] == D.IGNORE)
    tk.rows[i] = {**tk.rows[i], "labels": [D.IGNORE] * first_end + labels[first_end:]}
    rep = run_checks(tok, prep, tk, 512)
    c = {c.name: c for c in rep.checks}["assistant turns trained"]
    assert c.status == "fail" and "1 of 2" in c.detail and rep.failed


def test_sft_answer_that_is_a_tool_call_is_trained(tiny_models, tmp_path):
    data = _rows(
        tmp_path / "tools.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "weather in Paris?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                            }
                        ],
                    },
                ]
            }
        ],
    )
    prep = D.prepare([str(data)], "sft")
    assert len(prep.rows) == 1 and not prep.dropped
    assert prep.rows[0]["completion"][0]["tool_calls"][0]["function"]["name"] == "get_weather"
    tok = D.load_tokenizer(str(tiny_models["lm"]), _trl_template("qwen3.jinja"))
    tk = D.tokenize_all(tok, prep)
    trained = tok.decode([x for x in tk.rows[0]["labels"] if x != D.IGNORE])
    assert "get_weather" in trained and "Paris" in trained
    # a template that ignores tool calls would train an empty answer: the row fails with a reason
    chatml = D.load_tokenizer(str(tiny_models["lm"]))
    tk = D.tokenize_all(chatml, prep)
    assert not tk.rows and "does not render tool calls" in next(iter(tk.failures))


def _pairs(tmp_path, long_prompt=False):
    long = " ".join(f"word{i}" for i in range(120))
    rows = [
        {"prompt": f"restart pod {i}?", "chosen": f"kubectl delete pod p{i}", "rejected": "no idea"}
        for i in range(4)
    ]
    rows += [
        {
            "prompt": long if long_prompt else f"explain pod {i}",
            "chosen": "short" if long_prompt else long,
            "rejected": "no",
        }
        for i in range(3)
    ]
    return _rows(tmp_path / ("lp.jsonl" if long_prompt else "long.jsonl"), rows)


def test_reward_pairs_longer_than_max_length_are_dropped_and_counted(tiny_models, quick_cfg, tmp_path):
    from click.testing import CliRunner

    from train.cli import main
    from train.run import RunError, prepare, train

    data = _pairs(tmp_path)
    ctx = prepare(quick_cfg("rm", tiny_models["reward"], data, tmp_path / "rm", max_length=64))
    reason = "pair longer than max_length 64 (reward models are not truncated)"
    assert ctx.prep.dropped[reason] == 3 and len(ctx.tokenized.rows) == 4
    assert ctx.plan["rows"] == 4 and ctx.plan["dropped_overlong"] == 3
    assert ctx.report.counts["usable"] == 4 and ctx.report.counts["dropped"][reason] == 3
    run_dir = train(ctx)
    import json

    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["trained_rows"] == 4 == len(ctx.extra["trainer"].train_dataset)
    # nothing fits: the check fails cleanly (exit 1), and training refuses before writing a run
    r = CliRunner().invoke(
        main,
        ["check", str(data), "--stage", "rm", "--model", str(tiny_models["reward"]), "--max-length", "16"],
    )
    assert r.exit_code == 1 and "rows left" in r.stderr and "no row can be trained" in r.stderr
    ctx = prepare(
        quick_cfg("rm", tiny_models["reward"], data, tmp_path / "none", max_length=16, skip_check=True)
    )
    with pytest.raises(RunError, match="no rows left"):
        train(ctx)
    assert not (tmp_path / "none" / "run.json").exists()


@pytest.mark.parametrize("stage", ["dpo", "kto"])
def test_prompts_that_fill_max_length_are_dropped_and_counted(stage, tiny_models, quick_cfg, tmp_path):
    from train.run import prepare

    ctx = prepare(
        quick_cfg(stage, tiny_models["lm"], _pairs(tmp_path, long_prompt=True), tmp_path / "o", max_length=64)
    )
    reason = "prompt alone fills max_length 64 (nothing of the answer would be trained)"
    per_pair = 2 if stage == "kto" else 1  # a pair gives KTO a good and a bad row
    assert ctx.prep.dropped[reason] == 3 * per_pair
    assert len(ctx.tokenized.rows) == 4 * per_pair == ctx.plan["rows"]
    assert all(p < 64 for p in ctx.tokenized.prompt_lengths)


def test_kto_rows_are_shuffled_and_identical_pairs_dropped(tiny_models, train_data, quick_cfg, tmp_path):
    from train.run import build_datasets, prepare

    same = _rows(
        tmp_path / "same.jsonl", [{"prompt": "p?", "chosen": "same answer", "rejected": "same answer "}]
    )
    prep = D.prepare([str(train_data["pref"]), str(same)], "kto")
    assert prep.dropped["chosen equals rejected"] == 1 and len(prep.rows) == 48

    def order(seed):
        ctx = prepare(quick_cfg("kto", tiny_models["lm"], train_data["pref"], tmp_path / "k", seed=seed))
        ds, _ = build_datasets(ctx)
        return ds, ctx

    a, ctx = order(1)
    prompts = [r[-1]["content"] for r in a["prompt"]]
    # pairs are no longer adjacent rows of one prompt (KTO's KL term pairs each row with its neighbour)
    adjacent = sum(x == y for x, y in zip(prompts, prompts[1:], strict=False))
    assert adjacent <= 4, adjacent
    assert sorted(prompts) == sorted(r["prompt"][-1]["content"] for r in ctx.tokenized.rows)
    assert order(1)[0]["prompt"] == a["prompt"] and order(2)[0]["prompt"] != a["prompt"]


def test_pt_splits_long_documents_and_plans_packed_sequences(tiny_models, train_data, quick_cfg, tmp_path):
    from train.run import build_datasets, prepare

    ctx = prepare(
        quick_cfg("pt", tiny_models["lm"], train_data["text"], tmp_path / "pt", max_length=16, max_steps=-1)
    )
    tokens = sum(ctx.tokenized.lengths)
    assert max(ctx.tokenized.lengths) > 16
    ds, _ = build_datasets(ctx)
    # every token is trained on (documents are split into max_length pieces, not cut)
    assert sum(len(x) for x in ds["input_ids"]) == tokens and max(len(x) for x in ds["input_ids"]) <= 16
    assert ctx.extra["split_documents"] == 12 and ctx.report.counts["truncated"] == 0
    # packed: one epoch is ceil(tokens / max_length) sequences, not the 12 documents
    import math

    plan = ctx.plan
    assert plan["rows"] == 12 and plan["sequences"] == math.ceil(tokens / 16)
    assert plan["steps_per_epoch"] == math.ceil(plan["sequences"] / plan["global_batch"])
    nopack = prepare(
        quick_cfg("pt", tiny_models["lm"], train_data["text"], tmp_path / "np", max_length=16, packing=False)
    )
    assert (
        nopack.plan["sequences"] == D.n_chunks(nopack.tokenized.lengths, 16) == len(build_datasets(nopack)[0])
    )


def test_sft_packing_plans_from_tokens(tiny_models, train_data, quick_cfg, tmp_path):
    import math

    from train.run import prepare

    ctx = prepare(
        quick_cfg(
            "sft",
            tiny_models["lm"],
            train_data["sft"],
            tmp_path / "s",
            packing=True,
            max_length=64,
            global_batch=None,
        )
    )
    tokens = sum(min(n, 64) for n in ctx.tokenized.lengths)
    assert ctx.plan["sequences"] == math.ceil(tokens / 64) < 24


@pytest.mark.parametrize("stage", ["dpo", "kto", "rm"])
def test_val_split_keeps_per_row_lengths_aligned(stage, tiny_models, train_data, quick_cfg, tmp_path):
    from train.run import prepare

    model = tiny_models["reward" if stage == "rm" else "lm"]
    ctx = prepare(quick_cfg(stage, model, train_data["pref"], tmp_path / "v", val_split=0.25, max_length=64))
    tk, ev = ctx.tokenized, ctx.eval_tokenized
    assert ev.rows and len(tk.prompt_lengths) == len(tk.rows) and len(ev.prompt_lengths) == len(ev.rows)
    assert ctx.plan["eval_rows"] == len(ev.rows) and not set(ev.ids) & set(tk.ids)
