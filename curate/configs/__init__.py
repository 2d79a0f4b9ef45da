"""The stages' Config dataclasses, one light module per stage library (standard library and
curate.core at import time): a stage command's options are generated from its Config, so
`curate <stage> --help` imports the Config but never the stage library (polars, numpy, models).

The libraries' own package modules import polars at the top (``curate.augment``, ``curate.score``,
``curate.select``...), and importing ``curate.augment.config`` would run them first: hence one
package beside them. Each module sits in its library's layer (pyproject.toml's import-linter
contract), so validation that needs library code imports it inside ``__post_init__``; each library
re-exports its Config (``from curate.dedup.engine import DedupConfig`` keeps working).
"""
