"""A recipe's `inputs:` and `curate refresh` read what `curate <stage>` reads (files, Parquet shard
folders, save_to_disk folders, a LLaMA-Factory dataset_info.json) through the io layer's one expansion,
and honour the rejected-rows threshold under the command's name (`max_rejected:` / `--max-rejected`)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from curate.cli import main
from curate.io import read_frame
from tests.curate.pipeline_helpers import make_rows, write_jsonl


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_shard(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_parquet(path)
    return path


def recipe_file(tmp: Path, inputs: str, extra: str = "") -> Path:
    r = tmp / "recipe.yaml"
    r.write_text(
        f"name: t\ninputs:\n  - {inputs}\nstages:\n  - filter\noutputs:\n  data: out/t.jsonl\n{extra}",
        encoding="utf-8",
    )
    return r


def rows_of(path: Path) -> list[tuple]:
    f = read_frame(path)
    return sorted(zip(f["id"], f["question"], f["answer"], strict=True))


def ingested(tmp: Path, target: Path) -> list[tuple]:
    """The rows `curate ingest` reads from ``target``, through the same filter as the recipe."""
    res = run("ingest", target, "-o", tmp / "cli.ingest.jsonl")
    assert res.exit_code == 0, res.output
    res = run("filter", tmp / "cli.ingest.jsonl", "-o", tmp / "cli.filter.jsonl")
    assert res.exit_code == 0, res.output
    return rows_of(tmp / "cli.filter.jsonl")


def test_recipe_over_a_parquet_shard_folder_reads_what_ingest_reads(tmp_path):
    write_shard(tmp_path / "shards" / "part-0.parquet", make_rows(20))
    write_shard(tmp_path / "shards" / "part-1.parquet", make_rows(15, seed=1, start=20))
    res = run("run", recipe_file(tmp_path, "shards"), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["rows"]["input"] == 35
    assert rows_of(tmp_path / "out" / "t.jsonl") == ingested(tmp_path, tmp_path / "shards")
    sources = set(read_frame(tmp_path / "out" / "t.jsonl")["source"].struct.field("file"))
    assert sources == {"shards/part-0.parquet", "shards/part-1.parquet"}  # each row names its shard

    # the cache key covers the folder's files: unchanged -> every stage cached; a changed shard -> re-read
    again = json.loads(run("run", tmp_path / "recipe.yaml", "--json").stdout)
    assert again["cache"]["hits"] == len(again["stages"])
    write_shard(tmp_path / "shards" / "part-1.parquet", make_rows(16, seed=1, start=20))
    changed = json.loads(run("run", tmp_path / "recipe.yaml", "--json").stdout)
    assert changed["stages"]["ingest"]["cached"] is False and changed["rows"]["input"] == 36


def test_recipe_over_a_dataset_info_json_reads_what_ingest_reads(tmp_path):
    data = tmp_path / "lf"
    rows = [{"q": r["instruction"], "a": r["output"]} for r in make_rows(25)]
    write_jsonl(data / "ops.jsonl", rows)
    (data / "dataset_info.json").write_text(
        json.dumps({"ops": {"file_name": "ops.jsonl", "columns": {"prompt": "q", "response": "a"}}}),
        encoding="utf-8",
    )
    res = run("run", recipe_file(tmp_path, "lf/dataset_info.json"), "--json")
    assert res.exit_code == 0, res.output
    got = rows_of(tmp_path / "out" / "t.jsonl")
    assert len(got) > 0 and got == ingested(tmp_path, data / "dataset_info.json")


def test_unusable_inputs_name_the_recipe_line(tmp_path):
    (tmp_path / "empty").mkdir()
    res = run("run", recipe_file(tmp_path, "empty"))
    assert res.exit_code == 2
    assert "recipe.yaml:3: inputs[0]: " in res.output and "without Parquet shards" in res.output
    res = run("run", recipe_file(tmp_path, "nope.jsonl"))
    assert res.exit_code == 2 and "recipe.yaml:3: inputs[0]: input nope.jsonl not found" in res.output


def test_refresh_over_a_folder_that_gains_a_shard_reads_only_the_new_rows(tmp_path):
    write_shard(tmp_path / "shards" / "part-0.parquet", make_rows(20))
    recipe = recipe_file(tmp_path, "shards")
    first = run("refresh", recipe, "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["new_rows"] == 20
    same = json.loads(run("refresh", recipe, "--json").stdout)
    assert same["status"] == "unchanged" and same["new_rows"] == 0
    write_shard(tmp_path / "shards" / "part-1.parquet", make_rows(12, seed=1, start=20))
    grown = json.loads(run("refresh", recipe, "--json").stdout)
    assert grown["input_rows"] == 32 and grown["skipped_seen"] == 20 and grown["new_rows"] == 12
    # a folder as a refresh batch (NEW_INPUTS) too
    write_shard(tmp_path / "batch" / "part-0.parquet", make_rows(5, seed=2, start=40))
    batch = run("refresh", recipe, tmp_path / "batch", "--json")
    assert batch.exit_code == 0, batch.output
    assert json.loads(batch.stdout)["new_rows"] == 5


def test_max_rejected_is_a_recipe_key_and_a_refresh_flag(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", make_rows(30), bad_lines=2)
    strict = recipe_file(tmp_path, "d.jsonl")
    assert run("run", strict, "--json").exit_code == 1
    tolerant = recipe_file(tmp_path, "d.jsonl", "max_rejected: 2\n")
    res = run("run", tolerant, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rejected_tolerated"] is True
    assert run("run", tolerant, "--json", "--max-rejected", "1").exit_code == 1  # the flag overrides
    assert run("run", tolerant, "--json", "--max-rejected", "0.1").exit_code == 0  # 2 of 32 rows
    bad = run("run", recipe_file(tmp_path, "d.jsonl", "max_rejected: 1.5\n"))
    assert (
        bad.exit_code == 2
        and "recipe.yaml:8: max_rejected: '1.5': a row count is a whole number" in bad.output
    )

    # refresh: the same key, the same flag, the same rule
    tolerant = recipe_file(tmp_path, "d.jsonl", "max_rejected: 2\nstate: st1\n")
    res = run("refresh", tolerant, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rejected_tolerated"] is True
    strict = recipe_file(tmp_path, "d.jsonl", "state: st2\n")
    assert run("refresh", strict, "--json").exit_code == 1
    assert run("refresh", strict, "--json", "--max-rejected", "2").exit_code == 0
    assert run("refresh", strict, "--max-rejected", "lots").exit_code == 2
