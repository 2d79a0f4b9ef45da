"""What an input path names: a file, a folder of Parquet shards, a ``datasets`` ``save_to_disk`` folder, or
a LLaMA-Factory ``dataset_info.json`` (every local dataset it lists, read with its column mapping).

:func:`expand` turns the paths a user gave into the sources the loader reads, each with the format and
column renaming its description implies; a path that cannot be used (missing, a symlink loop, a folder
holding nothing readable) is an :class:`InputError` naming it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from curate.core.vocab import sha256_file
from curate.io.decode import InputError


@dataclass
class Source:
    path: Path
    fmt: str | None = None  # the format the description names (None: detect)
    rename: dict[str, str] = field(default_factory=dict)  # input key -> the key the format reads
    dataset: str | None = None  # the dataset_info.json entry it came from
    notes: list[str] = field(default_factory=list)


def check_path(path: Path) -> None:
    """A clear error for a path that cannot even be looked at (a symlink loop, a dangling link)."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: symlink loop (the link points back at itself)") from None
        if os.path.islink(path):
            raise InputError(f"{path}: broken symlink (points at {os.readlink(path)})") from None
        if exc.errno == errno.ENOENT:
            return  # the reader says so, after naming an unknown file type
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def is_saved_dataset(path: Path) -> bool:
    """A ``Dataset.save_to_disk`` (state.json) or ``DatasetDict.save_to_disk`` (dataset_dict.json) folder."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def is_llamafactory_info(path: Path) -> bool:
    return path.name == "dataset_info.json" and path.is_file() and not (path.parent / "state.json").exists()


def expand(paths: list[Path]) -> list[Source]:
    out: list[Source] = []
    for p in paths:
        p = Path(p)
        check_path(p)
        if p.is_dir():
            if is_saved_dataset(p):
                out.append(Source(p))
                continue
            shards = sorted(
                q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in (".parquet", ".pq")
            )
            if not shards:
                raise InputError(
                    f"{p}: is a directory without Parquet shards or a saved dataset "
                    "(save_to_disk); give the files inside it"
                )
            out += [Source(s) for s in shards]
        elif is_llamafactory_info(p):
            out += _dataset_info_sources(p)
        else:
            out.append(Source(p))
    return out


def input_files(path: Path) -> list[Path]:
    """Every file an input is read from: the file itself; a folder's shards (every file of a saved
    dataset); a dataset_info.json and the files of the datasets it lists."""
    path = Path(path)
    if path.is_dir() and is_saved_dataset(path):
        return sorted(q for q in path.rglob("*") if q.is_file())
    files = {s.path for s in expand([path])}
    own = [path] if path.is_file() else []
    saved = [q for p in files if p.is_dir() for q in input_files(p)]  # a saved dataset a json names
    return own + sorted({p for p in files if p.is_file()} - set(own)) + saved


def fingerprint(path: Path) -> str:
    """The sha256 of an input: a file's own (so keys made before folders were inputs stay valid); for
    a folder or a dataset_info.json, of every file it is read from with its path relative to it, so a
    new or changed shard changes it and an unchanged folder does not."""
    path = Path(path)
    if path.is_file() and not is_llamafactory_info(path):
        return sha256_file(path)
    root = path if path.is_dir() else path.parent
    parts = [[os.path.relpath(f, root), sha256_file(f)] for f in input_files(path)]
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def input_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in input_files(Path(path)))


# LLaMA-Factory column names -> the keys of our alpaca / sharegpt readers
_ALPACA_COLUMNS = {
    "prompt": "instruction",
    "query": "input",
    "response": "output",
    "history": "history",
    "system": "system",
    "chosen": "chosen",
    "rejected": "rejected",
    "kto_tag": "kto_tag",
}
_SHAREGPT_COLUMNS = {
    "messages": "conversations",
    "system": "system",
    "tools": "tools",
    "chosen": "chosen",
    "rejected": "rejected",
    "kto_tag": "kto_tag",
}


def _dataset_info_sources(path: Path) -> list[Source]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable dataset_info.json ({exc})") from None
    if not isinstance(info, dict):
        raise InputError(f"{path}: expected an object of dataset entries, got a {type(info).__name__}")
    out: list[Source] = []
    skipped: list[str] = []
    for name, entry in info.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
            skipped.append(f"{name} (no local file_name)")
            continue
        target = path.parent / entry["file_name"]
        if not target.exists():
            skipped.append(f"{name} ({entry['file_name']} is not there)")
            continue
        try:
            source = _entry_source(name, entry, target)
        except InputError as exc:
            skipped.append(f"{name} ({exc})")
            continue
        for s in expand([target]) if target.is_dir() else [source]:
            s.fmt, s.rename, s.dataset = source.fmt, source.rename, name
            out.append(s)
    if not out:
        raise InputError(f"{path}: no dataset it lists is a local file here ({'; '.join(skipped[:5])})")
    if skipped:
        out[0].notes.append(
            f"{path}: {len(skipped)} entries not read: {', '.join(skipped[:6])}"
            + (" ..." if len(skipped) > 6 else "")
        )
    return out


def _entry_source(name: str, entry: dict, target: Path) -> Source:
    formatting = entry.get("formatting", "alpaca")
    columns = entry.get("columns") or {}
    if not isinstance(columns, dict):
        raise InputError("columns is not an object")
    ranking = bool(entry.get("ranking"))
    if formatting == "alpaca":
        if "prompt" in columns and "response" not in columns and not ranking and "query" not in columns:
            return Source(target, "text", _renames({columns["prompt"]: "text"}))  # a pretraining set
        wanted = {**{k: v for k, v in _ALPACA_COLUMNS.items()}, **columns}
        rename = {wanted[k]: ours for k, ours in _ALPACA_COLUMNS.items() if k in wanted}
        return Source(target, "alpaca", _renames(rename))
    if formatting in ("sharegpt", "openai"):
        wanted = {**_SHAREGPT_COLUMNS, **columns}
        rename = {wanted[k]: ours for k, ours in _SHAREGPT_COLUMNS.items() if k in wanted}
        fmt = "llamafactory-preference" if ranking else "sharegpt"
        return Source(target, fmt, _renames(rename))
    raise InputError(f"formatting {formatting!r} is not read")


def _renames(rename: dict[str, str]) -> dict[str, str]:
    return {src: dst for src, dst in rename.items() if src != dst}
