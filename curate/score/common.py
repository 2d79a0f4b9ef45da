"""Pieces shared by the model scorers: devices and dtypes, model resolution and fingerprints, chat
templates, token-budget batching and row keys (progress: curate.progress).

Nothing here imports torch or transformers at module level.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.core import vocab
from curate.core.coerce import OptionError
from curate.core.errors import TamisError
from curate.core.vocab import sha256_file

# samples/models next to the package in a source checkout (a fresh clone); TAMIS_MODELS overrides.
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
EMBEDDED_NAMES = {"lm": "lm", "reward": "reward", "quality": "quality.ftz"}


class ScoreError(TamisError):
    """A problem the user can fix (missing model, wrong kind of model, no chat template...)."""


class ScoreOptionError(OptionError, ScoreError):
    """A ScoreError about one setting (``key``, or the ones in ``mentions``): the caller spells it, as
    ``--device`` on the command line or ``stages[i].score.device`` in a recipe."""


def embedded_models_dir() -> Path:
    env = os.environ.get("TAMIS_MODELS")
    return Path(env) if env else REPO_ROOT / "samples" / "models"


def embedded_model(kind: str) -> Path:
    """Path of an embedded default model (``lm``, ``reward``, ``quality``); ScoreError if absent."""
    path = embedded_models_dir() / EMBEDDED_NAMES[kind]
    if not path.exists():
        raise ScoreError(
            f"no embedded default {kind} model at {path} (run `python samples/models/build.py` in a "
            f"source checkout, set TAMIS_MODELS, or pass a model explicitly)"
        )
    return path


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScoreOptionError("device", f"{device}: no CUDA device is available on this machine")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ScoreOptionError("device", f"{device!r}: expected auto, cpu or cuda[:N]")
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto``: bfloat16 on a GPU that supports it, float32 otherwise (CPU scoring stays exact)."""
    import torch

    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    names.update({"float16": torch.float16, "fp16": torch.float16})
    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in names:
        raise ScoreOptionError("dtype", f"{dtype!r}: expected auto, float32, bfloat16 or float16")
    return names[dtype]


def local_model_dir(name_or_path: str | Path) -> Path:
    """A local directory for a model given as a path or a hub id already in the local HF cache.

    Never downloads: a hub id that is not cached locally is an error that says so.
    """
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ScoreError(f"model path {p} is a file; expected a model directory (config.json, weights)")
        if not (p / "config.json").exists():
            raise ScoreError(f"model directory {p} has no config.json: not a Hugging Face model")
        return p
    text = str(name_or_path)
    is_hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", text) is not None and not text.startswith((".", "~"))
    if not is_hub_id:
        raise ScoreError(f"model path {text} does not exist")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(text, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any hub failure means "not available offline"
        raise ScoreError(
            f"model {text!r} is neither a local directory nor a hub id in the local cache; tamis never "
            f"downloads models while scoring. Download it first (e.g. `hf download {text}`) or pass a "
            f"local path. ({type(exc).__name__})"
        ) from None
    return Path(local)


SMALL_FILE = 4 << 20  # files up to this size are hashed inline on every run


def hash_memo_path() -> Path:
    """Where whole-file hashes of large weight files are remembered between runs:
    ``$TAMIS_HASH_MEMO``, else ``$XDG_CACHE_HOME/tamis/file-hashes.sqlite`` (``~/.cache`` by default)."""
    env = os.environ.get("TAMIS_HASH_MEMO")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tamis" / "file-hashes.sqlite"


def _sha256_file(path: Path) -> str:  # a seam of its own: tests count the reads
    return sha256_file(path, block=8 << 20)


def file_sha256(path: Path) -> str:
    """SHA-256 of the whole file, memoised by (resolved path, size, mtime, ctime, inode).

    Any rewrite of the file (a retrain, a copy over it, a rename onto it) changes its ctime or inode, so
    a remembered hash is reused only for the very same file; otherwise it is read again in full. The memo
    is a small SQLite file (:func:`hash_memo_path`); when it cannot be written the hash is simply
    computed every run.
    """
    real = path.resolve()
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    memo = hash_memo_path()
    db = None
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(memo), timeout=30)
        db.execute(
            "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
            "ctime_ns INTEGER, ino INTEGER, sha256 TEXT NOT NULL)"
        )
        row = db.execute(
            "SELECT sha256 FROM hashes WHERE path = ? AND size = ? AND mtime_ns = ? AND ctime_ns = ? "
            "AND ino = ?",
            key,
        ).fetchone()
        if row is not None:
            return row[0]
    except (OSError, sqlite3.Error):
        if db is not None:
            db.close()
        db = None
    try:
        digest = _sha256_file(real)
        if db is not None and real.stat().st_mtime_ns == st.st_mtime_ns:  # unchanged while reading
            try:
                db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)", (*key, digest))
                db.commit()
            except sqlite3.Error:
                pass
        return digest
    finally:
        if db is not None:
            db.close()


