"""Incremental dedup index (``curate dedup --state DIR``).

The directory keeps, for every row ever seen (kept or dropped), its id, source, batch and exact key;
for the rows that reached MinHash their signatures and shingle sets; for the rows that reached the
semantic step their embeddings (with the embedder's fingerprint). A new batch is deduplicated against
all of them without recomputing anything, then appended as a new ``batch-NNNNNN`` folder::

    DIR/manifest.json            parameters that must not change, and one entry per batch
    DIR/batch-000001/rows.parquet   id, file, line, sheet, batch, kept, preview
    DIR/batch-000001/*.npy          keys, signatures, shingles, offsets, embeddings ...

Writes are atomic (a batch folder is renamed into place, then the manifest is replaced) and a lock
file keeps two runs from appending at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.dedup.engine import PREVIEW, BatchData, DedupConfig, Prior
from curate.dedup.minhash import SignatureSet, minhash_backend, shingle_arrays

FORMAT_VERSION = 1
NORMALISATION = "nfkc-lower-units-v1"


class IndexError_(ValueError):
    pass


def _params(config: DedupConfig) -> dict[str, Any]:
    return {
        "fields": list(config.fields),
        "ngram": config.ngram,
        "num_perm": config.num_perm,
        "seed": config.seed,
        "normalisation": NORMALISATION,
        "minhash_backend": minhash_backend(),
    }


class DedupIndex:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock_fd: int | None = None

    # -- locking
    def __enter__(self) -> DedupIndex:
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.path / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise IndexError_(f"{self.path} is locked by another dedup run") from exc
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- manifest
    def manifest(self) -> dict[str, Any]:
        p = self.path / "manifest.json"
        if not p.exists():
            return {"version": FORMAT_VERSION, "params": None, "batches": []}
        return json.loads(p.read_text(encoding="utf-8"))

    def _write_manifest(self, m: dict[str, Any]) -> None:
        tmp = self.path / f".manifest.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(m, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, self.path / "manifest.json")

    def check(self, config: DedupConfig) -> None:
        m = self.manifest()
        have = m.get("params")
        if have is None:
            return
        want = _params(config)
        # indexes written before the backend was recorded were built with rensa
        have = {"minhash_backend": "rensa", **have}
        diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
        if diff:
            what = ", ".join(f"{k}: index has {a!r}, this run {b!r}" for k, (a, b) in diff.items())
            raise IndexError_(
                f"{self.path} was built with other parameters ({what}); use the same ones or a new --state"
            )

    # -- load
    def load(self) -> Prior | None:
        m = self.manifest()
        if not m["batches"]:
            return None
        rows, keys, mh_rows, mh_parts, emb_rows, embs = [], [], [], [], [], []
        emb_model = None
        base = 0
        num_perm = (m.get("params") or {}).get("num_perm", 128)
        for b in m["batches"]:
            d = self.path / b["dir"]
            r = pl.read_parquet(d / "rows.parquet")
            rows.append(r)
            keys.append(np.load(d / "keys.npy"))
            if (d / "sigs.npy").exists():
                local = np.load(d / "mh_rows.npy")
                mh_rows.append(local + base)
                mh_parts.append(
                    SignatureSet(
                        np.load(d / "sigs.npy"),
                        np.load(d / "shingles.npy"),
                        np.load(d / "offsets.npy"),
                        np.load(d / "short.npy"),
                        np.load(d / "empty.npy"),
                    )
                )
            if (d / "emb.npy").exists():
                model = (d / "emb_model.txt").read_text(encoding="utf-8").strip()
                if emb_model is None or model == emb_model:
                    emb_model = model
                    emb_rows.append(np.load(d / "emb_rows.npy") + base)
                    embs.append(np.load(d / "emb.npy").astype(np.float32))
            base += r.height
        return Prior(
            rows=pl.concat(rows, how="vertical_relaxed"),
            keys=np.concatenate(keys),
            mh_rows=np.concatenate(mh_rows) if mh_rows else np.zeros(0, dtype=np.int64),
            mh=SignatureSet.concat(mh_parts, num_perm) if mh_parts else None,
            emb_rows=np.concatenate(emb_rows) if emb_rows else np.zeros(0, dtype=np.int64),
            emb=np.concatenate(embs) if embs else None,
            emb_model=emb_model,
        )

    def next_batch(self) -> int:
        return len(self.manifest()["batches"]) + 1

    # -- append
    def append(
        self,
        frame: pl.DataFrame,
        data: BatchData,
        config: DedupConfig,
        inputs: list[str],
        label: str | None = None,
    ) -> dict[str, Any]:
        m = self.manifest()
        if m.get("params") is None:
            m["params"] = _params(config)
        number = len(m["batches"]) + 1
        name = f"batch-{number:06d}"
        tmp = self.path / f".{name}.{os.getpid()}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        n = frame.height
        if n and "source" in frame.columns:
            src = frame["source"].struct.unnest()
            files, lines, sheets = src["file"], src["line"], src["sheet"]
        else:
            files = pl.Series([None] * n, dtype=pl.Utf8)
            lines = pl.Series([None] * n, dtype=pl.Int64)
            sheets = pl.Series([None] * n, dtype=pl.Utf8)
        rows = pl.DataFrame(
            {
                "id": frame["id"] if "id" in frame.columns else pl.Series([str(i) for i in range(n)]),
                "file": files.cast(pl.Utf8),
                "line": lines.cast(pl.Int64),
                "sheet": sheets.cast(pl.Utf8),
                "batch": pl.Series([number] * n, dtype=pl.Int64),
                "kept": pl.Series(data.kept, dtype=pl.Boolean),
                "preview": data.raw.str.slice(0, PREVIEW) if n else pl.Series([], dtype=pl.Utf8),
            }
        )
        rows.write_parquet(tmp / "rows.parquet")
        np.save(tmp / "keys.npy", data.keys)
        if data.mh is not None:
            if data.mh.shingles is None:  # computed on demand during the run: store them now
                sh, off = shingle_arrays(data.raw.gather(data.mh_rows), data.ngram)
                data.mh = SignatureSet(data.mh.sigs, sh, off, data.mh.short, data.mh.empty)
            np.save(tmp / "mh_rows.npy", data.mh_rows)
            np.save(tmp / "sigs.npy", data.mh.sigs)
            np.save(tmp / "shingles.npy", data.mh.shingles)
            np.save(tmp / "offsets.npy", data.mh.offsets)
            np.save(tmp / "short.npy", data.mh.short)
            np.save(tmp / "empty.npy", data.mh.empty)
        if data.emb is not None:
            np.save(tmp / "emb_rows.npy", data.emb_rows)
            np.save(tmp / "emb.npy", data.emb.astype(np.float16))
            (tmp / "emb_model.txt").write_text(data.emb_model or "", encoding="utf-8")
        final = self.path / name
        if final.exists():
            raise IndexError_(f"{final} already exists: the index is inconsistent with its manifest")
        os.replace(tmp, final)
        entry = {
            "batch": number,
            "dir": name,
            "label": label,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inputs": inputs,
            "rows": n,
            "kept": int(data.kept.sum()),
            "methods": list(config.methods),
        }
        m["batches"].append(entry)
        self._write_manifest(m)
        return entry
