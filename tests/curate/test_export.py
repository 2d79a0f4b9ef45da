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
                out = tmp_path / f"{fmt}_{kind}{ext}"
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
