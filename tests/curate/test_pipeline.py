"""Recipes, the stage cache and manifests (curate run / init / runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from pipeline_helpers import make_rows, near_copy, write_jsonl

from curate.pipeline import stages as registry
from curate.pipeline.recipe import RecipeError, load_recipe, parse_recipe, starter
from curate.pipeline.run import run_recipe

ROOT = Path(__file__).resolve().parents[2]


def _recipe(tmp: Path, body: str, name: str = "recipe.yaml") -> Path:
    p = tmp / name
    p.write_text(body, encoding="utf-8")
    return p


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    rows = make_rows(120)
    rows += [dict(rows[5]), dict(rows[17]), near_copy(rows[30]), near_copy(rows[31])]
    write_jsonl(tmp_path / "raw.jsonl", rows, bad_lines=2)
    return tmp_path


RECIPE = """\
name: demo
inputs: [raw.jsonl]
stages:
  - dedup: {methods: [exact]}
  - dedup: {methods: [minhash], threshold: 0.7}
outputs:
  data: out/demo.jsonl
"""


# ---------------------------------------------------------------------------------------------- recipe


def test_recipe_resolves_paths_against_its_directory(data_dir: Path, tmp_path: Path):
    r = load_recipe(_recipe(data_dir, RECIPE))
    assert r.name == "demo"
    assert r.inputs[0].path == data_dir / "raw.jsonl"
    assert [s.id for s in r.steps] == ["ingest", "dedup", "dedup-2"]
    assert r.outputs["data"] == data_dir / "out" / "demo.jsonl"
    assert r.work_dir == data_dir / ".tamis" / "demo"
    assert r.state_dir == r.work_dir / "state"


@pytest.mark.parametrize(
    "body, expect",
    [
        (
            "inputs: [a.jsonl]\nstages:\n  - dedupe\n",
            r"recipe.yaml:3: stages\[0\]: unknown stage 'dedupe' \(did you mean 'dedup'\?\)",
        ),
        (
            "inputs: [a.jsonl]\nstagse: []\n",
            r"recipe.yaml:2: stagse: unknown key \(did you mean 'stages'\?\)",
        ),
        ("stages: []\n", r"no `inputs:`"),
        (
            "inputs: [a.jsonl]\nstages:\n  - filter\n  - ingest\n",
            r"recipe.yaml:4: stages\[1\]: ingest .* only be the first",
        ),
        (
            "inputs: [a.jsonl]\nstages:\n  - export\n  - dedup\n",
            r"recipe.yaml:4: .*only other exports may follow",
        ),
        ("inputs: [a.jsonl]\noutputs:\n  data: a.jsonl\n", r"recipe.yaml:3: outputs.data: .* is an input"),
        (
            "inputs: [a.jsonl]\nstages:\n  - dedup: 3\n",
            r"recipe.yaml:3: stages\[0\].dedup: the options of a stage are a mapping",
        ),
        ("inputs: [a.jsonl\n", r"recipe.yaml:2: invalid YAML"),
        (
            "inputs:\n  - path: a.jsonl\n    fromat: qa\n",
            r"recipe.yaml:3: inputs\[0\].fromat: unknown key \(did you mean 'format'\?\)",
        ),
    ],
)
def test_recipe_errors_name_line_and_key(tmp_path: Path, body: str, expect: str):
    with pytest.raises(RecipeError, match=expect):
        load_recipe(_recipe(tmp_path, body))


def test_stage_option_errors_point_at_the_recipe(data_dir: Path):
    p = _recipe(data_dir, "inputs: [raw.jsonl]\nstages:\n  - dedup:\n      treshold: 0.9\n")
    with pytest.raises(
        RecipeError,
        match=r"recipe.yaml:4: stages\[0\].dedup.treshold: unknown option \(did you mean 'threshold'\?\)",
    ):
        run_recipe(load_recipe(p), quiet=True)
    p = _recipe(data_dir, "inputs: [raw.jsonl]\nstages:\n  - dedup: {threshold: 7}\n")
    # the Config's own check names the key at its place (issue 14), not the `--threshold` flag
    with pytest.raises(RecipeError, match=r"recipe.yaml:3: stages\[0\].dedup.threshold: must be in \(0, 1\]"):
        run_recipe(load_recipe(p), quiet=True)


def test_missing_input_is_reported_before_anything_runs(tmp_path: Path):
    p = _recipe(tmp_path, "inputs: [nope.jsonl]\nstages: [dedup]\n")
    with pytest.raises(RecipeError, match="input nope.jsonl not found"):
        run_recipe(load_recipe(p), quiet=True)
    assert not (tmp_path / ".tamis").exists() or not any((tmp_path / ".tamis").rglob("kept.parquet"))


def test_unavailable_stage_is_a_clear_error_not_a_fake_result(data_dir: Path, monkeypatch):
    spec = registry.REGISTRY["pairs"]
    monkeypatch.setitem(
        registry.REGISTRY,
        "pairs",
        registry.StageSpec(**{**spec.__dict__, "module": "curate._no_such_module"}),
    )
    p = _recipe(data_dir, "inputs: [raw.jsonl]\nstages:\n  - dedup\n  - pairs\n")
    with pytest.raises(
        RecipeError, match=r"recipe.yaml:4: stages\[1\].pairs: stage 'pairs' is not available"
    ):
        run_recipe(load_recipe(p), quiet=True)
    assert not any((data_dir / ".tamis").rglob("kept.parquet"))  # nothing ran


def test_starter_recipe_parses_and_names_every_stage():
    text = starter("ops", "data.jsonl", "recipe.yaml")
    r = parse_recipe(text, Path("/tmp/x/recipe.yaml"))
    assert [s.name for s in r.steps][:3] == ["ingest", "dedup", "filter"]
    for stage in ("dedup", "decontaminate", "filter", "score", "select", "export"):
        assert stage in text


def test_overrides_change_one_stage(data_dir: Path):
    r = load_recipe(_recipe(data_dir, RECIPE), overrides={"dedup-2.threshold": 0.9})
    assert r.steps[2].options["threshold"] == 0.9
    with pytest.raises(RecipeError, match="no stage 'dedupp'"):
        load_recipe(_recipe(data_dir, RECIPE), overrides={"dedupp.threshold": 0.9})


def test_set_ingest_options_apply_to_inputs_and_are_checked(tmp_path: Path):
    (tmp_path / "qa.csv").write_text("问题,回答,备注\nq1 about pods,a1 check logs,n1\n", encoding="utf-8")
    body = "name: s\ninputs: [qa.csv]\nstages: [dedup]\n"
    r = load_recipe(
        _recipe(tmp_path, body),
        overrides={"ingest.map.question": "问题", "ingest.map.answer": "备注", "ingest.format": "qa"},
    )
    assert r.inputs[0].mapping == {"question": ["问题"], "answer": ["备注"]} and r.inputs[0].format == "qa"
    res = run_recipe(r, quiet=True)
    assert pl.read_ndjson(res.manifest["outputs"]["data"]["path"])["answer"].to_list() == ["n1"]
    # an input's own setting wins over the ingest option, as in the recipe file
    body2 = "name: s\ninputs:\n  - {path: qa.csv, format: qa, map: {question: 问题, answer: 回答}}\n"
    r = load_recipe(_recipe(tmp_path, body2), overrides={"ingest.map.answer": "备注"})
    assert r.inputs[0].mapping == {"question": ["问题"], "answer": ["回答"]}
    with pytest.raises(RecipeError, match="ingest.fromat: unknown ingest option .did you mean 'format'"):
        load_recipe(_recipe(tmp_path, body), overrides={"ingest.fromat": "qa"})


def test_moving_the_export_output_writes_the_new_file(data_dir: Path):
    pytest.importorskip("curate.export")
    body = RECIPE.replace("outputs:", "  - export: {format: trl, output: %s}\noutputs:")
    run_recipe(load_recipe(_recipe(data_dir, body % "out/a.trl.jsonl")), quiet=True)
    assert (data_dir / "out" / "a.trl.jsonl").is_file()
    res = run_recipe(load_recipe(_recipe(data_dir, body % "out/b.trl.jsonl")), quiet=True)
    assert (data_dir / "out" / "b.trl.jsonl").is_file()
    assert (data_dir / "out" / "b.trl.jsonl").read_bytes() == (data_dir / "out" / "a.trl.jsonl").read_bytes()
    assert [s["cached"] for s in res.manifest["stages"]] == [True, True, True, False]


# ---------------------------------------------------------------------------------------------- run


def test_run_accounts_for_every_row_and_writes_a_manifest(data_dir: Path):
    res = run_recipe(load_recipe(_recipe(data_dir, RECIPE)), quiet=True)
    m = res.manifest
    assert res.exit_code == 1  # two broken input lines were rejected
    assert m["status"] == "ok"
    rows = m["rows"]
    assert rows["input"] == 126 and rows["rejected"] == 2
    assert rows["input"] == rows["output"] + rows["dropped"] + rows["rejected"] - rows["added"]
    st = {s["id"]: s for s in m["stages"]}
    assert st["dedup"]["dropped_by_reason"] == {"exact duplicate": 2}
    assert st["dedup-2"]["dropped"] == 2 and "near duplicate" in st["dedup-2"]["dropped_by_reason"]
    for s in m["stages"]:
        assert s["in"] + s["added"] == s["kept"] + s["dropped"] + s.get("rejected", 0)
    # inputs with hashes, versions, resolved config, timings
    assert m["inputs"][0]["path"] == "raw.jsonl" and len(m["inputs"][0]["sha256"]) == 64
    assert m["inputs"][0]["rows"] == 126
    assert m["versions"]["packages"]["polars"] == pl.__version__
    assert m["config"]["stages"][1]["options"] == {"methods": ["exact"]}
    assert all(s["compute_seconds"] is not None for s in m["stages"])
    # outputs: kept rows, every dropped row with stage and reason, rejects with line numbers
    out = data_dir / "out"
    kept = pl.read_ndjson(out / "demo.jsonl")
    dropped = pl.read_ndjson(out / "demo.dropped.jsonl")
    rejects = pl.read_ndjson(out / "demo.rejects.jsonl")
    assert kept.height == rows["output"] == 120
    assert sorted(dropped["drop_stage"].unique().to_list()) == ["dedup", "dedup-2"]
    assert rejects.height == 2 and rejects["line"].to_list() == [125, 126]
    assert set(kept["id"]) | set(dropped["id"]) == {r for r in set(kept["id"]) | set(dropped["id"])}
    assert kept["id"].n_unique() == kept.height
    # source files are named relative to the recipe, whatever the working directory
    assert kept["source"].struct.field("file").unique().to_list() == ["raw.jsonl"]
    assert res.manifest_path.is_file() and json.loads(res.manifest_path.read_text())["run_id"] == m["run_id"]


def test_unchanged_rerun_recomputes_nothing_and_rewrites_nothing(data_dir: Path):
    r = load_recipe(_recipe(data_dir, RECIPE))
    first = run_recipe(r, quiet=True)
    out = data_dir / "out" / "demo.jsonl"
    stamp = out.stat().st_mtime_ns
    second = run_recipe(load_recipe(_recipe(data_dir, RECIPE)), quiet=True)
    assert [s["cached"] for s in second.manifest["stages"]] == [True, True, True]
    assert second.manifest["cache"] == {**second.manifest["cache"], "hits": 3, "misses": 0}
    assert out.stat().st_mtime_ns == stamp  # the output was already right
    assert second.manifest["rows"] == first.manifest["rows"]
    # a deleted output is rewritten from the cache, still without recomputing
    out.unlink()
    third = run_recipe(r, quiet=True)
    assert all(s["cached"] for s in third.manifest["stages"])
    assert pl.read_ndjson(out).height == first.manifest["rows"]["output"]


def test_changing_one_stage_reruns_from_that_stage_on(data_dir: Path):
    run_recipe(load_recipe(_recipe(data_dir, RECIPE)), quiet=True)
    changed = RECIPE.replace("threshold: 0.7", "threshold: 0.95")
    res = run_recipe(load_recipe(_recipe(data_dir, changed)), quiet=True)
    assert [s["cached"] for s in res.manifest["stages"]] == [True, True, False]
    changed2 = changed.replace("methods: [exact]}", "methods: [exact], keep: longest}")
    res = run_recipe(load_recipe(_recipe(data_dir, changed2)), quiet=True)
    assert [s["cached"] for s in res.manifest["stages"]] == [True, False, False]
    # an edited input invalidates everything
    with open(data_dir / "raw.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(make_rows(1, start=500)[0], ensure_ascii=False) + "\n")
    res = run_recipe(load_recipe(_recipe(data_dir, changed2)), quiet=True)
    assert [s["cached"] for s in res.manifest["stages"]] == [False, False, False]
    assert res.manifest["rows"]["input"] == 127
    # --rerun / --force
    res = run_recipe(load_recipe(_recipe(data_dir, changed2)), quiet=True, rerun=("dedup-2",))
    assert [s["cached"] for s in res.manifest["stages"]] == [True, True, False]
    res = run_recipe(load_recipe(_recipe(data_dir, changed2)), quiet=True, force=True)
    assert not any(s["cached"] for s in res.manifest["stages"])


def test_cached_result_equals_fresh_result(data_dir: Path):
    r = load_recipe(_recipe(data_dir, RECIPE))
    a = run_recipe(r, quiet=True)
    fresh = pl.read_ndjson(data_dir / "out" / "demo.jsonl")
    b = run_recipe(r, quiet=True, force=True)
    assert pl.read_ndjson(data_dir / "out" / "demo.jsonl").equals(fresh)
    assert [s["key"] for s in a.manifest["stages"]] == [s["key"] for s in b.manifest["stages"]]


def test_a_half_written_cache_entry_is_never_trusted(data_dir: Path):
    r = load_recipe(_recipe(data_dir, RECIPE))
    res = run_recipe(r, quiet=True)
    entry = Path(res.manifest["stages"][2]["cache_entry"])
    (entry / "stats.json").unlink()  # as if killed before the entry was complete
    again = run_recipe(r, quiet=True)
    assert [s["cached"] for s in again.manifest["stages"]] == [True, True, False]


def test_failed_stage_writes_a_failed_manifest(data_dir: Path, monkeypatch):
    spec = registry.REGISTRY["dedup"]

    def broken(mod, frame, config, ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(registry.REGISTRY, "dedup", registry.StageSpec(**{**spec.__dict__, "call": broken}))
    from curate.pipeline.run import PipelineError, list_runs

    r = load_recipe(_recipe(data_dir, RECIPE))
    # a plain exception in a stage is a bug (issue 14): it propagates with a note naming the stage
    with pytest.raises(RuntimeError, match="disk on fire") as err:
        run_recipe(r, quiet=True)
    assert not isinstance(err.value, PipelineError)
    assert sys.version_info < (3, 11) or "stage dedup" in " ".join(err.value.__notes__)
    runs = list_runs(r.work_dir)
    assert runs[-1]["status"] == "failed" and "disk on fire" in runs[-1]["error"]


# ---------------------------------------------------------------------------------------------- CLI


def _curate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "curate.cli", *args]
        if False
        else [sys.executable, "-c", "from curate.cli import main; main()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_run_runs_and_init(data_dir: Path):
    _recipe(data_dir, RECIPE)
    p = _curate("run", "recipe.yaml", "--json", cwd=data_dir)
    assert p.returncode == 1, p.stderr  # rejects
    s = json.loads(p.stdout.strip().splitlines()[-1])
    assert s["rows"]["output"] == 120 and s["cache"]["hits"] == 0 and s["exit_code"] == 1
    p = _curate("run", "recipe.yaml", "--json", "--set", "dedup-2.threshold=0.9", cwd=data_dir)
    s = json.loads(p.stdout)
    assert s["stages"]["dedup"]["cached"] and not s["stages"]["dedup-2"]["cached"]
    p = _curate("run", "recipe.yaml", "--json", "--report", "rep.html", cwd=data_dir)
    s = json.loads(p.stdout)
    assert s["outputs"]["report"]["rewritten"] and (data_dir / "rep.html").stat().st_size > 10_000
    p = _curate("run", "recipe.yaml", "--json", "--report", "rep.html", cwd=data_dir)
    s = json.loads(p.stdout)
    assert all(st["cached"] for st in s["stages"].values()) and not s["outputs"]["report"]["rewritten"]
    p = _curate("runs", "recipe.yaml", "--json", cwd=data_dir)
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(lines) == 4 and all(x["status"] == "ok" for x in lines)
    p = _curate("runs", "recipe.yaml", cwd=data_dir)
    assert p.returncode == 0 and "runs in" in p.stdout
    # init writes a starter that refuses to overwrite
    p = _curate("init", "new.yaml", "--input", "raw.jsonl", cwd=data_dir)
    assert p.returncode == 0 and (data_dir / "new.yaml").is_file()
    assert _curate("init", "new.yaml", cwd=data_dir).returncode == 2
    # a bad recipe exits 2 with the line
    _recipe(data_dir, "inputs: [raw.jsonl]\nstages: [dedupe]\n", "bad.yaml")
    p = _curate("run", "bad.yaml", cwd=data_dir)
    assert p.returncode == 2 and "bad.yaml:2" in p.stderr and "did you mean 'dedup'" in p.stderr


# ---------------------------------------------------------------------------------------------- export


@pytest.mark.parametrize("fmt, ext", [("trl", "jsonl"), ("alpaca", "json"), ("llamafactory", "json")])
def test_memoised_export_equals_the_export_stage(tmp_path: Path, fmt: str, ext: str):
    export = pytest.importorskip("curate.export")
    from curate.io import load
    from curate.pipeline import fastexport

    rows = make_rows(40, seed=7)
    write_jsonl(tmp_path / "a.jsonl", rows)
    frame = load([tmp_path / "a.jsonl"]).frame
    pref = load([ROOT / "tests" / "fixtures" / "trl_pref.jsonl"]).frame
    frame = pl.concat([frame, pref], how="diagonal_relaxed")  # another kind: dropped with a reason
    frame = frame.with_columns(
        pl.Series("split", ["eval" if i % 10 == 0 else "train" for i in range(frame.height)])
    )
    ref_cfg = export.ExportConfig(format=fmt, output=str(tmp_path / "ref" / f"out.{ext}"))
    memo_cfg = export.ExportConfig(format=fmt, output=str(tmp_path / "memo" / f"out.{ext}"))
    ref = export.run(frame, ref_cfg)

    def read(p: Path):
        text = p.read_text(encoding="utf-8")
        return json.loads(text) if p.suffix == ".json" else [json.loads(x) for x in text.splitlines()]

    for attempt in range(2):  # the second time every line comes from the memo
        got = fastexport.run(export, frame, memo_cfg, tmp_path / "memo-dir")
        assert got.kept.equals(ref.kept) and got.dropped.equals(ref.dropped)
        assert got.stats["converted"] == (ref.kept.height if attempt == 0 else 0)
        for key in ("output", "eval"):
            assert read(Path(got.stats["outputs"][key])) == read(Path(ref.stats["outputs"][key]))
        if fmt == "llamafactory":
            a = json.loads((tmp_path / "memo" / "dataset_info.json").read_text())
            b = json.loads((tmp_path / "ref" / "dataset_info.json").read_text())
            assert a == b
    # one new row: only it is converted
    more = pl.concat(
        [frame, load([write_jsonl(tmp_path / "b.jsonl", make_rows(1, seed=8, start=900))]).frame],
        how="diagonal_relaxed",
    )
    got = fastexport.run(export, more, memo_cfg, tmp_path / "memo-dir")
    assert got.stats["converted"] == 1 and got.stats["from_memo"] == ref.kept.height


def test_starter_recipe_runs_end_to_end(data_dir: Path):
    pytest.importorskip("curate.rules.engine")
    (data_dir / "start.yaml").write_text(starter("start", "raw.jsonl", "start.yaml"), encoding="utf-8")
    res = run_recipe(load_recipe(data_dir / "start.yaml"), quiet=True)
    assert [s["id"] for s in res.manifest["stages"]] == ["ingest", "dedup", "filter"]
    rows = res.manifest["rows"]
    assert rows["input"] == rows["output"] + rows["dropped"] + rows["rejected"]
    assert (data_dir / "out" / "start.curated.jsonl").is_file()


def test_prune_keeps_what_recent_runs_need(data_dir: Path):
    from curate.pipeline.run import list_runs, prune

    r = load_recipe(_recipe(data_dir, RECIPE))
    run_recipe(r, quiet=True)
    run_recipe(load_recipe(_recipe(data_dir, RECIPE.replace("threshold: 0.7", "threshold: 0.9"))), quiet=True)
    last = run_recipe(
        load_recipe(_recipe(data_dir, RECIPE.replace("threshold: 0.7", "threshold: 0.95"))), quiet=True
    )
    entries = list((r.work_dir / "cache").glob("*/*"))
    assert len(entries) == 5  # ingest, dedup, and three dedup-2 entries
    done = prune(r.work_dir, keep_runs=1)
    assert len(done["cache_entries"]) == 2 and done["bytes"] > 0 and len(done["runs"]) == 2
    assert [x["run_id"] for x in list_runs(r.work_dir)] == [last.manifest["run_id"]]
    again = run_recipe(
        load_recipe(_recipe(data_dir, RECIPE.replace("threshold: 0.7", "threshold: 0.95"))), quiet=True
    )
    assert all(s["cached"] for s in again.manifest["stages"])


def test_an_export_never_overwrites_an_input(data_dir: Path):
    pytest.importorskip("curate.export")
    p = _recipe(data_dir, "inputs: [raw.jsonl]\nstages:\n  - export: {format: trl, output: raw.jsonl}\n")
    before = (data_dir / "raw.jsonl").read_bytes()
    with pytest.raises(
        RecipeError, match=r"recipe.yaml:3: stages\[0\].export.output: .*raw.jsonl is an input"
    ):
        run_recipe(load_recipe(p), quiet=True)
    assert (data_dir / "raw.jsonl").read_bytes() == before
    # nor through the eval file written (or removed) beside the export
    (data_dir / "out.eval.jsonl").write_bytes(before)
    p = _recipe(
        data_dir,
        "inputs: [raw.jsonl, out.eval.jsonl]\nstages:\n  - export: {format: trl, output: out.jsonl}\n",
    )
    with pytest.raises(RecipeError, match=r"out.eval.jsonl \(the export's eval file\) is an input"):
        run_recipe(load_recipe(p), quiet=True)
    assert (data_dir / "out.eval.jsonl").read_bytes() == before


def test_shipped_sample_recipe_runs_offline(tmp_path: Path):
    """`curate run samples/recipe.yaml` (the README's first command) end to end with the embedded
    models, writing into a temporary directory instead of out/."""
    if not (ROOT / "samples" / "models" / "lm").is_dir():
        pytest.skip("samples/models has not been built in this checkout")
    r = load_recipe(
        ROOT / "samples" / "recipe.yaml", overrides={"export.output": str(tmp_path / "trl.jsonl")}
    )
    r.work_dir = tmp_path / "work"
    r.outputs = {"data": tmp_path / "curated.jsonl"}
    res = run_recipe(r, quiet=True)
    m = res.manifest
    assert [s["id"] for s in m["stages"]] == ["ingest", "dedup", "filter", "score", "select", "export"]
    # the numbers README and docs quote (814 read, 810 parsed -> 350 -> 319 -> 284): a change here is
    # a change users see, so the docs change with it
    assert m["stages"][0]["in"] == 814
    assert [s["kept"] for s in m["stages"]] == [810, 350, 319, 319, 284, 284]
    rows = m["rows"]
    assert res.exit_code == 1 and rows["rejected"] > 0  # the samples plant unreadable rows
    assert rows["input"] == rows["output"] + rows["dropped"] + rows["rejected"] - rows["added"]
    assert {x["model"].split("/")[-1] for x in m["models"]} == {"lm", "reward", "quality.ftz"}
    kept = pl.read_ndjson(tmp_path / "curated.jsonl")
    assert kept.height == rows["output"] > 0
    for col in ("ppl", "ifd", "reward", "quality"):
        assert col in kept.columns
    trl = [json.loads(x) for x in (tmp_path / "trl.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(trl) == kept.height and all("messages" in x for x in trl)
    again = run_recipe(r, quiet=True)
    assert all(s["cached"] for s in again.manifest["stages"])
