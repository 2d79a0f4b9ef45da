"""What every command shares when it writes: side files (dropped, rejects) always describe the output
beside them, never replace an input, and outputs get ordinary permissions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.core.errors import TamisError
from curate.io import atomic_write_text


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def summary_of(res):
    return json.loads(res.stdout.strip().splitlines()[-1])


def rows(*rewards, bad_line=False):
    lines = [
        json.dumps({"question": f"q{i}?", "answer": f"a{i}", "reward": r}) for i, r in enumerate(rewards)
    ]
    if bad_line:
        lines.append("not json")
    return "\n".join(lines) + "\n"


def test_stale_side_files_of_an_earlier_run_are_removed(tmp_path):
    src = tmp_path / "a.jsonl"
    out = tmp_path / "out.jsonl"
    dropped, rejects = tmp_path / "out.dropped.jsonl", tmp_path / "out.rejects.jsonl"
    # files that are not side files of this output are never touched
    others = [tmp_path / "other.dropped.jsonl", tmp_path / "out.clusters.jsonl", tmp_path / "a.rejects.jsonl"]
    for p in others:
        p.write_text("keep me\n")

    src.write_text(rows(0.1, 0.9, 0.8, bad_line=True))
    res = run(["select", src, "-o", out, "--where", "reward >= 0.5", "--json"])
    assert res.exit_code == 1, res.output
    s = summary_of(res)
    assert s["dropped"] == 1 and s["rejected"] == 1
    assert s["outputs"] == {"output": str(out), "dropped": str(dropped), "rejects": str(rejects)}
    assert dropped.exists() and rejects.exists() and "removed_stale" not in s

    # the input fixed, every row passes: the earlier dropped rows and rejects no longer describe out
    src.write_text(rows(0.6, 0.9, 0.8))
    res = run(["select", src, "-o", out, "--where", "reward >= 0.5", "--json"])
    assert res.exit_code == 0, res.output
    s = summary_of(res)
    assert s["kept"] == 3 and s["dropped"] == 0 and s["rejected"] == 0
    assert s["outputs"] == {"output": str(out)}
    assert s["removed_stale"] == [str(dropped), str(rejects)]
    assert not dropped.exists() and not rejects.exists()
    assert all(p.read_text() == "keep me\n" for p in others)

    # a command that drops nothing (ingest) also clears what an earlier command left for the same -o
    dropped.write_text("stale\n")
    res = run(["ingest", src, "-o", out, "--json"])
    assert res.exit_code == 0 and not dropped.exists()
    assert summary_of(res)["removed_stale"] == [str(dropped)]


@pytest.mark.parametrize("kind", ["rejects", "dropped"])
def test_a_side_file_never_replaces_an_input(tmp_path, kind):
    # the input is exactly the side file the output would have
    src = tmp_path / f"out.{kind}.jsonl"
    src.write_text(rows(0.1, 0.9, bad_line=True))
    before = src.read_bytes()
    out = tmp_path / "out.jsonl"
    res = run(["select", src, "-o", out, "--where", "reward >= 0.5"])
    assert res.exit_code == 2, res.output
    assert "refusing to overwrite the input" in res.output and kind in res.output
    assert src.read_bytes() == before and not out.exists()
    # the same with another input first (the default output is named after the first input)
    first = tmp_path / "first.jsonl"
    first.write_text(rows(0.7))
    res = run(["ingest", first, src, "-o", out])
    assert res.exit_code == 2 and src.read_bytes() == before and not out.exists()


def test_finish_checks_side_files_even_without_resolve_output(tmp_path):
    """export writes its own file, then finish() writes dropped rows beside it: an input named like
    that side file is refused before anything is written."""
    from curate.commands.common import check_side_files

    src = tmp_path / "train.dropped.jsonl"
    src.write_text("{}\n")
    with pytest.raises(TamisError) as exc:  # raised, not exited (issue 14): the CLI's handler prints it
        check_side_files([src], tmp_path / "train.json")
    assert exc.value.exit_code == 2
    check_side_files([src], tmp_path / "other.json")  # no clash: returns


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_respect_the_umask(tmp_path, umask):
    src = tmp_path / "a.jsonl"
    src.write_text(rows(0.1, 0.9, bad_line=True))
    out = tmp_path / "out.parquet"
    old = os.umask(umask)
    try:
        res = run(["select", src, "-o", out, "--where", "reward >= 0.5"])
        atomic_write_text(tmp_path / "note.txt", "hello")
    finally:
        os.umask(old)
    assert res.exit_code == 1, res.output
    want = 0o666 & ~umask
    for p in (out, tmp_path / "out.dropped.jsonl", tmp_path / "out.rejects.jsonl", tmp_path / "note.txt"):
        assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))
    assert not [p for p in Path(tmp_path).iterdir() if p.name.endswith(".tmp")]
