"""Library noise that says nothing to a `train` user, silenced precisely (every other warning stays).

- transformers' FutureWarnings for its own v6 renames (``gradient_checkpointing`` ->
  ``activation_checkpointing``, ``is_gradient_checkpointing``): raised by TRL/PEFT's calls into
  transformers, not by anything the user set;
- the tokenizer's "Token indices sequence length is longer than the specified maximum sequence length"
  line: tamis measures every row, plans ``max_length`` from the lengths and reports truncation in the
  check (the model never sees the long sequence);
- the kernels hub's "Skipping publisher trust check ... offline mode" and bitsandbytes' "Failed to load
  CPU gemm_4bit_forward from kernels-community" lines: tamis runs offline by design and never fetches
  kernels; the CPU fallback is used.
"""

from __future__ import annotations

import logging
import warnings

# (logger name, start of the message) of records to drop
_LOG_LINES = (
    ("transformers.tokenization_utils_base", "Token indices sequence length is longer than the specified"),
    ("kernels._internals.hf_hub", "Skipping publisher trust check"),
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
)


class _DropLines(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_libraries() -> None:
    """Install the filters (idempotent; cheap: imports no library)."""
    warnings.filterwarnings(
        "ignore",
        message=r"`\w+` is deprecated and will be removed in v6\. Use `\w+` instead\.",
        category=FutureWarning,
        module=r"transformers(\.|$)",
    )
    for name, prefix in _LOG_LINES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropLines(prefix))
