"""Train papercuts: CJK in the token preview, --help descriptions, exported weights' permissions,
library warnings on train commands."""

from __future__ import annotations

import pytest


def test_cjk_preview_is_text_not_byte_pieces(tiny_models):
    from transformers import AutoTokenizer

    from train.check import token_pieces

    tok = AutoTokenizer.from_pretrained(str(tiny_models["lm"]))
    text = "Jenkins 插件升级后流水线报错，依赖复杂。"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert any("\ufffd" in tok.decode([i]) for i in ids)  # per-token decoding shows byte pieces
    labels = [-100] * 3 + ids[3:]
    pieces = token_pieces(tok, ids, labels)
    assert "".join(p for p, _, _ in pieces) == tok.decode(ids) == text
    assert not any("\ufffd" in p for p, _, _ in pieces)
    assert [trained for _, _, trained in pieces][:2] == [False, False] and pieces[-1][2]


@pytest.mark.parametrize(
    "stage",
    ["sft", "dpo", "rm", "kto", "pt", "orpo", "rloo", "grpo", "chain", "plan", "check", "export", "eval"],
)
def test_every_command_help_has_a_description(stage):
    from click.testing import CliRunner

    from train.cli import main

    r = CliRunner().invoke(main, [stage, "--help"])
    assert r.exit_code == 0
    usage, _, rest = r.output.partition("\n\n")
    assert usage.startswith("Usage:") and not rest.startswith("Options:"), r.output[:300]


def test_library_noise_is_silenced_precisely(tiny_models, tmp_path):
    import logging
    import warnings

    from transformers import AutoTokenizer, TrainingArguments

    from train.quiet import quiet_libraries

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    tok_logger = logging.getLogger("transformers.tokenization_utils_base")
    handler = Keep()
    tok_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quiet_libraries()
            TrainingArguments(output_dir=str(tmp_path), gradient_checkpointing=False, report_to=[])
            tok = AutoTokenizer.from_pretrained(str(tiny_models["lm"]))
            tok("node " * 700)  # > model_max_length 512
            warnings.warn("another FutureWarning stays", FutureWarning, stacklevel=1)
    finally:
        tok_logger.removeHandler(handler)
    assert not any("Token indices" in m for m in records)
    messages = [str(w.message) for w in caught]
    assert not any("is deprecated and will be removed in v6" in m for m in messages), messages
    assert "another FutureWarning stays" in messages


def test_train_commands_install_the_filters(tiny_models, train_data):
    import logging

    from click.testing import CliRunner

    from train.cli import main

    CliRunner().invoke(main, ["plan", "--rows", "10", "--model", str(tiny_models["lm"])])
    names = {n for n, _ in __import__("train.quiet").quiet._LOG_LINES}
    assert all(logging.getLogger(n).filters for n in names)


def test_weights_are_written_with_umask_modes(tiny_models, train_data, quick_cfg, tmp_path):
    """safetensors writes 0600 files; the run's final/, its checkpoints and an export are 0666 - umask."""
    import os
    import stat

    from train.export import export_run
    from train.run import prepare, train

    old = os.umask(0o022)
    try:
        run = train(
            prepare(
                quick_cfg(
                    "sft", tiny_models["lm"], train_data["sft"], tmp_path / "run", max_steps=1, save_steps=1
                )
            ),
            progress=False,
        )
        export_run(run, tmp_path / "export", dtype="fp32")
    finally:
        os.umask(old)
    for path in (
        tmp_path / "export" / "model.safetensors",
        run / "final" / "adapter_model.safetensors",
        run / "checkpoint-1" / "adapter_model.safetensors",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


@pytest.mark.parametrize(
    ("stage", "counted"), [("sft", True), ("dpo", True), ("kto", True), ("orpo", False), ("grpo", False)]
)
def test_tokens_are_counted_where_batches_hold_input_ids(stage, counted, tmp_path):
    """Trainer warns on every step when asked to count tokens of batches without input_ids (ORPO's
    prompt/chosen/rejected ids, RLOO/GRPO's prompts, which count their own tokens)."""
    from train.args import common_args
    from train.config import resolve
    from train.methods import Device

    plan = {"epochs": 1, "learning_rate": 1e-4, "grad_accum": 1, "warmup_steps": 0}
    sets = {"reward": "format"} if stage == "grpo" else None
    kw = common_args(resolve(stage, sets=sets), plan, tmp_path, Device("cpu", False))
    assert kw["include_num_input_tokens_seen"] == ("non_padding" if counted else "no")
