"""Offline by construction (#17 item 7): the entry points switch the hub libraries off themselves.

Each command runs in a fresh interpreter without any *_OFFLINE variable, under a socket guard: every
`connect` / `getaddrinfo` is recorded and refused, and the test fails if any was attempted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curate import offline

ROOT = Path(__file__).resolve().parents[1]

GUARD = r"""
import json, socket, sys
log = sys.argv[1]
def deny(*args, **kwargs):
    with open(log, "a") as fh:
        fh.write(json.dumps(repr(args[:2])) + "\n")
    raise OSError("network refused by the test's socket guard")
socket.getaddrinfo = deny
socket.socket.connect = deny
socket.socket.connect_ex = deny
prog, sys.argv = sys.argv[2], sys.argv[2:]
import importlib
importlib.import_module({"curate": "curate.cli", "train": "train.cli"}[prog]).main()
"""


def _guarded(tmp_path: Path, *argv: str, extra_env: dict[str, str] | None = None):
    log = tmp_path / "connections.log"
    env = {k: v for k, v in os.environ.items() if k not in offline.OFFLINE_VARS and k != offline.ALLOW_ENV}
    env.update(
        PYTHONPATH=str(ROOT),
        HF_HOME=str(tmp_path / "hf-home"),  # an empty cache: the id below is certainly not in it
        TOKENIZERS_PARALLELISM="false",
        **(extra_env or {}),
    )
    proc = subprocess.run(
        [sys.executable, "-c", GUARD, str(log), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    attempts = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, attempts


@pytest.mark.slow  # a fresh interpreter that imports transformers (~10 s on a busy machine)
def test_train_plan_uncached_hub_id_opens_no_socket(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q?", "answer": "a."}) + "\n", encoding="utf-8")
    proc, attempts = _guarded(tmp_path, "train", "plan", str(data), "--model", "someorg/not-cached-model")
    assert attempts == [], f"network attempted: {attempts}\n{proc.stderr}"
    assert proc.returncode == 2, proc.stderr
    assert "not in the local Hugging Face cache" in proc.stderr


def test_filter_tokenizer_uncached_hub_id_opens_no_socket(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q?", "answer": "a."}) + "\n", encoding="utf-8")
    proc, attempts = _guarded(
        tmp_path, "curate", "filter", str(data), "-o", str(tmp_path / "o.jsonl"),
        "--set", "too-long.tokenizer=someorg/not-cached-tok",
    )  # fmt: skip
    assert attempts == [], f"network attempted: {attempts}\n{proc.stderr}"
    assert proc.returncode == 2, proc.stderr
    err = " ".join(proc.stderr.split())
    assert "not in the local Hugging Face cache" in err and "nothing was fetched" in err
    assert "couldn't connect" not in err.lower()  # the message must not read as if a download was tried


def test_enforce_sets_switches_unless_allowed():
    env: dict[str, str] = {"HF_HUB_OFFLINE": "0"}
    assert offline.enforce(env) is True
    assert all(env[v] == "1" for v in offline.OFFLINE_VARS)
    allowed = {offline.ALLOW_ENV: "1"}
    assert offline.enforce(allowed) is False
    assert not any(v in allowed for v in offline.OFFLINE_VARS)


@pytest.mark.parametrize("prog", ["curate", "train"])
def test_entry_points_enforce_on_import(prog):
    code = f"import os, {prog}.cli; print([os.environ.get(v) for v in {offline.OFFLINE_VARS!r}])"
    env = {k: v for k, v in os.environ.items() if k not in offline.OFFLINE_VARS and k != offline.ALLOW_ENV}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "['1', '1', '1']"
    env[offline.ALLOW_ENV] = "1"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[None, None, None]"
