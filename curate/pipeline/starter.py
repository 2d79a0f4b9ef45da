"""The commented starter recipe that `curate init` writes."""

from __future__ import annotations

import json
import re

STARTER = """\
# A tamis recipe: `curate run {file}` runs every stage in order, caching each one, and writes a manifest.
# Relative paths are relative to this file. Re-running an unchanged recipe recomputes nothing;
# changing one stage's options re-runs from that stage on. `curate refresh {file} NEW_FILES...` adds
# new rows to the last dataset version (only rows not seen before are processed).
name: {name}

inputs:                       # any format `curate ingest` reads: jsonl, json, csv/tsv, xlsx, parquet, .gz/.zst
{inputs}
  # - path: more.gbk.csv      # per-input overrides, as on the command line
  #   format: qa
  #   map: {{question: 问题, answer: 回答}}
  #   encoding: gb18030       # only when detection gets it wrong (default: detected)

stages:                       # in this order; ingest is implicit
  - dedup:                    # exact + MinHash near-duplicates (add semantic for paraphrases)
      methods: [exact, minhash]
      threshold: 0.8          # Jaccard of character/word 5-grams
      keep: first             # first | longest | best:<score column>
  # - decontaminate:          # drop rows that overlap evaluation sets
  #     against: [eval.jsonl]
  - filter:                   # YAML rules: refusals, PII, repetition, truncation ... (see `curate rules list`)
      rules: [default]
  # - score:                  # perplexity / IFD / reward / fastText quality (embedded demo models by default)
  #     scorers: [ppl, ifd]
  # - select:                 # thresholds and a diverse subset
  #     where: "ifd < 1"
  #     target: 1000
  # - export:                 # trainer format: trl, alpaca, sharegpt, openai, llamafactory
  #     format: trl
  #     output: out/{name}.trl.jsonl

outputs:
  data: out/{name}.curated.jsonl        # the kept rows (canonical records)
  # dropped: out/{name}.dropped.jsonl   # every dropped row with stage, reason and detail (default: beside data)
  # report: out/{name}.report.html      # the HTML report of the run

# work_dir: .tamis/{name}               # stage cache and run manifests
# state: .tamis/{name}/state            # dataset versions for `curate refresh`
"""


def starter(name: str, input_path: str | list[str] | tuple[str, ...], file: str) -> str:
    """The commented starter recipe; ``input_path``: one input or several (each one listed)."""
    paths = [input_path] if isinstance(input_path, str) else list(input_path)
    # plain paths as written; anything YAML could misread (': ', '#', quotes) as a quoted string
    inputs = "\n".join(
        f"  - {p}" if re.fullmatch(r"[\w./\\-]+", str(p)) else f"  - {json.dumps(str(p), ensure_ascii=False)}"
        for p in paths
    )
    return STARTER.format(name=name, inputs=inputs, file=file)
