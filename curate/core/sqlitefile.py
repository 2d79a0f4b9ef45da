"""SQLite cache files (the score cache, the embedding cache): opened in WAL mode, read-only where the
file or its folder is, and every failure names the file. Standard library only, so a cache module
of any layer can use it without loading another stage's package."""

from __future__ import annotations

import errno
import os
import sqlite3
import urllib.parse
from pathlib import Path


class CacheFileError(OSError):
    """A cache file that cannot be used (corrupt, not SQLite, unreadable): names the file."""

    def __init__(self, path: Path, reason: str, code: int = errno.EIO):
        super().__init__(code, reason, str(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """An SQLite cache file (created with its parent), WAL mode: readers never wait for a writer."""
    return open_cache(path, schema)[0]


def open_cache(path: Path, schema: str) -> tuple[sqlite3.Connection, bool]:
    """(connection, read_only). A cache on a read-only file or folder is opened read-only, so the
    values already in it can be used (a run whose every row is cached needs nothing else); any failure
    names the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writable = os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
    try:
        if writable:
            try:
                db = sqlite3.connect(str(path), timeout=30)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(schema)
                db.commit()
                return db, False
            except sqlite3.OperationalError as exc:
                # a read-only mount says so only when written to: read what is there
                if "readonly" not in str(exc).replace("-", "") or not path.exists():
                    raise
        if not path.exists():
            raise CacheFileError(path, "cannot create the cache: its folder is read-only", errno.EACCES)
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}"
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # a WAL database in a read-only folder cannot make its -shm file: read it as immutable
            db = sqlite3.connect(f"{uri}?immutable=1", uri=True)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db, True
    except sqlite3.DatabaseError as exc:
        raise CacheFileError(
            path,
            f"not a usable cache ({exc}); move it away to start a new one (its values are then recomputed)",
        ) from None
