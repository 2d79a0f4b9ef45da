"""Shared fixtures: tiny offline models (built once per session) and one tiny dataset per format."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_demo_warning_printed_yet():
    """The demo-model warning prints once per process (``curate.score.demo._WARNED``), so a test that
    expects it failed whenever an earlier test in the same run had scored with a demo model: every
    test starts with none printed (the module is not imported for tests that never load it)."""
    demo = sys.modules.get("curate.score.demo")
    if demo is not None:
        demo._WARNED.clear()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """{"tokenizer", "lm", "reward"}: directories loadable with from_pretrained, no network."""
    from curate.tiny_models import build_causal_lm, build_reward_model, build_tokenizer, default_corpus

    base = tmp_path_factory.mktemp("tiny_models")
    tok_dir, lm_dir, rm_dir = base / "tokenizer", base / "lm", base / "reward"
    build_tokenizer(default_corpus(), tok_dir)
    build_causal_lm(tok_dir, lm_dir)
    build_reward_model(tok_dir, rm_dir)
    return {"tokenizer": tok_dir, "lm": lm_dir, "reward": rm_dir}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA


FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_datasets() -> dict[str, Path]:
    """One tiny file per input format: alpaca, sharegpt, openai, llamafactory_pref, trl_pref,
    trl_prompt_completion, kto, hh_rlhf, text, qa_gbk_csv."""
    out = {}
    for p in sorted(FIXTURES.iterdir()):
        key = p.name.split(".")[0] + ("_gbk_csv" if p.name.endswith(".gbk.csv") else "")
        out[key] = p
    return out
