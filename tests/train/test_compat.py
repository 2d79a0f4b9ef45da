"""LLaMA-Factory and TRL setting names, the `trainer:` pass-through, report_to and --output-dir."""

from __future__ import annotations

import json

import pytest
import yaml

from train.config import ConfigError, resolve

# LLaMA-Factory's examples/train_lora/llama3_lora_sft.yaml, with the model and data made local
LF_SFT_YAML = """\
### model
model_name_or_path: {model}
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: identity,alpaca_en_demo
dataset_dir: {data_dir}
template: llama3
cutoff_len: 2048
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 0

### output
output_dir: {out}
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
max_steps: 1
"""


def _lf_data(d):
    """A LLaMA-Factory data folder: dataset_info.json naming two alpaca files."""
    d.mkdir()
    identity = [{"instruction": "hi", "input": "", "output": f"Hello! I am tamis {i}."} for i in range(4)]
    alpaca = [
        {"instruction": f"What is the status of node {i}?", "input": "", "output": f"Node {i} is ready."}
        for i in range(8)
    ]
    (d / "identity.json").write_text(json.dumps(identity), encoding="utf-8")
    (d / "alpaca_en_demo.json").write_text(json.dumps(alpaca), encoding="utf-8")
    info = {
        "identity": {"file_name": "identity.json"},
        "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
    }
    (d / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return d


def _write_lf(tmp_path, model):
    data_dir = _lf_data(tmp_path / "data")
    path = tmp_path / "llama3_lora_sft.yaml"
    out = tmp_path / "saves" / "lora" / "sft"
    path.write_text(LF_SFT_YAML.format(model=model, data_dir=data_dir, out=out), encoding="utf-8")
    return path, data_dir, out


def test_llamafactory_keys_resolve(tmp_path, tiny_models):
    path, data_dir, out = _write_lf(tmp_path, tiny_models["lm"])
    cfg = resolve("sft", str(path))
    assert cfg.model == str(tiny_models["lm"]) and cfg.output == str(out)
    assert cfg.method == "lora" and cfg.lora_r == 8 and cfg.lora_target == "all-linear"
    assert cfg.max_length == 2048 and cfg.epochs == 3.0 and cfg.batch_size == 1
    assert cfg.global_batch == 8  # 1 per device x 8 accumulation x 1 process
    assert cfg.learning_rate == 1e-4 and cfg.scheduler == "cosine" and cfg.warmup_ratio == 0.1
    # every dataset the dataset_info.json lists: the file itself is the data (its column mappings apply)
    assert cfg.data == [str(data_dir / "dataset_info.json")]
    subset = resolve("sft", str(path), sets={"dataset": "alpaca_en_demo", "dataset_dir": str(data_dir)})
    assert subset.data == [str(data_dir / "alpaca_en_demo.json")]
    assert cfg.max_samples == 1000 and cfg.report_to == ["none"] and cfg.template is None
    assert cfg.trainer == {"dataloader_num_workers": 0, "ddp_timeout": 180000000, "save_only_model": False}
    ignored = " ".join(cfg.warnings)
    for key in ("do_train", "overwrite_cache", "plot_loss", "overwrite_output_dir", "resume_from_checkpoint"):
        assert f"{key}: ignored" in ignored
    assert "llama3" in ignored  # the template name: the model's own chat template is used


def test_llamafactory_yaml_trains_unchanged(tmp_path, tiny_models):
    from click.testing import CliRunner

    from train.cli import main

    path, _, out = _write_lf(tmp_path, tiny_models["lm"])
    r = CliRunner().invoke(main, ["sft", "--config", str(path), "--json"])
    assert r.exit_code == 0, r.output + r.stderr
    assert "do_train: ignored" in r.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "done" and meta["global_step"] == 1 and meta["plan"]["grad_accum"] == 8
    assert not (out / "tensorboard").exists()  # report_to: none
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["trainer"]["ddp_timeout"] == 180000000


def test_trl_keys_and_trainer_section(tmp_path, tiny_models, train_data):
    conf = {
        "model_name_or_path": str(tiny_models["lm"]),
        "dataset_name": str(train_data["sft"]),
        "use_peft": True,
        "lora_r": 4,
        "lora_target_modules": ["q_proj", "v_proj"],
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "completion_only_loss": False,
        "trainer": {"optim": "adamw_torch", "adam_beta2": 0.99},
    }
    path = tmp_path / "trl.yaml"
    path.write_text(yaml.safe_dump(conf), encoding="utf-8")
    cfg = resolve("sft", str(path))
    assert cfg.method == "lora" and cfg.lora_target == "q_proj,v_proj" and cfg.loss_on == "all"
    assert cfg.global_batch == 4 and cfg.trainer == {"optim": "adamw_torch", "adam_beta2": 0.99}
    from train.args import common_args
    from train.methods import Device

    kw = common_args(
        cfg,
        {"epochs": 1, "learning_rate": 1e-4, "grad_accum": 2, "warmup_steps": 0},
        tmp_path,
        Device("cpu", False),
    )
    assert kw["optim"] == "adamw_torch" and kw["adam_beta2"] == 0.99 and kw["report_to"] == ["tensorboard"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"optimm": "adamw_torch"}, "trainer.optimm: not a field of the installed TrainingArguments"),
        ({"learning_rate": 1e-3}, "use `learning_rate:` at the top level"),
        ("adamw", "expected a mapping"),
    ],
)
def test_trainer_section_is_validated(tmp_path, section, message):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"trainer": section}), encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        resolve("sft", str(path))