def _whole_file(path: Path, size: int) -> Iterator[bytes]:
    """A file's bytes for a score fingerprint: inline up to :data:`SMALL_FILE`, else its remembered
    SHA-256 (every byte counts: a retrain may change only tensors in the middle of a weight file)."""
    if size <= SMALL_FILE:
        yield path.read_bytes()
    else:
        yield f"sha256:{file_sha256(path)}\n".encode()


def fingerprint(model_dir: Path, settings: dict[str, Any]) -> str:
    """A content fingerprint of a model directory plus the scorer settings
    (:func:`curate.core.vocab.dir_fingerprint`).

    Every file is hashed whole: small files (config, tokenizer, chat template) inline, large ones
    (weights) through their SHA-256, which :func:`file_sha256` remembers per (path, size, mtime, ctime,
    inode) so that only the first run after a model changes reads the gigabytes.
    """
    seed = json.dumps(settings, sort_keys=True, default=str).encode()
    return vocab.dir_fingerprint(model_dir, entry="{rel}:{size}\n", content=_whole_file, seed=seed)[:16]


def read_model_config(path: Path, trust_remote_code: bool):
    """The model's config (``config.json``); a ScoreError naming the model when it cannot be read."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise ScoreError(f"cannot read the model config of {path}: {exc}") from None


def load_weights(auto_class, path: Path, dtype, trust_remote_code: bool):
    """``(model, loading info)`` from safetensors weights only (never a pickle); the loading info
    names missing weights, which the scorers refuse (random weights give meaningless scores)."""
    return auto_class.from_pretrained(
        str(path),
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        output_loading_info=True,
    )


@dataclass
class ModelSettings:
    """What every model-based scorer takes (the perplexity and the reward scorer)."""

    model: str | Path
    device: str = "auto"
    dtype: str = "auto"
    max_tokens: int = 2048
    token_budget: int = 16384  # padded tokens per forward pass
    max_batch: int = 64
    chat_template: str | Path | None = None
    trust_remote_code: bool = False


class ModelScorer:
    """A scorer with a model and its tokenizer: :meth:`load_model` resolves the device and dtype, finds
    the model locally (never downloaded), loads the tokenizer (which must have a chat template, or get
    one from ``template_option``), the model, the token limit and the pad id."""

    name: str  # the scorer ("ppl", "reward")
    template_option: str  # the setting that supplies a chat template ("lm_chat_template")
    fingerprint: str  # the model's files and the settings that change its scores

    def load_model(
        self, config: ModelSettings, model, tokenizer, loader: Callable, tokenizer_loader: Callable
    ) -> None:
        """``model``/``tokenizer``: already loaded ones (tests share them); ``loader(model_dir, dtype,
        trust_remote_code)`` loads the model (its weights checked) otherwise, ``tokenizer_loader`` (the
        scorer module's :func:`load_tokenizer`) the tokenizer."""
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.model_dir = local_model_dir(config.model) if model is None else Path(str(config.model))
        if (
            tokenizer is None
            and config.chat_template is not None
            and not Path(config.chat_template).is_file()
        ):
            raise ScoreOptionError(
                self.template_option, f"{config.chat_template}: no such file (expected a Jinja template)"
            )
        self.tok = tokenizer or tokenizer_loader(
            self.model_dir, config.chat_template, trust_remote_code=config.trust_remote_code
        )
        require_chat_template(self.tok, str(config.model), self.template_option)
        if model is None:
            model = loader(self.model_dir, self.dtype, config.trust_remote_code)
            model.to(self.device)
        self.model = model
        self.model.eval()
        limit = getattr(self.model.config, "max_position_embeddings", None) or config.max_tokens
        self.max_tokens = max(8, min(config.max_tokens, int(limit)))
        pad = self.tok.pad_token_id
        if pad is None:
            pad = self.tok.eos_token_id if self.tok.eos_token_id is not None else 0
        self.pad_id = int(pad)

    def _free(self) -> None:
        """After a failed batch (out of memory): release the cached GPU memory before the rows are
        retried one by one (:func:`isolate`)."""
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        """The model as the summary, the models file and the score cache record it."""
        return {
            "scorer": self.name,
            "model": str(self.config.model),
            "path": str(self.model_dir),
            "fingerprint": self.fingerprint,
            "architecture": type(self.model).__name__,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
            "max_tokens": self.max_tokens,
        }


def load_tokenizer(model_dir: Path, chat_template: str | Path | None, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar per model; the stage draws its own rows bar
    hf_logging.disable_progress_bar()

    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise ScoreError(f"cannot load the tokenizer of {model_dir}: {exc}") from None
    if chat_template is not None:  # checked by ModelScorer.load_model, which names the setting
        tok.chat_template = Path(chat_template).read_text(encoding="utf-8")
    return tok


def require_chat_template(tok, model_name: str, option: str) -> None:
    if not getattr(tok, "chat_template", None):
        raise ScoreOptionError(
            None,
            f"{model_name} has no chat template, so questions and answers cannot be laid out the way the "
            f"model expects. Use an instruct/chat model, or give a Jinja template with {{{option}}}.",
            mentions=(option,),
        )


def render(tok, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def row_key(row_id: str | None, payload: Any) -> str:
    """The cache key of one row: its id plus a hash of exactly what is scored."""
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)
    return f"{row_id or ''}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def budget_batches(lengths: Sequence[int], token_budget: int, max_batch: int) -> Iterator[list[int]]:
    """Indices grouped into length buckets: sorted longest first (a too-large batch fails early, not at
    the end), each batch's padded size (rows x longest) kept under ``token_budget``."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batch: list[int] = []
    longest = 0
    for i in order:
        n = max(lengths[i], 1)
        new_longest = max(longest, n)
        if batch and ((len(batch) + 1) * new_longest > token_budget or len(batch) >= max_batch):
            yield batch
            batch, new_longest = [], n
        batch.append(i)
        longest = new_longest
    if batch:
        yield batch


def isolate(fn: Callable[[list], list], items: list, on_error: Callable[[], None] = lambda: None):
    """Run ``fn`` on a batch; if it raises, split the batch until the failing item is alone.

    Yields ``(index, value)``, where value is ``fn``'s result for that item or an error string: one bad
    row never takes its batch down with it.
    """
    try:
        yield from enumerate(fn(items))
        return
    except Exception as exc:  # noqa: BLE001 - a model, shape or memory error on this batch
        on_error()
        if len(items) == 1:
            yield 0, f"model error: {type(exc).__name__}: {str(exc)[:200]}"
            return
    half = len(items) // 2
    yield from isolate(fn, items[:half], on_error)
    for i, v in isolate(fn, items[half:], on_error):
        yield i + half, v
