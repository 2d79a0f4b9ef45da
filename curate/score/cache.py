"""A persistent score cache: one SQLite file, keyed by (row key, scorer, model fingerprint).

Re-scoring a grown file scores only the new rows, and an interrupted run resumes where it stopped,
because scored rows are committed every few seconds (``curate.score.COMMIT_SECONDS``). The row key
is the record id plus a hash of the exact text that was scored (ids normalise whitespace and width; scores can depend on both).
The fingerprint names the model's weights, tokenizer, chat template and every scorer setting that can
change a value (see :func:`curate.score.common.fingerprint`), so a cached value is never reused for a
different model or setting.

Values are stored as JSON objects (one per row: the scorer's columns, or ``{"error": reason}``).
"""

from __future__ import annotations

import errno
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from curate.core.sqlitefile import CacheFileError, connect, open_cache  # noqa: F401  (re-exported)

SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    row_key TEXT NOT NULL,
    scorer TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (row_key, scorer, fingerprint)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS models (
    fingerprint TEXT PRIMARY KEY,
    scorer TEXT NOT NULL,
    description TEXT NOT NULL
);
"""


class ScoreCache:
    """``get_many`` / ``put_many`` over SQLite (WAL mode, one transaction per batch)."""

    def __init__(self, path: Path | str | None):
        self.path = None if path is None else Path(path)
        self._db: sqlite3.Connection | None = None
        self.read_only = False
        if self.path is not None:
            self._db, self.read_only = open_cache(self.path, SCHEMA)

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def register_model(self, fingerprint: str, scorer: str, description: Mapping[str, Any]) -> None:
        if self._db is None or self.read_only:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO models VALUES (?, ?, ?)",
            (fingerprint, scorer, json.dumps(description, sort_keys=True, default=str)),
        )
        self._db.commit()

    def get_many(self, keys: Iterable[str], scorer: str, fingerprint: str) -> dict[str, dict[str, Any]]:
        if self._db is None:
            return {}
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        try:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                cur = self._db.execute(
                    f"SELECT row_key, value FROM scores WHERE scorer = ? AND fingerprint = ? AND row_key IN ({marks})",
                    (scorer, fingerprint, *chunk),
                )
                for key, value in cur:
                    found[key] = json.loads(value)
        except sqlite3.DatabaseError as exc:  # damaged pages past the header
            raise CacheFileError(self.path, f"cannot read scores: {exc}") from None
        return found

    def put_many(self, items: Mapping[str, Mapping[str, Any]], scorer: str, fingerprint: str) -> None:
        if self._db is None or not items:
            return
        if self.read_only:
            raise CacheFileError(
                self.path,
                f"the score cache is read-only and {len(items)} new {scorer} scores cannot be stored in it; "
                "make it writable or pass another --cache (a read-only cache serves runs whose rows it holds)",
                errno.EROFS,
            )
        now = time.time()
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
                [(k, scorer, fingerprint, json.dumps(v, allow_nan=False), now) for k, v in items.items()],
            )
            self._db.commit()
        except sqlite3.DatabaseError as exc:  # a full disk, a file damaged under us
            raise CacheFileError(self.path, f"cannot store scores: {exc}") from None

    def count(self, scorer: str | None = None) -> int:
        if self._db is None:
            return 0
        if scorer is None:
            return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM scores WHERE scorer = ?", (scorer,)).fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
