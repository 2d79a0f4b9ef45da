"""Files a recipe may destroy (#17 item 4): only its own earlier outputs, with the extension of their role,
all checked before any stage runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.pipeline.recipe import RecipeError, load_recipe
from curate.pipeline.run import run_recipe

ROWS = [
    {"question": f"How do I restart service {i}?", "answer": f"Run systemctl restart svc{i}."}
    for i in range(8)
]


def _world(tmp_path: Path, outputs: str, stages: str = "  - dedup: {methods: [exact]}\n") -> Path:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: guard\ninputs: [in.jsonl]\nstages:\n{stages}outputs:\n{outputs}", encoding="utf-8"
    )
    return recipe


@pytest.mark.parametrize(
    "outputs,victim",
    [
        ("  data: out/data.jsonl\n  report: ../victim.sh\n", "victim.sh"),
        ("  data: out/data.jsonl\n  manifest: ../x.py\n", "x.py"),
        ("  data: ../notes.txt\n", "notes.txt"),
    ],
)
def test_wrong_extension_refused_before_anything_runs(tmp_path, outputs, victim):
    work = tmp_path / "w"
    work.mkdir()
    target = tmp_path / victim
    target.write_text("#!/bin/sh\necho precious\n")
    recipe = _world(work, outputs)
    r = CliRunner().invoke(main, ["run", str(recipe)])
    assert r.exit_code == 2, r.output
    assert "must end in" in r.output and "nothing was run" in r.output
    assert target.read_text() == "#!/bin/sh\necho precious\n"
    assert not (work / ".tamis" / "guard" / "runs").exists()  # no stage ran


def test_bad_export_extension_found_before_the_stages(tmp_path):
    recipe = _world(
        tmp_path,
        "  data: out/data.jsonl\n",
        stages="  - dedup: {methods: [exact]}\n  - export: {output: out/train.csv, format: trl}\n",
    )
    t0 = time.perf_counter()
    with pytest.raises(RecipeError, match=r"export.output .*train.csv.*\.jsonl or \.json"):
        run_recipe(load_recipe(recipe), quiet=True)
    assert time.perf_counter() - t0 < 5
    assert not (tmp_path / ".tamis" / "guard" / "runs").exists()


def test_existing_file_not_written_by_the_recipe_is_refused(tmp_path):
    victim = tmp_path / "report.html"
    victim.write_text("<p>someone else's page</p>")
    recipe = _world(tmp_path, "  data: out/data.jsonl\n  report: report.html\n")
    r = CliRunner().invoke(main, ["run", str(recipe)])
    assert r.exit_code == 2 and "did not write it" in r.output, r.output
    assert victim.read_text() == "<p>someone else's page</p>"
    victim.unlink()
    # once the recipe wrote it, re-runs replace it freely (the record is in the work dir)
    assert CliRunner().invoke(main, ["run", str(recipe)]).exit_code == 0
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in ROWS[:5]), encoding="utf-8"
    )  # a changed input: every output is rewritten
    assert CliRunner().invoke(main, ["run", str(recipe)]).exit_code == 0
    written = json.loads((tmp_path / ".tamis" / "guard" / "written.json").read_text())["files"]
    assert "../../out/data.jsonl" in written  # relative to the work dir: moving the project keeps it


def test_refresh_checks_outputs_too(tmp_path):
    (tmp_path / "out").mkdir()
    victim = tmp_path / "out" / "data.jsonl"
    victim.write_text('{"mine": true}\n')
    recipe = _world(tmp_path, "  data: out/data.jsonl\n")
    r = CliRunner().invoke(main, ["refresh", str(recipe), "--json"])
    assert r.exit_code == 2 and "did not write it" in r.output
    assert victim.read_text() == '{"mine": true}\n'
    victim.unlink()
    assert CliRunner().invoke(main, ["refresh", str(recipe)]).exit_code == 0
    (tmp_path / "more.jsonl").write_text(json.dumps({"question": "New?", "answer": "Yes."}) + "\n")
    assert CliRunner().invoke(main, ["refresh", str(recipe), str(tmp_path / "more.jsonl")]).exit_code == 0
