"""A persistent embedding cache, keyed like the score cache: (text content hash, model fingerprint).

``curate select`` embeds every candidate row (diversity pass, eval split) and semantic dedup and
few-shot retrieval embed questions; on a real set that is minutes per run, repeated on every run with
other thresholds. :meth:`curate.embed.Embedder.encode` looks every text up here first and embeds only
the missing ones, committing each batch as soon as it is embedded (an interrupted run keeps what it
did).

The key is the SHA-256 of the exact text embedded (so any edit of a row misses) and the embedder's
fingerprint (model name and version, or a hash of a local model directory's files), so a vector is
never reused for another model. Vectors are stored as raw float32 bytes before normalisation.

Where: ``$TAMIS_EMBED_CACHE`` (a file path; ``off`` disables it), else
``$XDG_CACHE_HOME/tamis/embeddings.sqlite`` (``~/.cache`` by default), one file shared by every
command and recipe, like the model-hash memo. When the file cannot be opened or written the cache is
simply off (never an error): it only saves time.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

import numpy as np

from curate.core.sqlitefile import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    text_key TEXT NOT NULL,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (text_key, model)
) WITHOUT ROWID;
"""


def cache_path() -> Path | None:
    env = os.environ.get("TAMIS_EMBED_CACHE")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none", "false") else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tamis" / "embeddings.sqlite"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class EmbeddingCache:
    """``get_many(keys, model) -> {key: vector}`` / ``put_many({key: vector}, model)`` over SQLite."""

    def __init__(self, path: Path | None = None):
        self.path = cache_path() if path is None else path
        self._db: sqlite3.Connection | None = None
        if self.path is None:
            return
        try:
            self._db = connect(self.path, SCHEMA)
        except (OSError, sqlite3.Error):
            self.close()

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def get_many(self, keys: list[str], model: str, dim: int) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        if self._db is None:
            return found
        unique = list(dict.fromkeys(keys))
        try:
            for i in range(0, len(unique), 500):
                chunk = unique[i : i + 500]
                marks = ",".join("?" * len(chunk))
                cur = self._db.execute(
                    f"SELECT text_key, vector FROM embeddings WHERE model = ? AND text_key IN ({marks})",
                    (model, *chunk),
                )
                for key, blob in cur:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.shape[0] == dim:  # a vector of another shape is not this model's
                        found[key] = vec
        except sqlite3.Error:
            self.close()
        return found

    def put_many(self, items: dict[str, np.ndarray], model: str) -> None:
        if self._db is None or not items:
            return
        now = time.time()
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                [(k, model, np.asarray(v, dtype=np.float32).tobytes(), now) for k, v in items.items()],
            )
            self._db.commit()
        except sqlite3.Error:
            self.close()

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
