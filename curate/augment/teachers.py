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
parameters, messages), so a re-run pays for nothing twice. Heavy imports happen inside functions.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

Messages = list[dict[str, str]]
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RESPONSE_BYTES = 8 << 20  # a chat completion of a few thousand tokens is a few tens of KB
# a completion may hold at most max_new_tokens * this many characters: generous for any tokenizer
# (English averages ~4 characters per token, CJK ~1), tight enough to refuse a runaway body
MAX_CHARS_PER_TOKEN = 16


class TeacherError(RuntimeError):
    """A teacher that cannot be used at all (bad path, rejected key...): the run stops."""


class GenerationError(RuntimeError):
    """One request that failed after every retry: that row is reported, the run goes on."""


def dir_fingerprint(path: Path) -> str:
    """Content identity of a local model directory for cache keys: every file's name and size, the
    full bytes of files up to 64 MiB, and the first and last MiB of larger ones (weights)."""
    h = hashlib.sha256()
    for f in sorted(q for q in path.rglob("*") if q.is_file() and not q.name.startswith(".")):
        size = f.stat().st_size
        h.update(f"{f.relative_to(path)}:{size}".encode())
        with open(f, "rb") as fh:
            if size <= 64 << 20:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(size - (1 << 20))
                h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


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


# ------------------------------------------------------------------------------------------ OpenAI API


