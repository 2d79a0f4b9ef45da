"""Deduplication: exact, MinHash LSH near-duplicates, semantic, decontamination, incremental index."""

from curate.dedup.engine import DedupConfig, DedupResult, run

__all__ = ["DedupConfig", "DedupResult", "run"]
