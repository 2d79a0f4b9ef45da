"""The teacher client keeps its key and its memory (#17 item 3, and the request count of item 8).

A local OpenAI-compatible endpoint on 127.0.0.1 misbehaves by path: it redirects to another host
(``localhost`` on a second port, which records whatever reaches it), redirects to itself (a loop),
echoes the request (headers and query) in an error body, drips its body byte by byte, sends a huge body
or a completion far longer than asked for. The acceptance test greps every file the run wrote, the
captured requests of the other host, stdout and stderr for the key and the URL's secret."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.augment.teachers import GenerationError, OpenAITeacher, TeacherCache, TeacherError
from curate.cli import main

KEY = "sk-test-TOPSECRET-4242"
QUERY_SECRET = "QSECRET-9731"


def _completion(text: str, **extra) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}], **extra}).encode()


class _Recorder(BaseHTTPRequestHandler):
    """The other host: answers 200 and records every request (headers, path, body)."""

    received: list[dict] = []

    def log_message(self, *a):
        pass

    def _record(self):
        n = int(self.headers.get("Content-Length") or 0)
        type(self).received.append(
            {
                "path": self.path,
                "headers": dict(self.headers),
                "body": self.rfile.read(n).decode("utf-8", "replace"),
            }
        )
        out = _completion("Final answer: stolen")
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_POST = do_GET = _record


class _Endpoint(BaseHTTPRequestHandler):
    other = ""  # base URL of the recorder
    hits: list[str] = []

    def log_message(self, *a):
        pass

    def _send(self, code: int, body: bytes, headers: dict | None = None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        type(self).hits.append(self.path)
        route = self.path.split("/")[1]
        if route == "redirect":
            return self._send(302, b"", {"Location": f"{self.other}/v1/chat/completions?from=redirect"})
        if route == "redirect307":
            return self._send(307, b"", {"Location": f"{self.other}/v1/chat/completions"})
        if route == "loop":
            return self._send(302, b"", {"Location": self.path})
        if route == "echo":  # an error body that echoes the request, key included
            echo = json.dumps({"error": "bad request", "headers": dict(self.headers), "path": self.path})
            return self._send(400, echo.encode())
        if route == "drip":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
            return None
        if route == "huge":
            chunk = b"x" * 65536
            self.send_response(200)
            self.end_headers()  # no Content-Length: the cap must hold while reading
            try:
                for _ in range(64):
                    self.wfile.write(chunk)
            except OSError:
                pass
            self.close_connection = True
            return None
        if route == "long":
            return self._send(200, _completion("word " * 5000))
        if route == "overcount":
            return self._send(200, _completion("short", usage={"completion_tokens": 999}))
        if route == "fail":
            return self._send(500, b'{"error": "boom"}')
        if route == "badjson":
            return self._send(200, b"{not json")
        user = body["messages"][-1]["content"]
        ref = (
            user.split("Reference answer:\n", 1)[1].split("\n\n", 1)[0] if "Reference answer:" in user else ""
        )
        return self._send(200, _completion(f"1. Recall the fact.\nFinal answer: {ref}"))


@pytest.fixture()
def endpoints():
    _Recorder.received = []
    _Endpoint.hits = []
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    main_srv = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    _Endpoint.other = f"http://localhost:{other.server_address[1]}"  # another host name, another port
    for s in (other, main_srv):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{main_srv.server_address[1]}"
    for s in (other, main_srv):
        s.shutdown()
        s.server_close()


def _teacher(url: str, **kw) -> OpenAITeacher:
    kw.setdefault("max_retries", 0)
    kw.setdefault("cache", TeacherCache(None))
    return OpenAITeacher(url, "m", backoff=0.01, **kw)


MSG = [[{"role": "user", "content": "hi"}]]


@pytest.mark.parametrize("route", ["redirect", "redirect307", "loop"])
def test_redirects_are_not_followed(endpoints, monkeypatch, route):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    t = _teacher(f"{endpoints}/{route}/v1")
    t0 = time.monotonic()
    with pytest.raises(TeacherError, match="redirects are not followed") as exc:
        t.generate(MSG)
    assert time.monotonic() - t0 < 5  # a loop ends at once
    assert _Recorder.received == []
    assert KEY not in str(exc.value)


def test_echoed_key_is_redacted(endpoints, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = _teacher(f"{endpoints}/echo/v1?api-key={QUERY_SECRET}").generate(MSG)
    assert isinstance(out[0], GenerationError)
    assert "HTTP 400" in str(out[0]) and KEY not in str(out[0]) and QUERY_SECRET not in str(out[0])


def test_overall_deadline_cuts_a_slow_drip(endpoints):
    t = _teacher(f"{endpoints}/drip/v1", timeout=1.0)
    t0 = time.monotonic()
    out = t.generate(MSG)
    elapsed = time.monotonic() - t0
    assert isinstance(out[0], GenerationError) and "deadline" in str(out[0])
    assert elapsed < 3, elapsed  # not the 10 s the drip would take, not 1 s per byte


def test_response_size_cap(endpoints):
    t = _teacher(f"{endpoints}/huge/v1", max_response_bytes=256 << 10, max_retries=2)
    out = t.generate(MSG)
    assert isinstance(out[0], GenerationError) and "max-response-bytes" in str(out[0])
    assert t.requests == 1  # not retried: the same request would bring the same body


@pytest.mark.parametrize("route,why", [("long", "characters"), ("overcount", "completion tokens")])
def test_completion_longer_than_max_new_tokens_is_rejected(endpoints, route, why):
    out = _teacher(f"{endpoints}/{route}/v1", max_new_tokens=64).generate(MSG)
    assert isinstance(out[0], GenerationError)
    assert why in str(out[0]) and "max-new-tokens 64" in str(out[0])


def test_requests_count_includes_failed_responses(endpoints):
    t = _teacher(f"{endpoints}/fail/v1", max_retries=1)
    assert isinstance(t.generate(MSG)[0], GenerationError)
    assert t.requests == 2
    t = _teacher(f"{endpoints}/badjson/v1", max_retries=2)
    assert isinstance(t.generate(MSG)[0], GenerationError)
    assert t.requests == 3


def _grep_tree(root: Path, *needles: str, skip: tuple[Path, ...] = ()) -> list[str]:
    found = []
    for p in root.rglob("*"):
        if p.is_file() and p not in skip:
            data = p.read_bytes()
            found += [f"{p}: {n}" for n in needles if n.encode() in data]
    return found


def test_teacher_key_never_leaves_the_client(endpoints, tmp_path, monkeypatch):
    """Acceptance: the key never reaches another host, stderr, a summary, a manifest or a cache."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    inp = tmp_path / "qa.jsonl"
    rows = [{"question": f"What does flag -{c} do?", "answer": f"It enables mode {c}."} for c in "abcd"]
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    outputs = []
    for route in ("redirect", "echo", "good"):
        url = f"{endpoints}/{route}/v1?api-key={QUERY_SECRET}"
        args = ["augment", str(inp), "-o", str(tmp_path / f"{route}.jsonl"), "--cot", "--teacher-url", url]
        args += ["--teacher-model", "t", "--cache", str(tmp_path / "teacher.sqlite"), "--lang", "en"]
        args += ["--max-retries", "0", "--timeout", "5", "--json"]
        r = runner.invoke(main, args)
        outputs.append((route, r.exit_code, r.stdout, r.stderr))
    for route in ("redirect", "echo", "good"):  # pairs with a model URL: the same client
        url = f"{endpoints}/{route}/v1?api-key={QUERY_SECRET}"
        args = ["pairs", str(inp), "-o", str(tmp_path / f"pairs-{route}.jsonl"), "--model-url", url]
        args += ["--model-name", "t", "--cache", str(tmp_path / "teacher.sqlite"), "--json"]
        r = runner.invoke(main, args)
        outputs.append((f"pairs-{route}", r.exit_code, r.stdout, r.stderr))
    codes = {route: code for route, code, _, _ in outputs}
    assert codes["redirect"] == 2 and codes["echo"] == 2 and codes["good"] == 0, outputs
    assert codes["pairs-redirect"] == 2 and codes["pairs-good"] == 0, outputs
    # a recipe with the secret in the teacher URL: manifest, its copy and the stage cache
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""name: leak
inputs: [qa.jsonl]
stages:
  - augment: {{cot: true, teacher_url: "{endpoints}/good/v1?api-key={QUERY_SECRET}", teacher_model: t,
               cache: teacher.sqlite, lang: en, max_retries: 0}}
outputs:
  data: out/data.jsonl
  manifest: out/manifest.json
work_dir: work
""",
        encoding="utf-8",
    )
    r = runner.invoke(main, ["run", str(recipe), "--json"])
    outputs.append(("recipe", r.exit_code, r.stdout, r.stderr))
    assert r.exit_code == 0, r.output
    assert list((tmp_path / "work").rglob("stats.json")) and list((tmp_path / "work").rglob("manifest.json"))
    assert _grep_tree(tmp_path, KEY, QUERY_SECRET, skip=(recipe,)) == []  # the recipe is the user's own
    for route, _, out, err in outputs:
        assert KEY not in out + err and QUERY_SECRET not in out + err, route
    assert _Recorder.received == []  # nothing, let alone the key, reached the other host
    assert any(h.startswith("/good/") for h in _Endpoint.hits)  # the key did go where it belongs