class RateLimiter:
    """At most ``rpm`` request starts per minute, spaced evenly, shared by all threads."""

    def __init__(self, rpm: float | None):
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class OpenAITeacher(Teacher):
    def __init__(
        self,
        url: str,
        model: str,
        cache: TeacherCache | None = None,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        rpm: float | None = None,
        max_retries: int = 5,
        backoff: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        extra_body: dict[str, Any] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ):
        super().__init__(cache, max_new_tokens, temperature)
        from curate.redact import public_url, url_secrets

        if not url.startswith(("http://", "https://")):
            raise TeacherError(f"teacher URL {public_url(url)!r} must start with http:// or https://")
        if timeout <= 0:
            raise TeacherError(f"timeout must be > 0 seconds, got {timeout}")
        if max_response_bytes < 1024:
            raise TeacherError(f"max_response_bytes must be at least 1024, got {max_response_bytes}")
        self.endpoint, self.public_endpoint = endpoint_urls(url)
        self.model = model
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.api_key_env = api_key_env
        self.max_response_bytes = max_response_bytes
        # strings that must never be quoted back: the key, and the credentials inside the URL
        self._secrets = [s for s in (self.api_key, *url_secrets(url)) if s]
        self._opener = urllib.request.build_opener(
            _NoRedirect(), _DeadlineHTTPHandler(), _DeadlineHTTPSHandler()
        )
        self.concurrency = max(1, concurrency)
        self.limiter = RateLimiter(rpm)
        self.max_retries = max_retries
        self.backoff = backoff
        self.timeout = timeout
        self.extra_body = extra_body or {}
        # the identity goes into the cache key and every variant's meta.teacher: never a query string
        # (an API key there) or user:password
        self.identity = f"openai:{self.public_endpoint}#{model}"
        self.retries = 0
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self._fatal: TeacherError | None = None
        self._lock = threading.Lock()

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, **self.extra_body}

    def redact(self, text: str) -> str:
        """``text`` quoted from the endpoint, without the key or the URL's credentials."""
        from curate.redact import redact_text

        return redact_text(text, self._secrets)

    def _request(self, msgs: Messages) -> str:
        try:
            return self._attempts(msgs)
        except GenerationError as exc:
            raise GenerationError(self.redact(str(exc))) from None

    def _fail(self, message: str) -> TeacherError:
        self._fatal = TeacherError(self.redact(message))
        return self._fatal

    def _attempts(self, msgs: Messages) -> str:
        body = {
            "model": self.model,
            "messages": msgs,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            **self.extra_body,
        }
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: str = ""
        for attempt in range(self.max_retries + 1):
            if self._fatal is not None:
                raise self._fatal
            self.limiter.wait()
            req = urllib.request.Request(self.endpoint, data=data, headers=headers, method="POST")
            retry_after = None
            with self._lock:
                self.requests += 1  # every attempt sent, answered or not
            try:
                raw = self._fetch(req)
                payload = json.loads(raw.decode("utf-8"))
                with self._lock:
                    usage = payload.get("usage") if isinstance(payload, dict) else None
                    for k in self.usage:
                        try:
                            self.usage[k] += int((usage if isinstance(usage, dict) else {}).get(k) or 0)
                        except (TypeError, ValueError):
                            pass
                return self._check_length(response_text(payload), usage)
            except _TooLarge as exc:
                raise GenerationError(str(exc)) from None  # the same request would bring it again
            except urllib.error.HTTPError as exc:
                try:
                    text = self.redact(_read_capped(exc, 4096).decode("utf-8", "replace")[:300])
                except (OSError, http.client.HTTPException, _TooLarge):
                    text = ""
                last = f"HTTP {exc.code}: {text}"
                if 300 <= exc.code < 400:
                    from curate.redact import public_url

                    where = public_url(exc.headers.get("Location") or "") if exc.headers else ""
                    raise self._fail(
                        f"{self.public_endpoint} answered HTTP {exc.code} (a redirect to {where or 'elsewhere'}); "
                        "redirects are not followed, so the key is never sent to another address: "
                        "give the final URL as the endpoint"
                    ) from None
                if exc.code in (401, 403):
                    raise self._fail(
                        f"{self.public_endpoint} refused the request ({last}); set the key in ${self.api_key_env}"
                    ) from None
                if exc.code == 404:
                    raise self._fail(
                        f"{self.public_endpoint}: {last} (check the URL and --teacher-model)"
                    ) from None
                if exc.code not in RETRY_STATUS:
                    raise GenerationError(last) from None
                ra = exc.headers.get("Retry-After") if exc.headers else None
                try:
                    retry_after = float(ra) if ra is not None else None
                except ValueError:
                    retry_after = None
            except (http.client.HTTPException, OSError, ValueError) as exc:
                # a dropped connection, a timeout or the deadline, a truncated body (IncompleteRead),
                # bytes that are not UTF-8 or not JSON: transient as far as one row can tell, so retried
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt == self.max_retries:
                break
            with self._lock:
                self.retries += 1
            delay = retry_after if retry_after is not None else self.backoff * (2**attempt)
            time.sleep(min(60.0, delay) * (1 + 0.1 * random.random()))
        raise GenerationError(f"gave up after {self.max_retries + 1} attempts: {last}")

    def _fetch(self, req: urllib.request.Request) -> bytes:
        """One attempt: the response body, within the overall deadline and the size cap."""
        sockets: list[socket.socket] = []
        req.tamis_sockets = sockets  # type: ignore[attr-defined] - filled by the connection on connect
        expired = threading.Event()

        def shut() -> None:
            expired.set()
            for sock in list(sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        watchdog = threading.Timer(self.timeout, shut)
        watchdog.daemon = True
        watchdog.start()
        late = TimeoutError(f"no complete response within the {self.timeout:g}s deadline")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                body = _read_capped(resp, self.max_response_bytes)
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set() and not isinstance(exc, urllib.error.HTTPError):
                raise late from None
            raise
        finally:
            watchdog.cancel()
        if expired.is_set():  # the shut socket ended the body early: what was read is cut short
            raise late
        return body

    def _check_length(self, text: str, usage: Any) -> str:
        """Refuse a completion longer than the ``max_new_tokens`` that were asked for."""
        reported = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if isinstance(reported, int) and reported > self.max_new_tokens:
            raise GenerationError(
                f"the endpoint returned {reported} completion tokens, more than --max-new-tokens "
                f"{self.max_new_tokens}: rejected"
            )
        limit = self.max_new_tokens * MAX_CHARS_PER_TOKEN
        if len(text) > limit:
            raise GenerationError(
                f"the completion has {len(text):,} characters, more than --max-new-tokens "
                f"{self.max_new_tokens} tokens can hold ({MAX_CHARS_PER_TOKEN} characters per token at "
                "most): rejected"
            )
        return text

    def _generate_uncached(self, prompts, positions, done) -> None:
        def one(args):
            p, msgs = args
            try:
                done(p, self._request(msgs))
            except GenerationError as exc:
                done(p, exc)
            except TeacherError:
                raise
            except Exception as exc:  # one bad response fails its row, never the run
                done(p, GenerationError(self.redact(f"{type(exc).__name__}: {exc}")))

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            list(pool.map(one, zip(positions, prompts, strict=True)))
        if self._fatal is not None:
            raise self._fatal


class _TooLarge(ValueError):
    """A response body over the size cap (not retried: the same request would bring it again)."""


def _read_capped(resp: Any, cap: int) -> bytes:
    """The body in chunks, refused as soon as it passes ``cap`` bytes (never read whole)."""
    length = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
    if length is not None and length.isdigit() and int(length) > cap:
        raise _TooLarge(f"the response is {int(length):,} bytes, over --max-response-bytes {cap:,}: refused")
    chunks, total = [], 0
    while True:
        chunk = resp.read(min(1 << 16, cap + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > cap:
            raise _TooLarge(f"the response passed --max-response-bytes {cap:,} bytes: refused")
        chunks.append(chunk)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: the request (and its Authorization header) stays with the endpoint the
    user named; the 3xx surfaces as an HTTPError that says where it pointed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _tracking(http_class: type, req: urllib.request.Request):
    """A connection class that hands its socket to the request's watchdog once connected."""

    class Tracked(http_class):  # type: ignore[misc, valid-type]
        def connect(self):
            super().connect()
            sockets = getattr(req, "tamis_sockets", None)
            if sockets is not None:
                sockets.append(self.sock)

    return Tracked


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def do_open(self, http_class, req, **kw):
        return super().do_open(_tracking(http_class, req), req, **kw)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class, req, **kw):
        return super().do_open(_tracking(http_class, req), req, **kw)


def endpoint_urls(url: str) -> tuple[str, str]:
    """(the URL requests go to: ``/chat/completions`` appended to the path, the query kept; the same
    without query, fragment or user:password, for cache keys, meta and messages)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path += "/chat/completions"
    endpoint = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    host = parts.netloc.rpartition("@")[2]
    return endpoint, urllib.parse.urlunsplit((parts.scheme, host, path, "", ""))


def response_text(payload: Any) -> str:
    """The assistant text of a /chat/completions response; GenerationError for any other shape
    (content as a list of parts: the text parts joined)."""
    if not isinstance(payload, dict):
        raise GenerationError(f"unexpected response: a JSON {type(payload).__name__}, not an object")
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise GenerationError(f"unexpected response shape: {str(payload)[:200]}") from None
    if content is None:
        raise GenerationError("the response has no message content")
    if isinstance(content, list):
        texts = [
            p if isinstance(p, str) else p.get("text")
            for p in content
            if isinstance(p, str) or (isinstance(p, dict) and p.get("type", "text") == "text")
        ]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise GenerationError(f"the response content has no text parts: {str(content)[:200]}")
        return "".join(texts)
    if not isinstance(content, str):
        raise GenerationError(f"the response content is a {type(content).__name__}, not text")
    return content


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
    cache = TeacherCache(None if no_cache else (cache_path or default_cache_path()))
    target = url or teacher
    if not target:
        raise TeacherError("no teacher: pass --teacher MODEL_DIR or --teacher-url URL")
    if target.startswith(("http://", "https://")):
        return OpenAITeacher(
            target,
            model or (teacher if url and teacher and not teacher.startswith("http") else "default"),
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
