"""What every teacher shares: the :class:`Teacher` interface (``generate(list of message lists) -> list
of texts``, cached), the generation cache (:class:`TeacherCache`, SQLite), the two errors and the
client's default limits. The teachers themselves: :mod:`curate.augment.teachers` (local Hugging Face
models, and the factory) and :mod:`curate.augment.endpoint` (OpenAI-compatible endpoints).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from curate.configs.augment import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT  # noqa: F401  (re-exported)
from curate.core import vocab
from curate.core.errors import TamisError

Messages = list[dict[str, str]]


class TeacherError(TamisError, RuntimeError):
    """A teacher that cannot be used at all (bad path, rejected key...): the run stops."""


class GenerationError(RuntimeError):
    """One request that failed after every retry: that row is reported, the run goes on."""


def dir_fingerprint(path: Path) -> str:
    """A local model directory's identity in teacher cache keys (:func:`curate.core.vocab.dir_fingerprint`
    with its default rules: every file's path and size, whole files up to 64 MiB, the first and last
    MiB of larger ones)."""
    return vocab.dir_fingerprint(path)[:16]


def default_cache_path() -> Path:
    base = os.environ.get("TAMIS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tamis"
    )
    return Path(base) / "teacher.sqlite"


class TeacherCache:
    """(teacher, params, messages) -> text, in one SQLite file shared by threads and processes."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._conn = None
        self.hits = 0
        self.misses = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS gen (key TEXT PRIMARY KEY, teacher TEXT, text TEXT, created REAL)"
            )
            self._conn.commit()

    @staticmethod
    def key(teacher_id: str, params: dict[str, Any], messages: Messages) -> str:
        payload = json.dumps([teacher_id, params, messages], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def get(self, key: str) -> str | None:
        if self._conn is None:
            return None
        with self._lock:
            row = self._conn.execute("SELECT text FROM gen WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return row[0]

    def put(self, key: str, teacher_id: str, text: str) -> None:
        if self._conn is None:
            return
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO gen (key, teacher, text, created) VALUES (?, ?, ?, ?)",
                (key, teacher_id, text, time.time()),
            )
            self._conn.commit()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Teacher:
    """Base: ``identity`` names the model for the cache; subclasses implement ``_generate_uncached``."""

    identity: str = ""

    def __init__(
        self, cache: TeacherCache | None = None, max_new_tokens: int = 512, temperature: float = 0.0
    ):
        self.cache = cache or TeacherCache(None)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.requests = 0

    @property
    def params(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature}

    def generate(
        self, prompts: Sequence[Messages], progress: Callable[[int], None] | None = None
    ) -> list[str | GenerationError]:
        """Texts in prompt order; a prompt that failed after every retry gives a GenerationError."""
        keys = [TeacherCache.key(self.identity, self.params, list(p)) for p in prompts]
        out: list[str | GenerationError | None] = [self.cache.get(k) for k in keys]
        todo = [i for i, v in enumerate(out) if v is None]
        if progress and len(todo) < len(prompts):
            progress(len(prompts) - len(todo))

        def done(i: int, text: str | GenerationError) -> None:
            out[i] = text
            if isinstance(text, str):
                self.cache.put(keys[i], self.identity, text)
            if progress:
                progress(1)

        if todo:
            self._generate_uncached([prompts[i] for i in todo], todo, done)
        return [v if v is not None else GenerationError("no result") for v in out]

    def _generate_uncached(self, prompts, positions, done) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        self.cache.close()
