"""Names shared by the commands and the writers, in a module light enough for `--help` to import."""

from __future__ import annotations

# stage name -> the file suffix it writes by default: `curate score data.csv` -> data.scored.jsonl.
# Filled (and kept in step) by the stage registry, curate.stages, where each declaration names its
# suffix; this module imports nothing, so the io layer can read it.
STAGE_SUFFIX: dict[str, str] = {}
