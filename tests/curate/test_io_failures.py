"""I/O failures name their file; a read-only score cache still serves the rows it holds (#17 item 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.ioerrors import named

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "ops_qa.jsonl"

# a file-size limit makes every write past 20 kB fail as a full disk does, with no file name
LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
from curate.cli import main
sys.argv = ["curate"] + sys.argv[1:]
main()
"""


@pytest.mark.parametrize("ext", ["jsonl", "parquet", "csv", "xlsx"])
def test_a_full_disk_names_the_file(tmp_path, ext):
    out = tmp_path / f"out.{ext}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-c", LIMITED, "ingest", str(SAMPLES), "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr[-1500:]
    assert f"error: {out}: " in p.stderr and "File too large" in p.stderr
    assert "internal error" not in p.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_named_leaves_other_errors_alone():
    assert named(ValueError("bad value"), "x") is None
    assert named(OSError(2, "No such file", "y"), "x") is None  # already names its file
    e = named(OSError("No space left on device (os error 28)"), "/d/f.jsonl")
    assert e.filename == "/d/f.jsonl" and e.errno == 28 and e.strerror == "No space left on device"
    e = named(RuntimeError("IOError: 11445 requested and 9184 written"), "/d/f.parquet")
    assert e.filename == "/d/f.parquet" and "11445 requested and 9184 written" in e.strerror
    assert named(KeyboardInterrupt(), "x") is None


def _rows(path: Path, n: int) -> Path:
    rows = [json.loads(x) for x in SAMPLES.read_text(encoding="utf-8").splitlines()[:n]]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _score(inp: Path, out: Path, cache: Path):
    args = ["score", str(inp), "-o", str(out), "--scorers", "quality", "--cache", str(cache), "--json"]
    return CliRunner().invoke(main, args)


def test_read_only_score_cache_serves_fully_cached_rows(tmp_path, monkeypatch):
    inp = _rows(tmp_path / "in.jsonl", 12)
    cdir = tmp_path / "cache"
    cdir.mkdir()
    cache = cdir / "scores.sqlite"
    first = _score(inp, tmp_path / "a.jsonl", cache)
    assert first.exit_code == 0, first.output
    os.chmod(cache, 0o444)
    os.chmod(cdir, 0o555)
    if os.geteuid() == 0:  # root ignores file modes: make the cache look read-only as it would to a user
        import curate.core.sqlitefile as cache_mod  # opens the cache files

        real = os.access
        monkeypatch.setattr(
            cache_mod.os,
            "access",
            lambda p, m, **k: False if Path(p) in (cache, cdir) and m & os.W_OK else real(p, m, **k),
        )
    try:
        again = _score(inp, tmp_path / "b.jsonl", cache)
        assert again.exit_code == 0, again.output
        assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
        # a row it does not hold: the error names the cache and says why
        more = _rows(tmp_path / "more.jsonl", 14)
        r = _score(more, tmp_path / "c.jsonl", cache)
        assert r.exit_code == 2 and str(cache) in r.output and "read-only" in r.output, r.output
    finally:
        os.chmod(cdir, 0o755)
        os.chmod(cache, 0o644)


def test_corrupt_score_cache_names_the_file(tmp_path):
    inp = _rows(tmp_path / "in.jsonl", 5)
    cache = tmp_path / "scores.sqlite"
    cache.write_bytes(b"this is not a database" * 200)
    r = _score(inp, tmp_path / "a.jsonl", cache)
    assert r.exit_code == 2, r.output
    assert f"{cache}: not a usable cache" in r.output and "internal error" not in r.output


def test_corrupt_scores_sqlite_inside_a_refresh_names_the_file(tmp_path):
    _rows(tmp_path / "in.jsonl", 6)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: r\ninputs: [in.jsonl]\nstages:\n  - score: {scorers: [quality]}\n"
        "outputs:\n  data: out/data.jsonl\nwork_dir: work\n",
        encoding="utf-8",
    )
    (tmp_path / "work").mkdir()
    bad = tmp_path / "work" / "scores.sqlite"
    bad.write_bytes(b"garbage" * 500)
    r = CliRunner().invoke(main, ["refresh", str(recipe), "--json"])
    assert r.exit_code == 2, r.output
    assert str(bad) in r.output and "not a usable cache" in r.output
