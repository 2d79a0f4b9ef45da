"""The select stage's settings: declared in the light :mod:`curate.configs.select` (for `--help`),
re-exported here, where the stage's modules import them."""

from __future__ import annotations

from curate.configs.select import (  # noqa: F401  (re-exported)
    PAPER_DEFAULTS,
    QUALITY_COLUMNS,
    TEMPLATE_COSINE,
    SelectConfig,
)
