"""Incremental dedup index (``curate dedup --state DIR``).

The directory keeps, for every row ever seen (kept or dropped), its id, source, batch, exact key and
the row that survives it in the end (itself when kept); for every kept row and every row that reached
MinHash, its signature and shingle set (whatever methods the batch ran, so a later run with MinHash
compares them too); for the rows that reached the semantic step their embeddings (with the embedder's
fingerprint). A new batch is deduplicated against all of them without recomputing anything, then
appended as a new ``batch-NNNNNN`` folder::

    DIR/manifest.json            parameters that must not change, and one entry per batch
    DIR/batch-000001/rows.parquet   id, file, line, sheet, batch, kept, preview, survivor
    DIR/batch-000001/*.npy          keys, signatures, shingles, offsets, embeddings ...

Writes are atomic: a batch is first written to a hidden folder (:meth:`DedupIndex.stage`), renamed
into place and the manifest replaced only when the run's outputs are written
(:meth:`DedupIndex.commit`); a batch folder the manifest does not list (a run that died between the
two) is removed by the next append. A lock file keeps two runs from appending at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.dedup.engine import DedupConfig
from curate.dedup.signatures import SignatureSet, minhash_backend, shingle_arrays, signatures_for
from curate.dedup.text import KEY_VERSION, display_series
from curate.dedup.types import PREVIEW, BatchData, Prior

# 2: field separators in keys/shingles, survivors, signatures of every kept row; 3: Latin-script text
# shingled by characters (signatures and shingle sets differ from format 2; exact keys do not); 4: numbers
# add shingles of their own (curate.dedup.text.NUMBER_WEIGHT)
FORMAT_VERSION = 4
NORMALISATION = KEY_VERSION
# what changed in each format, for the message that refuses an index of an earlier one
FORMAT_CHANGES = {
    1: "field boundaries now count, so exact keys and MinHash signatures differ",
    2: "Latin-script text is now shingled by characters, not words, so MinHash signatures differ",
    3: "numbers now add shingles of their own (rows that differ in a number are kept apart), so MinHash "
    "signatures differ",
}
ROW_COLUMNS = ("id", "file", "line", "sheet", "batch", "kept", "preview")


class IndexError_(ValueError):
    pass


def _params(config: DedupConfig) -> dict[str, Any]:
    return {
        "fields": list(config.fields),
        "ngram": config.ngram,
        "latin_units": config.latin,
        "latin_ngram": config.latin_ngram if config.latin == "chars" else None,
        "num_perm": config.num_perm,
        "seed": config.seed,
        "normalisation": NORMALISATION,
        "minhash_backend": minhash_backend(),
    }


@dataclass
class StagedBatch:
    """A batch written to a hidden folder, not yet part of the index (see :meth:`DedupIndex.commit`)."""

    tmp: Path
    name: str
    entry: dict[str, Any]
    params: dict[str, Any]


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
        version = m.get("version", 1)
        if version != FORMAT_VERSION or have.get("normalisation") != NORMALISATION:
            raise IndexError_(
                f"{self.path} was built by an earlier version of tamis (index format {version}, keys and "
                f"shingles {have.get('normalisation')!r}; this version writes format {FORMAT_VERSION}, "
                f"{NORMALISATION!r}: {'; '.join(v for k, v in FORMAT_CHANGES.items() if k >= version)}); "
                "its rows cannot be compared with new ones. Rebuild it: run the earlier batches "
                "again with a new --state directory"
            )
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
    def load(self, emb_model: str | None = None) -> Prior | None:
        """Every earlier row. ``emb_model``: load only the embeddings made with that embedder
        fingerprint (the others are listed in ``Prior.emb_other``); ``None`` loads all of them."""
        m = self.manifest()
        if not m["batches"]:
            return None
        rows, keys, survivors, mh_rows, mh_parts = [], [], [], [], []
        emb: dict[str, tuple[list, list]] = {}
        emb_other: dict[str, list] = {}
        base = 0
        num_perm = (m.get("params") or {}).get("num_perm", 128)
        for b in m["batches"]:
            d = self.path / b["dir"]
            r = pl.read_parquet(d / "rows.parquet")
            if "survivor" in r.columns:
                survivors.append(r["survivor"].to_numpy().astype(np.int64))
            else:
                survivors.append(np.arange(base, base + r.height, dtype=np.int64))
            rows.append(r.select([c for c in ROW_COLUMNS if c in r.columns]))
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
                e_rows = np.load(d / "emb_rows.npy").astype(np.int64) + base
                if emb_model is None or model == emb_model:
                    have = emb.setdefault(model, ([], []))
                    have[0].append(e_rows)
                    have[1].append(np.load(d / "emb.npy").astype(np.float32))
                else:
                    emb_other.setdefault(model, []).append(e_rows)
            base += r.height
        return Prior(
            rows=pl.concat(rows, how="vertical_relaxed"),
            keys=np.concatenate(keys),
            mh_rows=np.concatenate(mh_rows) if mh_rows else np.zeros(0, dtype=np.int64),
            mh=SignatureSet.concat(mh_parts, num_perm) if mh_parts else None,
            emb={k: (np.concatenate(r), np.concatenate(e)) for k, (r, e) in emb.items()},
            emb_other={k: np.concatenate(r) for k, r in emb_other.items()},
            survivor=np.concatenate(survivors),
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
        """:meth:`stage` and :meth:`commit` in one step."""
        return self.commit(self.stage(frame, data, config, inputs, label))

    def _remove_orphans(self, listed: set[str]) -> None:
        """Batch folders the manifest does not list and hidden temporary folders: left by a run that
        died before its commit (the lock is held, so no other run is writing them)."""
        for d in self.path.iterdir():
            name = d.name
            orphan = name.startswith("batch-") and name not in listed
            tmp = name.startswith(".batch-") and name.endswith(".tmp")
            if (orphan or tmp) and d.is_dir():
                shutil.rmtree(d, ignore_errors=True)

    def stage(
        self,
        frame: pl.DataFrame,
        data: BatchData,
        config: DedupConfig,
        inputs: list[str],
        label: str | None = None,
    ) -> StagedBatch:
        """Write the batch to a hidden folder; it joins the index at :meth:`commit`."""
        m = self.manifest()
        self._remove_orphans({b["dir"] for b in m["batches"]})
        number = len(m["batches"]) + 1
        base = sum(int(b["rows"]) for b in m["batches"])
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
        survivor = np.arange(base, base + n, dtype=np.int64)
        if data.survivor_new is not None:
            survivor = np.where(data.survivor_new >= 0, data.survivor_new + base, data.survivor_prior)
        rows = pl.DataFrame(
            {
                "id": frame["id"] if "id" in frame.columns else pl.Series([str(i) for i in range(n)]),
                "file": files.cast(pl.Utf8),
                "line": lines.cast(pl.Int64),
                "sheet": sheets.cast(pl.Utf8),
                "batch": pl.Series([number] * n, dtype=pl.Int64),
                "kept": pl.Series(data.kept, dtype=pl.Boolean),
                "preview": display_series(data.raw).str.slice(0, PREVIEW)
                if n
                else pl.Series([], dtype=pl.Utf8),
                "survivor": pl.Series(survivor, dtype=pl.Int64),
            }
        )
        rows.write_parquet(tmp / "rows.parquet")
        np.save(tmp / "keys.npy", data.keys)
        mh_rows, mh = self._signatures(data, config)
        if mh is not None:
            np.save(tmp / "mh_rows.npy", mh_rows)
            np.save(tmp / "sigs.npy", mh.sigs)
            np.save(tmp / "shingles.npy", mh.shingles)
            np.save(tmp / "offsets.npy", mh.offsets)
            np.save(tmp / "short.npy", mh.short)
            np.save(tmp / "empty.npy", mh.empty)
        if data.emb is not None:
            np.save(tmp / "emb_rows.npy", data.emb_rows)
            np.save(tmp / "emb.npy", data.emb.astype(np.float16))
            (tmp / "emb_model.txt").write_text(data.emb_model or "", encoding="utf-8")
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
        return StagedBatch(tmp, name, entry, _params(config))

    @staticmethod
    def _signatures(data: BatchData, config: DedupConfig) -> tuple[np.ndarray, SignatureSet | None]:
        """Signatures and shingle sets of the rows that reached MinHash plus every other kept,
        non-empty row (computed here when this run had no MinHash step, or dropped nothing before it)."""
        n = len(data.kept)
        has = np.zeros(n, dtype=bool)
        mh = data.mh
        if mh is not None:
            has[data.mh_rows] = True
            if mh.shingles is None:  # computed on demand during the run: store them now
                sh, off = shingle_arrays(
                    data.raw.gather(data.mh_rows),
                    data.ngram,
                    latin=config.latin,
                    latin_ngram=config.latin_ngram,
                )
                mh = SignatureSet(mh.sigs, sh, off, mh.short, mh.empty)
        extra = np.flatnonzero(data.kept & (data.keys != 0) & ~has)
        if len(extra) == 0:
            return (data.mh_rows, mh) if mh is not None and mh.n else (np.zeros(0, np.int64), None)
        ss, _ = signatures_for(data.raw.gather(extra), config, keep_shingles=True)
        if mh is None or not mh.n:
            return extra.astype(np.int64), ss
        rows = np.concatenate([data.mh_rows, extra]).astype(np.int64)
        order = np.argsort(rows, kind="stable")
        return rows[order], SignatureSet.concat([mh, ss], config.num_perm).take(order)

    def commit(self, staged: StagedBatch) -> dict[str, Any]:
        """Rename the staged batch into place and list it in the manifest (atomic replace)."""
        m = self.manifest()
        if m.get("params") is None or not m["batches"]:
            m["version"] = FORMAT_VERSION
        if m.get("params") is None:
            m["params"] = staged.params
        listed = {b["dir"] for b in m["batches"]}
        if staged.entry["batch"] != len(m["batches"]) + 1:
            raise IndexError_(f"{self.path}: the manifest changed while this batch was written")
        final = self.path / staged.name
        if final.exists() and staged.name not in listed:
            shutil.rmtree(final)  # an orphan of a run that died before its commit
        if final.exists():
            raise IndexError_(f"{final} already exists: the index is inconsistent with its manifest")
        os.replace(staged.tmp, final)
        m["batches"].append(staged.entry)
        self._write_manifest(m)
        return staged.entry

    def discard(self, staged: StagedBatch) -> None:
        """Forget a staged batch (the run failed before its outputs were written)."""
        shutil.rmtree(staged.tmp, ignore_errors=True)

    def truncate(self, keep: int) -> list[str]:
        """Forget the batches past ``keep`` and any staged or half-written one: a caller that commits
        outputs of its own after the index (`curate refresh`: its CURRENT) keeps how many batches its
        committed outputs cover. Returns what was removed."""
        removed = []
        mpath = self.path / "manifest.json"
        if mpath.is_file():
            m = json.loads(mpath.read_text(encoding="utf-8"))
            if len(m.get("batches", [])) > keep:
                m["batches"] = m["batches"][:keep]
                if keep == 0:
                    m["params"] = None
                self._write_manifest(m)
                removed.append(f"{mpath} (batches > {keep})")
        for d in self.path.iterdir():
            name = d.name
            if name.startswith("batch-") and name[6:].isdigit() and int(name[6:]) > keep:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(str(d))
            elif name.startswith(".batch-") or (name.startswith(".manifest.") and name.endswith(".tmp")):
                if d.is_dir():
                    shutil.rmtree(d, ignore_errors=True)
                else:
                    d.unlink(missing_ok=True)
                removed.append(str(d))
        return removed
