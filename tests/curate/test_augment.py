"""augment: few-shot retrieval without leakage, chain of thought (local tiny model and a loopback
OpenAI-compatible server), rephrase/system templates, the CLI."""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from curate.augment import AugmentConfig, run
from curate.augment.common import char_ngrams, containment, lang_of, meta_dict, norm_key, read_lines_template
from curate.augment.cot import check_rationale
from curate.augment.teachers import HFTeacher, OpenAITeacher, TeacherCache
from curate.cli import main
from curate.io import load
from curate.records import Record, to_frame

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "ops_qa.jsonl"


@pytest.fixture(scope="module")
def embedder():
    from curate.embed import get_embedder

    return get_embedder("use")


def _frame(pairs, **extra_cols):
    fr = to_frame(Record("sft", question=q, answer=a).as_row() for q, a in pairs)
    for k, v in extra_cols.items():
        fr = fr.with_columns(pl.Series(k, v))
    return fr


def _perturb(text: str, rng: random.Random) -> str:
    """A near-duplicate: one small edit every ~40 characters."""
    chars = list(text)
    for _ in range(max(1, len(chars) // 40)):
        i = rng.randrange(len(chars))
        chars[i] = chars[i] + rng.choice("，的了 ")
    return "".join(chars)


def assert_no_leak(frame: pl.DataFrame, variants: pl.DataFrame, embedder, near_dup=0.9, overlap=0.5):
    """Every demonstration of every few-shot variant: not the row itself, not its answer, not a near
    duplicate of its question or answer (whole answers embedded here), not a held-out row."""
    texts = sorted(
        {t for r in frame.to_dicts() for t in (r["question"], r["answer"])}
        | {t["content"] for h in variants["history"].to_list() for t in h}
    )
    vecs = dict(zip(texts, embedder.encode(texts), strict=True))
    by_id = {r["id"]: r for r in frame.to_dicts()}
    eval_ids = {r["id"] for r in frame.to_dicts() if r.get("split") == "eval"}
    checked = 0
    for v in variants.to_dicts():
        m = meta_dict(v)
        origin = by_id[m["origin_id"]]
        assert origin.get("split") != "eval"
        demo_turns = v["history"][: 2 * len(m["fewshot_ids"])]
        own_answer = norm_key(origin["answer"])
        q_vec, a_vec = vecs[origin["question"]], vecs[origin["answer"]]
        for did, (u, a) in zip(
            m["fewshot_ids"], zip(demo_turns[::2], demo_turns[1::2], strict=True), strict=True
        ):
            assert did != origin["id"] and did not in eval_ids
            assert u["role"] == "user" and a["role"] == "assistant"
            assert norm_key(a["content"]) != own_answer
            assert norm_key(u["content"]) != norm_key(origin["question"])
            assert containment(char_ngrams(a["content"]), char_ngrams(origin["answer"])) < overlap
            dq, da = vecs[u["content"]], vecs[a["content"]]
            assert float(q_vec @ dq) < near_dup and float(a_vec @ da) < near_dup
            checked += 1
    return checked


def test_fewshot_on_samples_never_leaks_the_answer(embedder):
    fr = load([SAMPLES]).frame.head(150)
    rng = random.Random(1)
    # plant near-duplicates (edited copies) and hold a few rows out
    extra = []
    for r in fr.filter(pl.col("answer").str.len_chars() > 20).head(30).to_dicts():
        extra.append(
            Record("sft", question=_perturb(r["question"], rng), answer=_perturb(r["answer"], rng)).as_row()
        )
    fr = pl.concat([fr, to_frame(extra)], how="vertical")
    split = ["eval" if i % 10 == 3 else "train" for i in range(fr.height)]
    fr = fr.with_columns(pl.Series("split", split))
    res = run(fr, AugmentConfig(fewshot=3), embedder=embedder)
    variants = res.kept.filter(pl.col("meta").str.contains('"variant": "fewshot"'))
    assert variants.height > 0.8 * fr.filter(pl.col("split") == "train").height - res.dropped.height
    assert res.kept.height + res.dropped.height == fr.height + res.stats["added"]
    assert assert_no_leak(fr, variants, embedder) >= 3 * variants.height
    # the multi-turn shape: 3 demonstrations = 6 turns, then the row's own question and answer
    v = variants.row(0, named=True)
    assert len(v["history"]) == 6
    origin = fr.filter(pl.col("id") == meta_dict(v)["origin_id"]).row(0, named=True)
    assert (v["question"], v["answer"]) == (origin["question"], origin["answer"])
    assert v["id"] != origin["id"]
    # eval rows get no variant and are never demonstrations (checked above)
    origins = {meta_dict(r)["origin_id"] for r in variants.to_dicts()}
    assert not origins & set(fr.filter(pl.col("split") == "eval")["id"].to_list())
    excluded = res.stats["fewshot"]["candidates_excluded"]
    assert excluded["near-duplicate question"] + excluded["near-duplicate answer"] > 0


def test_fewshot_on_real_data_with_planted_duplicates(shared_data, embedder):
    path = shared_data / "medicalgpt-samples" / "medical_sft_1K_format.jsonl"
    fr = load([path]).frame.filter(pl.col("kind") == "sft").head(120)
    rng = random.Random(7)
    twins = [
        Record("sft", question=_perturb(r["question"], rng), answer=_perturb(r["answer"], rng)).as_row()
        for r in fr.head(30).to_dicts()
        if len(r["answer"]) > 20
    ]
    fr = pl.concat([fr, to_frame(twins)], how="vertical_relaxed")
    res = run(fr, AugmentConfig(fewshot=2), embedder=embedder)
    variants = res.kept.filter(pl.col("meta").str.contains('"variant": "fewshot"'))
    assert variants.height >= 100
    assert assert_no_leak(fr, variants, embedder) == 2 * variants.height


def test_fewshot_respects_cluster_column(embedder):
    pairs = [
        (f"How do I restart service {i}?", f"Run systemctl restart svc{i} and check its status.")
        for i in range(8)
    ]
    fr = _frame(pairs, cluster=["a", "a", "a", "a", "b", "b", "b", "b"])
    res = run(fr, AugmentConfig(fewshot=2, near_dup=1.0, answer_overlap=1.0), embedder=embedder)
    cl = dict(zip(fr["id"].to_list(), fr["cluster"].to_list(), strict=True))
    for v in res.kept.filter(pl.col("meta").str.contains("fewshot")).to_dicts():
        m = meta_dict(v)
        assert all(cl[d] != cl[m["origin_id"]] for d in m["fewshot_ids"])


def test_fewshot_never_uses_a_train_copy_of_a_held_out_row(embedder):
    """A train row identical to a held-out row (same id) is that row: never a demonstration, and the
    exclusion is counted (this path raised KeyError: 'held-out duplicate')."""
    pairs = [
        ("How do I restart the nginx service?", "Run systemctl restart nginx."),
        ("How can I list open TCP ports?", "Use ss -tlnp to see listening sockets."),
        ("What command shows disk usage per folder?", "du -sh * in the folder."),
        ("How do I follow a log file live?", "tail -f /var/log/syslog"),
        ("How to check free memory on Linux?", "free -h prints it in human units."),
        ("How do I find which process uses port 80?", "lsof -i :80 lists it."),
    ]
    fr = _frame(pairs, split=["train"] * len(pairs))
    leaked = fr.row(0, named=True)
    # the same content again, held out: its id equals the train row's id
    fr = pl.concat([fr, fr.head(1).with_columns(pl.lit("eval").alias("split"))], how="vertical")
    assert fr["id"][0] == fr["id"][-1]
    res = run(fr, AugmentConfig(fewshot=2, near_dup=1.0, answer_overlap=1.0), embedder=embedder)
    variants = res.kept.filter(pl.col("meta").str.contains('"variant": "fewshot"'))
    assert variants.height > 0
    for v in variants.to_dicts():
        assert leaked["id"] not in meta_dict(v)["fewshot_ids"]
        assert all(t["content"] != leaked["answer"] for t in v["history"])
    assert res.stats["fewshot"]["candidates_excluded"]["held-out duplicate"] > 0


def test_check_rationale_modes():
    ref = "重启 kubelet 即可"
    good = "1. 节点 NotReady 通常是 kubelet 停了。\n2. 查看 systemctl status kubelet。\n最终答案：重启 kubelet 即可。"
    assert check_rationale(good, ref, "contains")[0]
    assert check_rationale(good, ref, "final")[0]
    assert not check_rationale("最终答案：重启 docker", ref, "final")[0]
    assert not check_rationale("重启 kubelet 即可", ref, "contains")[0]  # an echo is not a rationale
    ok, d = check_rationale(
        "Step 1: look. Step 2: think.\nFinal answer: Pods restart.", "pods restart", "final"
    )
    assert ok
    long_ref = "Use a PodDisruptionBudget so that voluntary evictions keep at least two replicas running."
    para = "First, drains evict pods. Second, a budget limits that.\nFinal answer: use a PodDisruptionBudget so voluntary evictions keep two replicas running"
    ok, d = check_rationale(para, long_ref, "overlap:0.8")
    assert ok and d["recall"] >= 0.8
    assert not check_rationale(para, long_ref, "contains")[0]
    with pytest.raises(ValueError):
        check_rationale(good, ref, "fuzzy")


def test_templates_and_language():
    assert lang_of("怎么查看 Pod 日志") == "zh" and lang_of("How do I read pod logs?") == "en"
    for lang in ("zh", "en"):
        assert all("{question}" in t for t in read_lines_template("rephrase", lang))
        assert read_lines_template("system", lang)


def test_rephrase_and_system_variants_are_deterministic():
    fr = _frame(
        [("怎么查看 Pod 的日志？", "kubectl logs <pod>"), ("How do I list nodes?", "kubectl get nodes")]
    )
    cfg = AugmentConfig(rephrase=2, system_variants=1)
    a, b = run(fr, cfg), run(fr, cfg)
    assert a.kept["id"].to_list() == b.kept["id"].to_list()
    assert a.stats["variants_by_kind"] == {"rephrase": 4, "system": 2}
    new = a.kept.filter(pl.col("meta").str.contains('"variant": "rephrase"')).to_dicts()
    zh = [r for r in new if meta_dict(r)["origin_id"] == fr["id"][0]]
    assert all(
        "怎么查看 Pod 的日志？" in r["question"] and r["question"] != "怎么查看 Pod 的日志？" for r in zh
    )
    assert all(meta_dict(r)["template"].startswith("rephrase_zh#") for r in zh)
    sys_rows = a.kept.filter(pl.col("meta").str.contains('"variant": "system"')).to_dicts()
    assert all(r["system"] and r["answer"] in ("kubectl logs <pod>", "kubectl get nodes") for r in sys_rows)
    assert len(set(a.kept["id"].to_list())) == a.kept.height


def test_cot_with_local_tiny_model(tiny_models, tmp_path):
    fr = _frame([("1+1 等于几？", "2"), ("What is 3*3?", "9"), ("列出 Pod 的命令？", "kubectl get pods")])
    cache = tmp_path / "cache.sqlite"
    teacher = HFTeacher(tiny_models["lm"], cache=TeacherCache(cache), max_new_tokens=16)
    res = run(fr, AugmentConfig(cot=True, teacher=str(tiny_models["lm"])), teacher=teacher)
    assert teacher.requests == 3
    # a random tiny model never reaches the reference answer: every rationale is reported, none kept
    assert res.kept.height == 3 and res.dropped.height == 3
    assert set(res.dropped["drop_reason"]) == {"cot: rationale does not reach the reference answer"}
    details = [json.loads(d) for d in res.dropped["drop_detail"]]
    assert all(isinstance(d["generated"], str) for d in details)
    teacher.close()
    # a second run reads every generation from the cache
    t2 = HFTeacher(tiny_models["lm"], cache=TeacherCache(cache), max_new_tokens=16)
    res2 = run(fr, AugmentConfig(cot=True, teacher=str(tiny_models["lm"])), teacher=t2)
    assert t2.requests == 0 and t2.cache.hits == 3
    assert [json.loads(d)["generated"] for d in res2.dropped["drop_detail"]] == [
        d["generated"] for d in details
    ]
    t2.close()


class _FakeOpenAI(BaseHTTPRequestHandler):
    """Chat-completions endpoint: answers with reasoning + the reference answer (or a wrong one for
    questions containing 'WRONG'); the first request of each prompt gets a 429."""

    received: list[dict] = []
    seen: set[str] = set()
    lock = threading.Lock()
    inflight = 0
    max_inflight = 0
    starts: list[float] = []

    def log_message(self, *a):  # keep pytest output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        with cls.lock:
            cls.received.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            cls.starts.append(time.monotonic())
            cls.inflight += 1
            cls.max_inflight = max(cls.max_inflight, cls.inflight)
            key = json.dumps(body["messages"], sort_keys=True)
            first = key not in cls.seen
            cls.seen.add(key)
        try:
            time.sleep(0.15)
            if first:
                self.send_response(429)
                self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(b'{"error": "rate limited"}')
                return
            user = body["messages"][-1]["content"]
            ref = (
                user.split("Reference answer:\n", 1)[1].split("\n\n", 1)[0]
                if "Reference answer:" in user
                else ""
            )
            if "WRONG" in user:
                text = "1. Think.\n2. Think more.\nFinal answer: something else entirely"
            else:
                text = f"1. Restate the question.\n2. Recall the relevant fact.\nFinal answer: {ref}"
            out = json.dumps(
                {
                    "choices": [{"message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        finally:
            with cls.lock:
                cls.inflight -= 1


@pytest.fixture()
def fake_server():
    _FakeOpenAI.received, _FakeOpenAI.seen, _FakeOpenAI.starts = [], set(), []
    _FakeOpenAI.max_inflight = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1", _FakeOpenAI
    srv.shutdown()
    srv.server_close()


def test_cot_against_loopback_openai_server(fake_server, tmp_path, monkeypatch):
    url, handler = fake_server
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-test-123")
    qs = [(f"What does command number {i} do?", f"It prints report {i}.") for i in range(5)]
    qs.append(("WRONG: what is the port?", "8080"))
    fr = _frame(qs)
    cfg = AugmentConfig(
        cot=True,
        teacher_url=url,
        teacher_model="tiny-teacher",
        api_key_env="MY_TEACHER_KEY",
        concurrency=3,
        rpm=1200,
        cache=str(tmp_path / "c.sqlite"),
        lang="en",
    )
    res = run(fr, cfg)
    # 6 prompts, each refused once (429) then answered: 12 requests, all with the key and the model name
    assert len(handler.received) == 12
    assert all(r["auth"] == "Bearer sk-test-123" for r in handler.received)
    assert all(r["path"] == "/v1/chat/completions" for r in handler.received)
    bodies = [r["body"] for r in handler.received]
    assert {b["model"] for b in bodies} == {"tiny-teacher"}
    assert all(b["messages"][0]["role"] == "system" and b["messages"][-1]["role"] == "user" for b in bodies)
    assert any("It prints report 3." in b["messages"][-1]["content"] for b in bodies)
    assert handler.max_inflight >= 2  # concurrency
    starts = sorted(handler.starts)
    assert starts[-1] - starts[0] >= 0.8 * 11 * 0.05  # 1200 rpm: request starts 50 ms apart
    st = res.stats["cot"]
    assert st["passed"] == 5 and st["failed"] == 1 and st["retries"] == 6
    cot = res.kept.filter(pl.col("meta").str.contains('"variant": "cot"'))
    assert cot.height == 5
    assert all(
        r["answer"].endswith(f"Final answer: {r2}")
        for r, r2 in zip(cot.to_dicts(), [a for _, a in qs[:5]], strict=True)
    )
    assert res.dropped.height == 1
    assert res.dropped["drop_reason"][0] == "cot: rationale does not reach the reference answer"
    assert res.kept.height + res.dropped.height == fr.height + res.stats["added"]
    # a re-run pays nothing: every generation comes from the cache
    n = len(handler.received)
    res2 = run(fr, cfg)
    assert len(handler.received) == n and res2.stats["cot"]["cache_hits"] == 6
    assert res2.kept["id"].to_list() == res.kept["id"].to_list()
    # the think style: reasoning in <think>, then exactly the reference answer (same cached generations)
    res3 = run(fr, AugmentConfig(**{**cfg.__dict__, "cot_style": "think"}))
    assert len(handler.received) == n
    think = res3.kept.filter(pl.col("meta").str.contains('"variant": "cot"')).to_dicts()
    assert think[0]["answer"].startswith("<think>\n1. Restate the question.")
    assert think[0]["answer"].endswith("</think>\n\nIt prints report 0.")


def test_rate_limiter_spaces_starts_across_threads():
    from curate.augment.teachers import RateLimiter

    lim, times, lock = RateLimiter(rpm=1200), [], threading.Lock()

    def worker():
        for _ in range(4):
            lim.wait()
            with lock:
                times.append(time.monotonic())

    ths = [threading.Thread(target=worker) for _ in range(3)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    times.sort()
    # the k-th start never comes before k intervals after the first call
    assert all(t - t0 >= k * 0.05 - 1e-3 for k, t in enumerate(times))


def test_openai_teacher_gives_up_and_reports(tmp_path):
    # nothing listens on this port: connection errors are retried, then the row is reported as failed
    t = OpenAITeacher("http://127.0.0.1:9/v1", "m", max_retries=1, backoff=0.01, cache=TeacherCache(None))
    out = t.generate([[{"role": "user", "content": "hi"}]])
    assert "gave up after 2 attempts" in str(out[0])


def test_augment_cli(tmp_path):
    out = tmp_path / "aug.jsonl"
    r = CliRunner().invoke(main, ["augment", str(SAMPLES), "-o", str(out), "--rephrase", "1", "--json"])
    assert r.exit_code in (0, 1), r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert (
        summary["kept"] + summary["dropped"] + summary["rejected"] == summary["input_rows"] + summary["added"]
    )
    # meta is a JSON object in JSONL outputs (issue 18 item 4): compare its JSON text
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    rows = [{**x, "meta": json.dumps(x["meta"], ensure_ascii=False)} for x in rows]
    assert sum(1 for x in rows if '"rephrase"' in x["meta"]) == summary["variants"]
    r = CliRunner().invoke(main, ["augment", str(SAMPLES), "--cot"])
    assert r.exit_code == 2 and "teacher" in r.output
    r = CliRunner().invoke(main, ["augment", str(SAMPLES)])
    assert r.exit_code == 2 and "nothing to do" in r.output


def test_variants_only_accounting():
    fr = _frame([("How do I list nodes?", "kubectl get nodes")])
    res = run(fr, AugmentConfig(rephrase=2, variants_only=True))
    assert res.kept.height == 2 and res.dropped.height == 1
    assert res.kept.height + res.dropped.height == fr.height + res.stats["added"]
    assert np.all([meta_dict(r)["origin_id"] == fr["id"][0] for r in res.kept.to_dicts()])


def test_cli_cot_and_pairs_through_the_endpoint(fake_server, tmp_path, monkeypatch):
    url, handler = fake_server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli")
    inp = tmp_path / "qa.jsonl"
    rows = [{"question": f"What does flag -{c} do?", "answer": f"It enables mode {c}."} for c in "abc"]
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "cot.jsonl"
    args = ["augment", str(inp), "-o", str(out), "--cot", "--teacher-url", url, "--teacher-model", "t1"]
    args += ["--cache", str(tmp_path / "c.sqlite"), "--lang", "en", "--json"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["added"] == 3 and s["kept"] == 6 and s["cot"]["passed"] == 3
    assert {x["auth"] for x in handler.received} == {"Bearer sk-cli"}
    # pairs: curated answer (chosen) vs the endpoint's answer (rejected)
    r = CliRunner().invoke(
        main,
        ["pairs", str(inp), "-o", str(tmp_path / "p.jsonl"), "--model-url", url, "--model-name", "t1"]
        + ["--cache", str(tmp_path / "c.sqlite"), "--json"],
    )
    assert r.exit_code == 0, r.output
    got = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    got = [{**g, "meta": json.dumps(g["meta"])} for g in got]  # meta is a JSON object in JSONL outputs
    assert len(got) == 3 and all(g["rejected"].startswith("1. Restate") for g in got)
    assert all(json.loads(g["meta"])["pair_source"] == "generated" for g in got)


class _BadOpenAI(BaseHTTPRequestHandler):
    """Answers by the prompt: a JSON array, bytes that are not UTF-8, a body cut short, content as
    parts, content that is not text, or (``ok``) a good answer. Records each request's path."""

    paths: list[str] = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).paths.append(self.path)
        mode = body["messages"][-1]["content"]
        mode = next((m for m in ("list", "latin1", "truncated") if f"<<{m}>>" in mode), mode)  # in a prompt

        def message(content) -> bytes:
            return json.dumps({"choices": [{"message": {"content": content}}]}).encode()

        if mode == "truncated":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"choices"')
            self.wfile.flush()
            self.close_connection = True
            return
        out = {
            "list": b"[]",
            "latin1": b'{"choices": [{"message": {"content": "caf\xe9"}}]}',
            "parts": message(
                [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]
            ),
            "number": message(42),
            "dict": message({"text": "x"}),
            "usage": json.dumps({"choices": [{"message": {"content": "fine"}}], "usage": "n/a"}).encode(),
        }.get(mode, message("ok"))
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture()
def bad_server():
    _BadOpenAI.paths = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _BadOpenAI)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", _BadOpenAI
    srv.shutdown()
    srv.server_close()


def test_one_bad_teacher_response_fails_its_row_not_the_run(bad_server):
    from curate.augment.teachers import GenerationError

    url, handler = bad_server
    t = OpenAITeacher(f"{url}/v1", "m", max_retries=1, backoff=0.01, concurrency=2, cache=TeacherCache(None))
    modes = ["list", "latin1", "truncated", "parts", "number", "dict", "usage", "ok"]
    out = dict(zip(modes, t.generate([[{"role": "user", "content": m}] for m in modes]), strict=True))
    assert out["parts"] == "ab" and out["usage"] == "fine" and out["ok"] == "ok"
    for m in ("list", "latin1", "truncated", "number", "dict"):
        assert isinstance(out[m], GenerationError), m
    assert "not an object" in str(out["list"])
    assert "UnicodeDecodeError" in str(out["latin1"]) and "gave up after 2 attempts" in str(out["latin1"])
    assert "gave up after 2 attempts" in str(out["truncated"])
    assert "not text" in str(out["number"])


def test_cot_records_a_bad_response_as_a_failed_row(bad_server, tmp_path):
    from curate.augment.cot import cot_variants

    url, _ = bad_server
    fr = _frame([("What port does HTTP use? <<list>>", "80"), ("What port does SSH use? <<latin1>>", "22")])
    t = OpenAITeacher(f"{url}/v1", "m", max_retries=0, cache=TeacherCache(None))
    kept, failed, stats = cot_variants(fr, t)
    assert kept == [] and len(failed) == 2 and stats["failed"] == 2
    assert {f[1] for f in failed} == {"cot: teacher request failed"}


def test_teacher_url_query_stays_out_of_meta_and_the_cache_key(bad_server, tmp_path):
    url, handler = bad_server
    t = OpenAITeacher(
        f"http://user:pw@{url[len('http://') :]}/v1?api-key=SECRET",
        "m",
        cache=TeacherCache(tmp_path / "c.sqlite"),
    )
    assert t.endpoint.endswith("/v1/chat/completions?api-key=SECRET")  # requests keep the query
    assert "SECRET" not in t.identity and "pw" not in t.identity
    assert t.identity == f"openai:{url}/v1/chat/completions#m"
    t.cache = TeacherCache(None)
    t.endpoint = t.endpoint.replace("user:pw@", "")
    assert t.generate([[{"role": "user", "content": "ok"}]]) == ["ok"]
    assert handler.paths == ["/v1/chat/completions?api-key=SECRET"]
    # a plain URL keeps the identity (and so the cache keys) it always had
    assert OpenAITeacher("http://h:8000/v1/", "m").identity == "openai:http://h:8000/v1/chat/completions#m"


def test_variants_keep_the_tool_roles_of_the_turns_they_keep(tmp_path):
    from curate.augment.common import variant_row
    from curate.export import convert_row

    p = tmp_path / "sg.jsonl"
    row = {
        "conversations": [
            {"from": "human", "value": "weather in Paris?"},
            {"from": "function_call", "value": '{"name": "w", "arguments": {}}'},
            {"from": "observation", "value": '{"temp": 20}'},
            {"from": "gpt", "value": "It is 20C."},
        ],
        "tools": "[]",
    }
    p.write_text(json.dumps(row) + "\n")
    origin = load([p]).frame.to_dicts()[0]
    v = variant_row(origin, "system", {"template": "t"}, system="be brief")
    out = convert_row(v, "sharegpt")
    assert [t["from"] for t in out["conversations"]] == ["human", "function_call", "observation", "gpt"]
    assert out["tools"] == "[]"
    # a variant with another answer no longer claims the original answer's role
    assert "a_role" not in meta_dict(variant_row(origin, "cot", None, answer="x")).get("_fmt", {})
