"""Teacher models that write text for augmentation (chain-of-thought rationales, generated answers).

Two kinds, one interface (``generate(list of message lists) -> list of texts``):

- :class:`HFTeacher`: a local Hugging Face causal LM directory, through ``from_pretrained`` (local
  files only, safetensors, ``trust_remote_code`` off unless asked) and ``generate``.
- :class:`OpenAITeacher`: any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, llama.cpp server,
  Ollama, TGI, OpenAI...). The key comes from an environment variable; requests are retried with
  exponential backoff (429/5xx/connection errors, ``Retry-After`` honoured), spaced by a rate limit, and
  run ``concurrency`` at a time.

The endpoint is untrusted (a proxy, a misconfigured gateway, a hostile server), so the client keeps its
key and its memory: redirects are never followed (urllib's default handler would resend the
``Authorization`` header to whatever host a 302 names); the key and any URL secret are removed from
every text quoted from the endpoint (error bodies that echo the request); each attempt has an overall
deadline (``timeout``: connect, send, headers and body together, enforced by a watchdog that shuts the
socket, so a slow-drip body cannot hold a request past it) and a response-size cap
(``max_response_bytes``, read in chunks); a completion longer than ``max_new_tokens`` could be (more
than :data:`MAX_CHARS_PER_TOKEN` characters per token) is rejected with that reason.

Why the standard library and not ``httpx`` or the ``openai`` client: neither gives an overall deadline
or a size cap (their timeouts are per phase, and a body is read whole), so both would need the same
watchdog and chunked reading on top; ``httpx`` would strip the header on a cross-origin redirect, which
refusing redirects does too; and the ``openai`` client brings its own retry policy and a dependency for
one POST.

Both go through a :class:`TeacherCache` (SQLite on disk) keyed by (teacher identity, generation
parameters, messages), so a re-run pays for nothing twice. torch and transformers are imported when a
local model is loaded, never by importing this module.

Where the code lives: this module holds the local teacher and :func:`make_teacher`, and re-exports the
rest (import every teacher name from here); :mod:`curate.augment.teacher_base` the interface, the
cache and the errors; :mod:`curate.augment.endpoint` the endpoint teacher and its HTTP client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.augment.endpoint import (  # noqa: F401  (re-exported: the public names of the teachers)
    MAX_CHARS_PER_TOKEN,
    RETRY_STATUS,
    OpenAITeacher,
    RateLimiter,
    endpoint_urls,
    response_text,
)
from curate.augment.teacher_base import (  # noqa: F401  (re-exported)
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    GenerationError,
    Messages,
    Teacher,
    TeacherCache,
    TeacherError,
    default_cache_path,
    dir_fingerprint,
)

# ------------------------------------------------------------------------------------------ local HF


class HFTeacher(Teacher):
    def __init__(
        self,
        path: str | Path,
        cache: TeacherCache | None = None,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        batch_size: int = 8,
        device: str = "auto",
        trust_remote_code: bool = False,
        seed: int = 0,
    ):
        super().__init__(cache, max_new_tokens, temperature)
        p = Path(path).expanduser()
        if not p.is_dir() or not (p / "config.json").is_file():
            raise TeacherError(
                f"teacher {path!r}: not a local model directory with config.json; tamis never downloads "
                "models, so save the model locally first, or pass an OpenAI-compatible URL"
            )
        self.path = p
        self.batch_size = batch_size
        self.device = device
        self.trust_remote_code = trust_remote_code
        self.seed = seed
        self.identity = f"hf:{p.name}@{dir_fingerprint(p)}"
        self._model = None
        self._tok = None

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, "seed": self.seed}

    def _load(self):
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            tok = AutoTokenizer.from_pretrained(
                str(self.path), local_files_only=True, trust_remote_code=self.trust_remote_code
            )
            model = AutoModelForCausalLM.from_pretrained(
                str(self.path),
                local_files_only=True,
                trust_remote_code=self.trust_remote_code,
                use_safetensors=True,
            )
        except (OSError, ValueError) as exc:
            raise TeacherError(f"teacher {self.path}: cannot load: {exc}") from exc
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self._tok, self._model = tok, model.to(device).eval()
        self._device = device

    def _encode(self, msgs: Messages) -> list[int]:
        tok = self._tok
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        text = "\n\n".join(f"{m['role']}: {m['content']}" for m in msgs) + "\n\nassistant:"
        return tok(text, add_special_tokens=True)["input_ids"]

    def _generate_uncached(self, prompts, positions, done) -> None:
        import torch

        self._load()
        tok, model = self._tok, self._model
        max_ctx = getattr(model.config, "max_position_embeddings", None) or 4096
        for s in range(0, len(prompts), self.batch_size):
            batch = prompts[s : s + self.batch_size]
            pos = positions[s : s + self.batch_size]
            encoded = [self._encode(m) for m in batch]
            budget = max(1, max_ctx - self.max_new_tokens)
            encoded = [e[-budget:] for e in encoded]  # keep the end (the instruction) if too long
            width = max(len(e) for e in encoded)
            pad = tok.pad_token_id
            input_ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=self._device)
            mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=self._device)
            kwargs: dict[str, Any] = {
                "max_new_tokens": self.max_new_tokens,
                "pad_token_id": pad,
                "eos_token_id": tok.eos_token_id,
            }
            if self.temperature > 0:
                torch.manual_seed(self.seed)
                kwargs.update(do_sample=True, temperature=self.temperature)
            else:
                kwargs.update(do_sample=False)
            with torch.no_grad():
                gen = model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
            self.requests += len(batch)
            for p, seq in zip(pos, gen[:, width:].tolist(), strict=True):
                done(p, tok.decode(seq, skip_special_tokens=True).strip())


def resolve_target(teacher: str | None, url: str | None, model: str | None) -> tuple[str, str | None]:
    """(what serves the generations: a local model directory or an endpoint URL, the model name sent
    to that endpoint or None for a local model). ``url`` wins over ``teacher``; then a ``teacher`` that
    is not a URL names the served model when ``model`` does not."""
    target = url or teacher
    if not target:
        raise TeacherError("no model: pass --model MODEL_DIR or --model-url URL")
    if not target.startswith(("http://", "https://")):
        return target, None
    return target, model or (teacher if url and teacher and not teacher.startswith("http") else "default")


def make_teacher(
    teacher: str | None,
    *,
    url: str | None = None,
    model: str | None = None,
    cache_path: str | Path | None = None,
    no_cache: bool = False,
    max_new_tokens: int = 512,
    temperature: float = 0.0,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 4,
    rpm: float | None = None,
    max_retries: int = 5,
    backoff: float = 1.0,
    batch_size: int = 8,
    device: str = "auto",
    trust_remote_code: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Teacher:
    """``teacher`` is a local model directory or an http(s) URL (then ``model`` names the served model);
    ``url`` is the explicit form of the latter."""
    target, served = resolve_target(teacher, url, model)
    cache = TeacherCache(None if no_cache else (cache_path or default_cache_path()))
    if served is not None:
        return OpenAITeacher(
            target,
            served,
            cache=cache,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            api_key_env=api_key_env,
            concurrency=concurrency,
            rpm=rpm,
            max_retries=max_retries,
            backoff=backoff,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
        )
    return HFTeacher(
        target,
        cache=cache,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        batch_size=batch_size,
        device=device,
        trust_remote_code=trust_remote_code,
    )
