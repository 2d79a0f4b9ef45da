import json

from click.testing import CliRunner

from curate.cli import main

ANS = "高血压患者应当低盐饮食，适量运动，保持情绪稳定，按时服用降压药物，并定期复查血压和相关指标。如果出现头痛、胸闷、视物模糊等症状，应及时到医院就诊，不要自行停药或者随意加减药量。"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def rows():
    return [
        {"instruction": "高血压吃什么好", "output": ANS},
        {"instruction": "高血压吃什么好？", "output": ANS},
        {"instruction": "高血压吃什么好", "output": ANS[:-1] + "。"},
        {"instruction": "高血压吃什么好", "output": ANS.replace("定期", "按期")},
        {
            "instruction": "What should I eat with high blood pressure?",
            "output": "Less salt, more vegetables.",
        },
        {"instruction": "x", "output": ""},
    ]


def test_dedup_cli_outputs_and_explain(tmp_path):
    inp = tmp_path / "qa.jsonl"
    write_jsonl(inp, rows())
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(main, ["dedup", str(inp), "-o", str(out), "--json", "--explain"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["input_rows"] == 6
    assert summary["kept"] + summary["dropped"] == 6
    assert summary["dropped_by_reason"] == {"exact duplicate": 2, "near duplicate": 1}
    kept = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(kept) == 3
    dropped = [json.loads(x) for x in (tmp_path / "out.dropped.jsonl").read_text().splitlines()]
    assert all(d["dup_of"] == kept[0]["id"] for d in dropped)
    clusters = [json.loads(x) for x in (tmp_path / "out.clusters.jsonl").read_text().splitlines()]
    assert {c["method"] for c in clusters} == {"exact", "minhash"}
    assert all(c["survivor"]["id"] == kept[0]["id"] for c in clusters)
    # a later run without --explain does not leave those clusters beside its output
    res = CliRunner().invoke(main, ["dedup", str(inp), "-o", str(out), "--json"])
    assert res.exit_code == 0 and not (tmp_path / "out.clusters.jsonl").exists()


def test_dedup_cli_state_across_files(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, rows()[:1])
    write_jsonl(b, rows()[1:2] + rows()[4:5])
    state = tmp_path / "state"
    r1 = CliRunner().invoke(
        main, ["dedup", str(a), "-o", str(tmp_path / "a.out.jsonl"), "--state", str(state), "--json"]
    )
    assert r1.exit_code == 0, r1.output
    r2 = CliRunner().invoke(
        main, ["dedup", str(b), "-o", str(tmp_path / "b.out.jsonl"), "--state", str(state), "--json"]
    )
    assert r2.exit_code == 0, r2.output
    s2 = json.loads(r2.stdout.strip().splitlines()[-1])
    assert s2["kept"] == 1 and s2["state"]["batch"] == 2 and s2["state"]["earlier_rows"] == 1
    d = json.loads((tmp_path / "b.out.dropped.jsonl").read_text().splitlines()[0])
    detail = json.loads(d["drop_detail"])
    assert detail["survivor_source"].endswith("a.jsonl:1") and detail["survivor_batch"] == 1


def test_dedup_cli_usage_errors(tmp_path):
    inp = tmp_path / "qa.jsonl"
    write_jsonl(inp, rows())
    r = CliRunner().invoke(main, ["dedup", str(inp), "-o", str(inp)])
    assert r.exit_code == 2 and "refusing to overwrite" in r.output
    r = CliRunner().invoke(main, ["dedup", str(inp), "--keep", "biggest"])
    assert r.exit_code == 2 and "--keep" in r.output
    r = CliRunner().invoke(main, ["dedup", str(inp), "--method", "fuzzy"])
    assert r.exit_code == 2 and "fuzzy" in r.output
    r = CliRunner().invoke(
        main, ["dedup", str(inp), "--method", "semantic", "--embed-model", "org/some-hub-model"]
    )
    assert r.exit_code == 2 and "never downloads" in r.output
    r = CliRunner().invoke(main, ["dedup", str(inp), "--keep", "best:score", "-o", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 2 and "no column 'score'" in r.output


def test_dedup_cli_human_summary_and_explain_tables(tmp_path):
    inp = tmp_path / "qa.jsonl"
    write_jsonl(inp, rows())
    res = CliRunner().invoke(main, ["dedup", str(inp), "--explain", "--keep", "longest"])
    assert res.exit_code == 0, res.output
    assert "closest to the threshold" in res.output and "near duplicate" in res.output
    assert (tmp_path / "qa.deduped.jsonl").exists() and (tmp_path / "qa.deduped.clusters.jsonl").exists()


def test_clusters_file_never_replaces_an_input_or_the_output(tmp_path):
    inp = tmp_path / "qa.jsonl"
    write_jsonl(inp, rows())
    other = tmp_path / "other.jsonl"
    write_jsonl(other, rows()[:1])
    out = tmp_path / "out.jsonl"
    state = tmp_path / "state"
    before = other.read_bytes()
    for extra in (
        ["--clusters", str(other)],
        ["--clusters", str(out)],
        ["--clusters", str(tmp_path / "out.dropped.jsonl")],
    ):
        r = CliRunner().invoke(
            main, ["dedup", str(inp), str(other), "-o", str(out), "--state", str(state), *extra]
        )
        assert r.exit_code == 2 and "refusing" in r.output, r.output
    assert other.read_bytes() == before and not out.exists()
    assert not (state / "manifest.json").exists()  # refused before any work
    # an input that happens to be named like the output's clusters file
    named = tmp_path / "out.clusters.jsonl"
    write_jsonl(named, rows()[:1])
    r = CliRunner().invoke(main, ["dedup", str(inp), str(named), "-o", str(out), "--explain"])
    assert r.exit_code == 2 and "refusing to overwrite the input" in r.output
    r = CliRunner().invoke(main, ["dedup", str(inp), str(named), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert named.exists() and "removed_stale_clusters" not in r.stdout


def test_state_batch_is_committed_only_after_the_outputs(tmp_path, monkeypatch):
    import curate.io

    inp = tmp_path / "qa.jsonl"
    write_jsonl(inp, rows())
    state = tmp_path / "state"
    args = ["dedup", str(inp), "-o", str(tmp_path / "out.jsonl"), "--state", str(state), "--json"]

    def broken(*a, **k):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(curate.io, "write_frame", broken)
        r = CliRunner().invoke(main, args)
    assert r.exit_code != 0
    manifest = json.loads((state / "manifest.json").read_text()) if (state / "manifest.json").exists() else {}
    assert not manifest.get("batches")
    assert not [p for p in state.iterdir() if "batch-" in p.name]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["state"]["batch"] == 1
    assert len(json.loads((state / "manifest.json").read_text())["batches"]) == 1


def test_bad_bands_and_semantic_threshold_are_usage_errors(tmp_path):
    inp = tmp_path / "qa.jsonl"
    write_jsonl(inp, rows())
    for extra in (["--bands", "0"], ["--bands", "-1"], ["--bands", "200"], ["--semantic-threshold", "1.5"]):
        r = CliRunner().invoke(main, ["dedup", str(inp), *extra])
        assert r.exit_code == 2, (extra, r.output)
        assert extra[0] in r.output
