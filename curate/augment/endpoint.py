"""The OpenAI-compatible endpoint teacher (:class:`OpenAITeacher`) and its HTTP client: any
``/chat/completions`` endpoint (vLLM, llama.cpp server, Ollama, TGI, OpenAI...). See
:mod:`curate.augment.teachers` for why the client is the standard library and what it guards against
(redirects, secrets in quoted text, an overall deadline, a response-size cap).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from curate.augment.teacher_base import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    GenerationError,
    Messages,
    Teacher,
    TeacherCache,
    TeacherError,
)
from curate.redact import public_url, redact_text, url_secrets

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# a completion may hold at most max_new_tokens * this many characters: generous for any tokenizer
# (English averages ~4 characters per token, CJK ~1), tight enough to refuse a runaway body
MAX_CHARS_PER_TOKEN = 16


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
                        f"{self.public_endpoint}: {last} (check the URL and --model-name)"
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
