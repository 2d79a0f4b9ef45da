"""Bounded alias expansion in every YAML the project reads (#17 item 6)."""

from __future__ import annotations

import time

import pytest
import yaml

from curate import yamlsafe


def _bomb(levels: int = 7, width: int = 9, top: str = "") -> str:
    """`width`**`levels` leaves from a few hundred bytes (the "billion laughs" shape)."""
    lines = [top, "l0: &l0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_bomb_refused_quickly_by_the_loader():
    t0 = time.perf_counter()
    with pytest.raises(yamlsafe.AliasBombError, match="alias bomb"):
        yamlsafe.load(_bomb(8))
    assert time.perf_counter() - t0 < 2


def test_ordinary_anchors_still_load():
    text = "base: &b {lr: 1.0e-4, epochs: 2}\nsft: *b\ndpo: {<<: *b, beta: 0.1}\n"
    assert yamlsafe.load(text) == {
        "base": {"lr": 1.0e-4, "epochs": 2},
        "sft": {"lr": 1.0e-4, "epochs": 2},
        "dpo": {"lr": 1.0e-4, "epochs": 2, "beta": 0.1},
    }
    assert yamlsafe.load("a: [1, 2]") == yaml.safe_load("a: [1, 2]")


def test_python_tags_still_refused():
    with pytest.raises(yaml.YAMLError):
        yamlsafe.load("x: !!python/object/apply:os.system ['true']")


def test_recipe_bomb_refused_quickly(tmp_path):
    from curate.pipeline.recipe import RecipeError, load_recipe

    p = tmp_path / "recipe.yaml"
    p.write_text(_bomb(7, top="name: bomb"), encoding="utf-8")
    t0 = time.perf_counter()
    with pytest.raises(RecipeError, match="alias bomb") as exc:
        load_recipe(p)
    assert time.perf_counter() - t0 < 2
    assert str(p) in str(exc.value)


def test_rules_bomb_refused_quickly(tmp_path):
    from curate.rules.engine import RuleError, load_rules

    p = tmp_path / "rules.yaml"
    p.write_text(_bomb(7, top="name: bomb"), encoding="utf-8")
    t0 = time.perf_counter()
    with pytest.raises(RuleError, match="alias bomb"):
        load_rules([p])
    assert time.perf_counter() - t0 < 2


def test_train_config_bomb_refused_quickly(tmp_path):
    from train.config import ConfigError, load_yaml

    p = tmp_path / "sft.yaml"
    p.write_text(_bomb(7, top="model: x"), encoding="utf-8")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="alias bomb"):
        load_yaml(p)
    assert time.perf_counter() - t0 < 2


def test_chain_file_bomb_refused_quickly(tmp_path):
    from train.chain import ChainError, load_chain

    p = tmp_path / "chain.yaml"
    p.write_text(_bomb(7, top="model: x"), encoding="utf-8")
    t0 = time.perf_counter()
    with pytest.raises(ChainError, match="alias bomb"):
        load_chain(p)
    assert time.perf_counter() - t0 < 2


def test_set_values_and_dataset_cards_are_bounded(tmp_path):
    from curate.export_card import _split_card
    from curate.rules.engine import parse_set_option

    levels = ["&l0 [" + ", ".join(["x"] * 9) + "]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 8)]
    bomb = "[" + ", ".join(levels) + "]"  # one flow-style line, 9^7 leaves
    t0 = time.perf_counter()
    assert parse_set_option("too-long.max_chars=" + bomb)[2] == bomb  # not expanded: kept as text
    assert time.perf_counter() - t0 < 2
    with pytest.raises(yamlsafe.AliasBombError):
        _split_card("---\n" + _bomb(7) + "---\nbody\n")
