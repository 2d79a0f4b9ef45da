"""The import-linter contracts in pyproject.toml hold (CI runs `lint-imports` too; this test shows a
broken layer to whoever runs the tests)."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import curate
import curate.configs

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept(tmp_path):
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_every_curate_module_has_a_layer():
    """A new top-level module of curate is checked only once the layers contract names it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["name"].startswith("curate layers"))["layers"]
    listed = {name.strip() for layer in layers for name in layer.split(":")}
    modules = {f"curate.{m.name}" for m in pkgutil.iter_modules(curate.__path__)} - {"curate.configs"}
    modules |= {f"curate.configs.{m.name}" for m in pkgutil.iter_modules(curate.configs.__path__)}
    assert sorted(modules - listed) == []
