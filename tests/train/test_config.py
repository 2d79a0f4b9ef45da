from __future__ import annotations

import pytest

from train.config import ConfigError, SFTConfig, dump_yaml, parse_set, resolve


def test_defaults_and_precedence(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("model: m\nlora_r: 4\nepochs: 3\ndpo:\n  beta: 0.5\nsft:\n  lora_r: 32\n  packing: true\n")
    cfg = resolve(
        "sft", str(y), flags={"epochs": 2.0}, sets=parse_set(["learning_rate=3e-4", "lora-alpha=64"])
    )
    assert isinstance(cfg, SFTConfig)
    assert cfg.lora_r == 32  # stage section beats the top level
    assert cfg.packing is True
    assert cfg.epochs == 2.0  # flag beats YAML
    assert cfg.learning_rate == 3e-4 and cfg.lora_alpha == 64  # --set beats everything
    assert cfg.method == "lora" and cfg.max_length is None  # default / planned
    dpo = resolve("dpo", str(y))
    assert dpo.beta == 0.5 and dpo.lora_r == 4


def test_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="lora_r: expected int"):
        resolve("sft", sets={"lora_r": "eight"})
    with pytest.raises(ConfigError, match="unknown setting 'beta'"):
        resolve("sft", sets={"beta": "0.1"})  # beta is a DPO/KTO setting
    with pytest.raises(ConfigError, match="method"):
        resolve("sft", sets={"method": "magic"})
    with pytest.raises(ConfigError, match="global_batch"):
        resolve("sft", sets={"batch_size": "8", "global_batch": "4"})
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["lora_r"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve("sft", str(bad))


def test_bools_lists_and_none():
    cfg = resolve("sft", sets={"packing": "yes", "data": "a.jsonl,b.jsonl", "epochs": "none"})
    assert cfg.packing is True and cfg.data == ["a.jsonl", "b.jsonl"] and cfg.epochs is None
    text = dump_yaml(cfg)
    assert "stage: sft" in text and "packing: true" in text


@pytest.mark.parametrize("stage", ["sft", "dpo", "rm", "kto", "pt"])
def test_saved_config_yaml_reloads_with_config(stage, tmp_path):
    """RUN/config.yaml (written by dump_yaml, with its `stage:` key) is accepted by --config."""
    cfg = resolve(
        stage,
        flags={"model": "m", "data": ["a.jsonl", "b.jsonl"], "lora_r": 4, "epochs": 2.0},
        sets={"learning_rate": "3e-4", "method": "dora"},
    )
    y = tmp_path / "config.yaml"
    y.write_text(dump_yaml(cfg))
    again = resolve(stage, str(y))
    assert type(again) is type(cfg) and again == cfg
    # flags still override the saved file
    assert resolve(stage, str(y), flags={"lora_r": 16}).lora_r == 16


def test_saved_config_yaml_of_another_stage_is_refused(tmp_path):
    y = tmp_path / "config.yaml"
    y.write_text(dump_yaml(resolve("dpo", flags={"model": "m"})))
    with pytest.raises(ConfigError, match="`train dpo` config"):
        resolve("sft", str(y))


def test_value_ranges_are_checked():
    with pytest.raises(ConfigError, match="label_smoothing"):
        resolve("dpo", sets={"label_smoothing": "0.5"})
    with pytest.raises(ConfigError, match="beta"):
        resolve("dpo", sets={"beta": "0"})
    with pytest.raises(ConfigError, match="beta"):
        resolve("kto", sets={"beta": "-1"})
    with pytest.raises(ConfigError, match="lora_target"):
        resolve("sft", sets={"lora_target": ""})
    with pytest.raises(ConfigError, match="lora_target"):
        resolve("sft", sets={"lora_target": " , "})
    assert resolve("dpo", sets={"label_smoothing": "0.2"}).label_smoothing == 0.2


def test_num_processes_names_the_run():
    """The process count changes the global batch rounding and the data sharding: it is a key setting."""
    from train.run import key_settings, run_key

    a = resolve("sft", flags={"model": "m"})
    b = resolve("sft", flags={"model": "m", "num_processes": 2})
    assert "num_processes" in key_settings(a) and run_key(a, "fp") != run_key(b, "fp")
