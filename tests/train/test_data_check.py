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