def test_report_to_and_set_passthrough():
    from train.config import parse_set

    cfg = resolve("dpo", sets=parse_set(["report_to=none", "trainer.adam_beta2=0.95", "pref_beta=0.2"]))
    assert cfg.report_to == ["none"] and cfg.trainer == {"adam_beta2": 0.95} and cfg.beta == 0.2
    with pytest.raises(ConfigError, match="not one of tensorboard"):
        resolve("sft", sets={"report_to": "comet"})
    with pytest.raises(ConfigError, match="unknown setting 'no_such_key'"):
        resolve("sft", sets={"no_such_key": "1"})


def test_output_dir_flag(tiny_models, train_data, tmp_path):
    from click.testing import CliRunner

    from train.cli import main

    out = tmp_path / "run"
    args = ["sft", str(train_data["sft"]), "--model", str(tiny_models["lm"]), "--output-dir", str(out)]
    r = CliRunner().invoke(main, [*args, "--dry-run", "--json"])
    assert r.exit_code == 0, r.output + r.stderr
    r = CliRunner().invoke(main, [*args, "--max-steps", "1", "--global-batch", "4"])
    assert r.exit_code == 0, r.output + r.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "done"


def test_llamafactory_dpo_and_kto_keys(tmp_path, tiny_models, train_data):
    conf = {
        "model_name_or_path": str(tiny_models["lm"]),
        "stage": "dpo",
        "finetuning_type": "lora",
        "use_dora": True,
        "pref_beta": 0.2,
        "pref_loss": "sigmoid",
        "pref_ftx": 0.5,
        "dataset": str(train_data["pref"]),
        "val_size": 0.1,
    }
    path = tmp_path / "dpo.yaml"
    path.write_text(yaml.safe_dump(conf), encoding="utf-8")
    cfg = resolve("dpo", str(path))
    assert cfg.method == "dora" and cfg.beta == 0.2 and cfg.loss == "sigmoid" and cfg.sft_weight == 0.5
    assert cfg.data == [str(train_data["pref"])] and cfg.val_split == 0.1
    with pytest.raises(ConfigError, match="stage: dpo"):  # the YAML's stage must be the command's
        resolve("sft", str(path))
    kto = resolve(
        "kto", sets={"kto_chosen_weight": "2", "kto_rejected_weight": "0.5", "quantization_bit": "4"}
    )
    assert kto.desirable_weight == 2.0 and kto.undesirable_weight == 0.5 and kto.method == "qlora"
