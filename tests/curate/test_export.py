"""export: every layout loads in HF datasets; TRL's SFTTrainer and DPOTrainer train a step on the exported
files without conversion; LLaMA-Factory's dataset_info.json; the epochs hint; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.export import CONVERTER, FORMATS, ExportConfig, convert, epochs_hint, run, write
from curate.io import load
from curate.records import Record, Turn, to_frame

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLES = ROOT / "samples" / "ops_qa.jsonl"


def sft_frame() -> pl.DataFrame:
    fr = load([SAMPLES]).frame.head(12)
    extra = to_frame(
        [
            Record(
                "sft",
                system="You are an SRE.",
                history=[Turn("user", "What is a Pod?"), Turn("assistant", "The smallest deployable unit.")],
                question="And a Deployment?",
                answer="A controller that keeps N replicas of a Pod template running.",
                meta={"variant": "fewshot", "nested": {"a": [1, 2]}},
            ).as_row()
        ]
    )
    return pl.concat([fr, extra], how="vertical")


def frames() -> dict[str, pl.DataFrame]:
    return {
        "sft": sft_frame(),
        "preference": load([FIXTURES / "trl_pref.jsonl", FIXTURES / "llamafactory_pref.json"]).frame,
        "kto": load([FIXTURES / "kto.jsonl"]).frame,
        "text": load([FIXTURES / "text.jsonl"]).frame,
    }


def test_every_layout_loads_in_datasets(tmp_path):
    from datasets import load_dataset

    checked = 0
    for kind, fr in frames().items():
        for fmt in FORMATS:
            if (fmt, kind) not in CONVERTER:
                continue
            for ext in (".jsonl", ".json"):
                # one directory per extension: x.jsonl and x.json would claim one dataset_info name
                (tmp_path / ext[1:]).mkdir(exist_ok=True)
                out = tmp_path / ext[1:] / f"{fmt}_{kind}{ext}"
                cfg = ExportConfig(format=fmt)
                records, splits, k, kept, dropped = convert(fr, cfg)
                assert k == kind and dropped.height == 0, (fmt, kind, dropped["drop_detail"].to_list())
                write(records, splits, k, cfg, out)
                ds = load_dataset("json", data_files=str(out), split="train")
                assert ds.num_rows == fr.height, (fmt, kind)
                checked += 1
    assert checked == 2 * len(CONVERTER)


def test_layout_shapes():
    fr = sft_frame()
    rec = convert(fr.tail(1), ExportConfig(format="trl"))[0][0]
    assert list(rec) == ["messages"]
    assert [m["role"] for m in rec["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    rec = convert(fr.tail(1), ExportConfig(format="sharegpt"))[0][0]
    assert rec["system"] == "You are an SRE." and [t["from"] for t in rec["conversations"]] == [
        "human",
        "gpt",
        "human",
        "gpt",
    ]
    rec = convert(fr.tail(1), ExportConfig(format="alpaca"))[0][0]
    assert rec["history"] == [["What is a Pod?", "The smallest deployable unit."]]
    pref = frames()["preference"]
    rec = convert(pref.head(1), ExportConfig(format="openai"))[0][0]
    assert set(rec) == {"input", "preferred_output", "non_preferred_output"}
    # meta is left out by default, written back with keep_meta
    assert "nested" not in convert(fr.tail(1), ExportConfig(format="trl"))[0][0]
    assert convert(fr.tail(1), ExportConfig(format="trl", keep_meta=True))[0][0]["nested"] == {"a": [1, 2]}


def test_mixed_kinds_and_unsupported_rows_are_reported():
    fr = pl.concat([frames()["sft"], frames()["preference"]], how="diagonal_relaxed")
    res = run(fr, ExportConfig(format="sharegpt"))
    assert res.stats["kind"] == "sft" and res.kept.height == frames()["sft"].height
    assert set(res.dropped["drop_reason"]) == {"export: preference row in a sft export"}
    res = run(frames()["text"], ExportConfig(format="openai"))
    assert res.kept.height == 0 and res.dropped["drop_reason"][0] == "export: cannot write as openai"


def test_keep_meta_round_trips_through_the_reader(tmp_path):
    src = FIXTURES / "alpaca.json"
    fr = load([src]).frame
    cfg = ExportConfig(format="alpaca", keep_meta=True)
    records, splits, kind, _, _ = convert(fr, cfg)
    out = write(records, splits, kind, cfg, tmp_path / "back.json")
    again = load([Path(out["output"])]).frame
    assert again["id"].to_list() == fr["id"].to_list()


def test_llamafactory_dataset_info_and_eval_split(tmp_path):
    fr = sft_frame().with_columns(pl.Series("split", ["train"] * 10 + ["eval"] * 3))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "x.json"}}))
    cfg = ExportConfig(format="llamafactory", name="ops")
    records, splits, kind, _, _ = convert(fr, cfg)
    written = write(records, splits, kind, cfg, tmp_path / "ops.json")
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["other"] == {"file_name": "x.json"}  # other entries kept
    assert info["ops"] == {
        "file_name": "ops.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system"},
    }
    assert info["ops_eval"]["file_name"] == "ops.eval.json"
    assert len(json.loads((tmp_path / "ops.json").read_text())) == 10
    assert len(json.loads(Path(written["eval"]).read_text())) == 3
    # LLaMA-Factory's sharegpt defaults: from/value tags, human/gpt roles, alternating turns
    for r in json.loads((tmp_path / "ops.json").read_text()):
        roles = [t["from"] for t in r["conversations"]]
        assert roles[::2] == ["human"] * (len(roles) // 2) and roles[1::2] == ["gpt"] * (len(roles) // 2)
    pref = frames()["preference"]
    cfg = ExportConfig(format="llamafactory", name="dpo")
    records, splits, kind, _, _ = convert(pref, cfg)
    write(records, splits, kind, cfg, tmp_path / "dpo.json")
    entry = json.loads((tmp_path / "dataset_info.json").read_text())["dpo"]
    assert entry["ranking"] is True and entry["columns"]["chosen"] == "chosen"
    row = json.loads((tmp_path / "dpo.json").read_text())[0]
    assert row["chosen"]["from"] == "gpt" and row["conversations"][-1]["from"] == "human"


def test_epochs_hint_follows_the_article_table():
    assert epochs_hint(100)["epochs"] == 15 and epochs_hint(50)["epochs"] == 15
    assert epochs_hint(1_000)["epochs"] == 10
    assert epochs_hint(10_000)["epochs"] == 2
    assert epochs_hint(100_000)["epochs"] == 2 and epochs_hint(10**6)["epochs"] == 2
    mid = epochs_hint(316)  # half-way between 100 and 1,000 in log space
    assert mid["epochs"] == 12.5
    five = epochs_hint(500)  # 15 - 5 * log10(5) = 11.505
    assert five["epochs"] == 11.5 and five["epochs_rounded"] == 12
    assert "500 rows" in five["text"] and "about 12 epochs" in five["text"]
    assert epochs_hint(0)["epochs"] is None
    # preference data and pretraining text follow their own tables, as `train` plans them
    assert epochs_hint(500, "preference")["epochs"] == 3 and epochs_hint(100_000, "preference")["epochs"] == 1
    assert epochs_hint(50_000, "text")["epochs"] == 1 and "pretraining" in epochs_hint(50_000, "text")["text"]


@pytest.fixture(scope="module")
def trl_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("trl")
    out = {}
    for kind in ("sft", "preference"):
        cfg = ExportConfig(format="trl")
        records, splits, k, _, _ = convert(frames()[kind], cfg)
        out[kind] = Path(write(records, splits, k, cfg, d / f"{kind}.jsonl")["output"])
    return out


def _tok(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def test_trl_sft_trainer_takes_a_step_on_the_export(tiny_models, trl_files, tmp_path):
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    ds = load_dataset("json", data_files=str(trl_files["sft"]), split="train")
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=128,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        bf16=False,
        use_cpu=True,
        assistant_only_loss=True,
    )
    trainer = SFTTrainer(
        model=str(tiny_models["lm"]), args=args, train_dataset=ds, processing_class=_tok(tiny_models["lm"])
    )
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0


def test_trl_dpo_trainer_takes_a_step_on_the_export(tiny_models, trl_files, tmp_path):
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer

    ds = load_dataset("json", data_files=str(trl_files["preference"]), split="train")
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=128,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        bf16=False,
        use_cpu=True,
    )
    trainer = DPOTrainer(
        model=str(tiny_models["lm"]), args=args, train_dataset=ds, processing_class=_tok(tiny_models["lm"])
    )
    result = trainer.train()
    assert result.global_step == 1


def test_export_cli(tmp_path):
    out = tmp_path / "train.jsonl"
    r = CliRunner().invoke(main, ["export", str(SAMPLES), "-o", str(out), "--format", "trl", "--json"])
    assert r.exit_code in (0, 1), r.output  # 1: the samples hold a few unreadable rows on purpose
    s = json.loads(r.stdout.strip().splitlines()[-1])
    n = len(out.read_text().splitlines())
    assert s["exported"] == n and s["epochs_hint"] == epochs_hint(n)["epochs_rounded"]
    assert "epochs" in s["hint"]
    r = CliRunner().invoke(main, ["export", str(SAMPLES), "-o", str(tmp_path / "x.csv")])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["export", str(out), "-o", str(out)])
    assert r.exit_code == 2 and "overwrite" in r.output


def test_all_four_stages_accept_empty_and_odd_frames():
    from curate.augment import AugmentConfig
    from curate.augment import run as augment
    from curate.pairs import PairsConfig
    from curate.pairs import run as pairs
    from curate.records import empty_frame
    from curate.select import SelectConfig
    from curate.select import run as select

    odd = to_frame(
        [
            Record("sft", question="", answer="").as_row(),
            Record("text", text="hello").as_row(),
            Record("sft", question="q?", answer="").as_row(),
        ]
    )
    for fr in (empty_frame(), odd):
        for res in (
            augment(fr, AugmentConfig(rephrase=1, fewshot=2)),
            select(fr, SelectConfig(target=5, eval_size=0.5, diversity="off", split_semantic=None)),
            pairs(fr, PairsConfig()),
            run(fr, ExportConfig()),
        ):
            assert res.kept.height + res.dropped.height == fr.height + res.stats.get("added", 0)


# ------------------------------------------------------------------------------- review fixes


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else [json.loads(x) for x in text.splitlines()]


def _export(frame: pl.DataFrame, out: Path, **cfg) -> dict:
    config = ExportConfig(**cfg)
    records, splits, kind, _, _ = convert(frame, config)
    return write(records, splits, kind, config, out)


SG_TOOLS = {
    "conversations": [
        {"from": "human", "value": "weather in Paris?"},
        {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": '{"temp": 20}'},
        {"from": "gpt", "value": "It is 20C."},
    ],
    "system": "sys",
    "tools": '[{"name": "get_weather", "description": "w", "parameters": {}}]',
}
OA_TOOLS = {
    "messages": [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "res"},
        {"role": "assistant", "content": "final"},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
}
# the answer itself is a tool call
OA_CALL_ANSWER = {
    "messages": [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
        },
    ]
}


def test_llamafactory_rows_always_have_the_declared_system_column(tmp_path):
    """dataset_info.json declares ``system``: LLaMA-Factory reads it from every row (KeyError otherwise)."""
    fr = to_frame(
        [
            Record("sft", question="q1", answer="a1", system="be brief").as_row(),
            Record("sft", question="q2", answer="a2").as_row(),
        ]
    )
    _export(fr, tmp_path / "sft.json", format="llamafactory")
    entry = json.loads((tmp_path / "dataset_info.json").read_text())["sft"]
    assert entry["columns"]["system"] == "system"
    assert [r["system"] for r in _read(tmp_path / "sft.json")] == ["be brief", ""]
    pref = to_frame([Record("preference", question="q", chosen="c", rejected="r").as_row()])
    _export(pref, tmp_path / "dpo.json", format="llamafactory")
    assert _read(tmp_path / "dpo.json")[0]["system"] == ""


def test_tool_calling_survives_the_default_export(tmp_path):
    fr = load([_jsonl(tmp_path / "sg.jsonl", [SG_TOOLS])]).frame
    row = convert(fr, ExportConfig(format="llamafactory"))[0][0]
    assert [t["from"] for t in row["conversations"]] == ["human", "function_call", "observation", "gpt"]
    assert row["tools"] == SG_TOOLS["tools"]  # LLaMA-Factory reads tools as a JSON string
    _export(fr, tmp_path / "lf" / "tools.json", format="llamafactory")
    entry = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())["tools"]
    assert entry["columns"]["tools"] == "tools"
    trl = convert(fr, ExportConfig(format="trl"))[0][0]
    assert [m["role"] for m in trl["messages"]][-2:] == ["tool", "assistant"]
    assert trl["tools"] == json.loads(SG_TOOLS["tools"])  # TRL/OpenAI take a list
    assert convert(fr, ExportConfig(format="openai"))[0][0]["messages"][-2]["role"] == "tool"

    # OpenAI tool_calls -> a ShareGPT function_call turn whose value is the call
    fr = load([_jsonl(tmp_path / "oa.jsonl", [OA_TOOLS, OA_CALL_ANSWER])]).frame
    records, _, _, _, dropped = convert(fr, ExportConfig(format="sharegpt"))
    assert dropped.height == 0
    conv = records[0]["conversations"]
    assert [t["from"] for t in conv] == ["human", "gpt", "human", "function_call", "observation", "gpt"]
    assert json.loads(conv[3]["value"]) == {"name": "f", "arguments": {"x": 1}}
    assert "tool_calls" not in conv[3]
    assert json.loads(records[0]["tools"]) == OA_TOOLS["tools"]
    last = records[1]["conversations"][-1]
    assert last["from"] == "function_call" and json.loads(last["value"]) == {"name": "w", "arguments": {}}
    # and in OpenAI's own layout the calls stay calls
    oa = convert(fr, ExportConfig(format="openai"))[0]
    assert oa[0]["messages"][3]["tool_calls"][0]["id"] == "c1" and oa[0]["tools"] == OA_TOOLS["tools"]
    assert oa[1]["messages"][-1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": OA_CALL_ANSWER["messages"][1]["tool_calls"],
    }
    # text and a call in one turn has no ShareGPT form: the row is dropped with the reason
    both = json.loads(json.dumps(OA_CALL_ANSWER))
    both["messages"][1]["content"] = "let me check"
    fr = load([_jsonl(tmp_path / "both.jsonl", [both])]).frame
    res = run(fr, ExportConfig(format="sharegpt"))
    assert res.kept.height == 0 and "tool_calls" in res.dropped["drop_detail"][0]


def test_export_cli_with_no_train_rows(tmp_path):
    src = _jsonl(tmp_path / "pairs.jsonl", [{"prompt": "q", "chosen": "c", "rejected": "r"}])
    out = tmp_path / "sft.jsonl"
    r = CliRunner().invoke(main, ["export", str(src), "-o", str(out), "--kind", "sft", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["exported"] == 0 and s["epochs_hint"] is None and s["dropped"] == 1
    assert out.read_text() == "" and (tmp_path / "sft.dropped.jsonl").is_file()
    # every row held out: the train file is empty, the eval file has them
    held = to_frame([Record("sft", question="q", answer="a").as_row()]).with_columns(
        pl.lit("test").alias("split")
    )
    held.write_ndjson(tmp_path / "held.jsonl")
    r = CliRunner().invoke(
        main, ["export", str(tmp_path / "held.jsonl"), "-o", str(tmp_path / "h.jsonl"), "--json"]
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["exported"] == 0 and s["eval_rows"] == 1 and s["epochs_hint"] is None


def test_export_cli_never_overwrites_an_input_through_a_side_file(tmp_path):
    src = _jsonl(tmp_path / "x.eval.jsonl", [{"question": "q", "answer": "a"}])
    before = src.read_bytes()
    r = CliRunner().invoke(main, ["export", str(src), "-o", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2 and "overwrite the input" in r.output and "eval" in r.output
    assert src.read_bytes() == before and not (tmp_path / "x.jsonl").exists()
    src = _jsonl(tmp_path / "info.jsonl", [{"question": "q", "answer": "a"}])
    before = src.read_bytes()
    args = ["export", str(src), "-o", str(tmp_path / "lf.json"), "--format", "llamafactory"]
    r = CliRunner().invoke(main, [*args, "--dataset-info", str(src)])
    assert r.exit_code == 2 and "dataset_info" in r.output
    assert src.read_bytes() == before and not (tmp_path / "lf.json").exists()
    # the dropped file is checked before the export is written too
    src = _jsonl(tmp_path / "o.dropped.jsonl", [{"question": "q", "answer": "a"}])
    r = CliRunner().invoke(main, ["export", str(src), "-o", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 2 and not (tmp_path / "o.jsonl").exists()


def test_a_reexport_without_eval_rows_removes_the_stale_eval_file_and_entry(tmp_path):
    from curate.pipeline import fastexport

    fr = sft_frame()
    with_eval = fr.with_columns(pl.Series("split", ["train"] * (fr.height - 2) + ["eval"] * 2))
    for d, do in (
        ("plain", lambda f, cfg: run(f, cfg)),
        ("memo", lambda f, cfg: fastexport.run(__import__("curate.export").export, f, cfg, tmp_path / "m")),
    ):
        out = tmp_path / d / "ops.json"
        cfg = ExportConfig(format="llamafactory", output=str(out))
        do(with_eval, cfg)
        info = json.loads((tmp_path / d / "dataset_info.json").read_text())
        assert (tmp_path / d / "ops.eval.json").is_file() and "ops_eval" in info
        res = do(fr, cfg)
        info = json.loads((tmp_path / d / "dataset_info.json").read_text())
        assert not (tmp_path / d / "ops.eval.json").exists() and set(info) == {"ops"}, d
        assert res.stats["outputs"]["removed_stale_eval"] == str(tmp_path / d / "ops.eval.json")


def test_llamafactory_keep_meta_writes_what_the_entry_describes(tmp_path):
    src = _jsonl(
        tmp_path / "kto.jsonl",
        [
            {
                "conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "label": True,
                "topic": "ops",
            }
        ],
    )
    fr = load([src]).frame
    assert fr["kind"].to_list() == ["kto"]
    _export(fr, tmp_path / "k.jsonl", format="llamafactory", keep_meta=True)
    row = _read(tmp_path / "k.jsonl")[0]
    assert row == {
        "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
        "system": "",
        "kto_tag": True,
        "topic": "ops",
    }
    assert json.loads((tmp_path / "dataset_info.json").read_text())["k"]["columns"]["kto_tag"] == "kto_tag"
    # a system prompt that came as the first turn goes to the declared system column
    src = _jsonl(
        tmp_path / "s.jsonl",
        [
            {
                "conversations": [
                    {"from": "system", "value": "S"},
                    {"from": "human", "value": "q"},
                    {"from": "gpt", "value": "a"},
                ]
            }
        ],
    )
    row = convert(load([src]).frame, ExportConfig(format="llamafactory", keep_meta=True))[0][0]
    assert row["system"] == "S" and [t["from"] for t in row["conversations"]] == ["human", "gpt"]


def test_default_dataset_names_do_not_collide(tmp_path):
    sft = to_frame([Record("sft", question="q", answer="a").as_row()])
    pref = to_frame([Record("preference", question="q", chosen="c", rejected="r").as_row()])
    _export(sft, tmp_path / "ops.sft.json", format="llamafactory")
    _export(pref, tmp_path / "ops.dpo.json", format="llamafactory")
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["ops.sft"]["file_name"] == "ops.sft.json" and info["ops.dpo"]["file_name"] == "ops.dpo.json"
    _export(sft, tmp_path / "ops.sft.json", format="llamafactory")  # the same file again: fine
    # a name that describes another file is refused before anything is written
    with pytest.raises(ValueError, match="ops.sft.json"):
        _export(pref, tmp_path / "other.json", format="llamafactory", name="ops.sft")
    assert not (tmp_path / "other.json").exists()
    src = _jsonl(tmp_path / "in.jsonl", [{"question": "q", "answer": "a"}])
    r = CliRunner().invoke(
        main,
        [
            "export",
            str(src),
            "-o",
            str(tmp_path / "new.json"),
            "--format",
            "llamafactory",
            "--name",
            "ops.dpo",
        ],
    )
    assert r.exit_code == 2 and "--name" in r.output and not (tmp_path / "new.json").exists()


def test_dataset_info_problems_are_reported_before_anything_is_written(tmp_path):
    sft = to_frame([Record("sft", question="q", answer="a").as_row()])
    for body, match in (("[1, 2]", "not an object"), ("{not json", "not valid JSON")):
        (tmp_path / "dataset_info.json").write_text(body)
        with pytest.raises(ValueError, match=match):
            _export(sft, tmp_path / "x.json", format="llamafactory")
        assert not (tmp_path / "x.json").exists()
        assert (tmp_path / "dataset_info.json").read_text() == body


def test_alpaca_drops_history_that_is_not_question_answer_pairs(tmp_path):
    rows = [
        Record("sft", question="q", answer="a", history=[Turn("user", "u")]),  # odd length
        Record("sft", question="q", answer="a", history=[Turn("assistant", "x"), Turn("user", "y")]),
        Record("sft", question="q", answer="a", history=[Turn("user", "u"), Turn("function_call", "{}")]),
        Record("sft", question="q", answer="a", history=[Turn("user", "u"), Turn("assistant", "v")]),
    ]
    fr = to_frame(r.as_row() for r in rows)
    res = run(fr, ExportConfig(format="alpaca"))
    assert res.kept.height == 1 and res.dropped.height == 3
    assert res.kept.height + res.dropped.height == fr.height
    assert set(res.dropped["drop_reason"]) == {"export: cannot write as alpaca"}
    assert all("history" in d for d in res.dropped["drop_detail"].to_list())
    tools = load([_jsonl(tmp_path / "sg.jsonl", [SG_TOOLS])]).frame
    res = run(tools, ExportConfig(format="alpaca"))
    assert res.kept.height == 0 and "tool" in res.dropped["drop_detail"][0]


def test_export_holds_out_the_rows_augment_leaves_alone(tmp_path):
    import curate.export as export_mod
    from curate.augment.common import eval_mask, is_eval
    from curate.pipeline import fastexport

    n = 8
    fr = to_frame(Record("sft", question=f"q{i}", answer=f"a{i}").as_row() for i in range(n))
    splits = ["train", "eval", "test", "validation", "DEV", None, None, "train"]
    metas = ["{}"] * 5 + ['{"split": "test"}', "{}", '{"split": "test"}']
    fr = fr.with_columns(pl.Series("split", splits), pl.Series("meta", metas))
    held = [is_eval(r) for r in fr.to_dicts()]
    assert held == [False, True, True, True, True, True, False, False]
    assert eval_mask(fr).to_list() == held
    res = run(fr, ExportConfig(format="trl", output=str(tmp_path / "a" / "t.jsonl")))
    assert res.stats["eval_rows"] == 5 and res.stats["rows"] == 3
    got = [m["messages"][0]["content"] for m in _read(tmp_path / "a" / "t.eval.jsonl")]
    assert got == [f"q{i}" for i in range(n) if held[i]]
    memo = fastexport.run(
        export_mod, fr, ExportConfig(format="trl", output=str(tmp_path / "b" / "t.jsonl")), tmp_path / "m"
    )
    assert memo.stats["eval_rows"] == 5
    assert _read(tmp_path / "b" / "t.eval.jsonl") == _read(tmp_path / "a" / "t.eval.jsonl")


def test_export_memo_is_keyed_by_the_converter_code_and_the_meta(tmp_path, monkeypatch):
    import curate.export as export_mod
    from curate.pipeline import fastexport, stages

    cfg = ExportConfig(format="sharegpt")
    before = fastexport.memo_dir_for(tmp_path, cfg)
    stages.code_fingerprint(fastexport.CONVERTER_CODE)
    monkeypatch.setitem(stages._CODE_FP, "curate.io.formats", "edited")
    assert fastexport.memo_dir_for(tmp_path, cfg) != before
    monkeypatch.undo()
    # tools live in meta: a change there is converted again even without keep_meta
    fr = load([_jsonl(tmp_path / "sg.jsonl", [SG_TOOLS])]).frame
    out = tmp_path / "o.jsonl"
    cfg = ExportConfig(format="sharegpt", output=str(out))
    fastexport.run(export_mod, fr, cfg, tmp_path / "m")
    fr2 = fr.with_columns(pl.lit(json.dumps({"tools": "[]"})).alias("meta"))
    res = fastexport.run(export_mod, fr2, cfg, tmp_path / "m")
    assert res.stats["converted"] == 1 and _read(out)[0]["tools"] == "[]"


def test_summaries_print_paths_with_brackets(tmp_path):
    d = tmp_path / "a["
    d.mkdir()
    src = _jsonl(d / "b].jsonl", [{"question": "q", "answer": "a"}])  # ".../a[/b].jsonl": a closing tag
    r = CliRunner().invoke(main, ["stats", str(src)])
    assert r.exit_code == 0, r.output
    assert "b].jsonl" in r.output
    (tmp_path / "[bold]").mkdir()
    out = tmp_path / "[bold]" / "o.jsonl"
    r = CliRunner(env={"COLUMNS": "400"}).invoke(main, ["export", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert str(out) in r.output  # not eaten as a style tag


def test_impossible_kind_format_pairing_is_refused_before_writing(tmp_path):
    """Issue 15 item 9: a KTO set exported --format openai wrote an empty file and exited 0."""
    from click.testing import CliRunner

    from curate.cli import main
    from curate.export import CONVERTER, KINDS, formats_for

    kto = tmp_path / "kto.jsonl"
    kto.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
                    "label": i % 2 == 0,
                }
            )
            + "\n"
            for i in range(4)
        )
    )
    out = tmp_path / "out.jsonl"
    for extra in ([], ["--kind", "kto"]):
        r = CliRunner().invoke(main, ["export", str(kto), "-o", str(out), "--format", "openai", *extra])
        assert r.exit_code == 2, r.output
        assert "openai cannot hold kto rows" in r.output and "trl, alpaca, sharegpt, llamafactory" in r.output
        assert sorted(p.name for p in tmp_path.iterdir()) == ["kto.jsonl"]  # nothing written
    # --help lists every pairing the converter table supports
    help_text = CliRunner().invoke(main, ["export", "--help"]).output
    for kind in KINDS:
        assert f"{kind:<11} {', '.join(formats_for(kind))}" in help_text
    assert len(CONVERTER) == sum(len(formats_for(k)) for k in KINDS)
