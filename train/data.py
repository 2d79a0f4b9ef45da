"""Curated records -> TRL datasets: one import for the three steps (``from train import data as D``).

- :mod:`train.rows`: records -> the rows a stage's trainer takes, every dropped row counted with a reason;
- :mod:`train.tokens`: the tokenizer, the chat template and the labels, the one path that `train check`
  and training share (the label preview of `train check` is the exact labels the trainer uses);
- :mod:`train.sequences`: rows that do not fit ``max_length`` dropped or cut, documents split, the
  held-out split and the dataset.
"""

from __future__ import annotations

from curate.core.vocab import sha256_file
from train.config import STAGE_KINDS
from train.rows import (
    PAIR_STAGES,
    DataError,
    Prepared,
    describe_file,
    find_manifest,
    fingerprint,
    load_frame,
    prepare,
)
from train.sequences import (
    budget_lengths,
    chunk,
    drop_overlong,
    n_chunks,
    overlong_reason,
    shuffled,
    split_eval,
    to_dataset,
    truncate,
    truncate_pair,
)
from train.tokens import (
    IGNORE,
    RowError,
    Tokenized,
    _labels_by_text,
    _labels_by_turn_prefix,
    _render,
    common_prefix,
    count_spans,
    encode_pair,
    end_of_turn_ids,
    has_generation_markers,
    load_tokenizer,
    pair_lengths,
    read_template,
    template_prefix_preserving,
    template_stop_ids,
    tokenize_all,
    tokenize_sft,
    tokenize_text,
)

__all__ = [
    "IGNORE",
    "PAIR_STAGES",
    "STAGE_KINDS",
    "DataError",
    "Prepared",
    "RowError",
    "Tokenized",
    "_labels_by_text",
    "_labels_by_turn_prefix",
    "_render",
    "budget_lengths",
    "chunk",
    "common_prefix",
    "count_spans",
    "describe_file",
    "drop_overlong",
    "encode_pair",
    "end_of_turn_ids",
    "find_manifest",
    "fingerprint",
    "has_generation_markers",
    "load_frame",
    "load_tokenizer",
    "n_chunks",
    "overlong_reason",
    "pair_lengths",
    "prepare",
    "read_template",
    "sha256_file",
    "shuffled",
    "split_eval",
    "template_prefix_preserving",
    "template_stop_ids",
    "to_dataset",
    "tokenize_all",
    "tokenize_sft",
    "tokenize_text",
    "truncate",
    "truncate_pair",
]
