"""``genrify serve``: the command that starts the web app, on a real port of 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from helpers.server import make_library  # noqa: E402


def test_serve_command(tmp_path, request):
    """``genrify serve`` starts, scans its library, binds 127.0.0.1 by default and answers."""
    from genrify.predict import default_model_path

    model = default_model_path() if default_model_path().is_file() else request.getfixturevalue("tiny_cnn_model")
    library = tmp_path / "library"
    rows = make_library(library, tmp_path / "outside")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GENRIFY_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "genrify", "serve", "--model", str(model), "--library", str(library),
         "--port", str(port), "--scan", "blocking", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "genrify serve did not start"
                time.sleep(0.2)
        assert health["library"]["tracks"] == len(rows) + 1
        row = rows[0]
        r = httpx.get(f"http://127.0.0.1:{port}/d/music-prediction",
                      params={"artist": row["artist"], "track": row["title"]}, timeout=60)
        assert r.json()["response"] is True
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}" in out
    bad = subprocess.run([sys.executable, "-m", "genrify", "serve", "--model", str(tmp_path / "missing.genrify")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "no such model file" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_serve_on_a_busy_port_fails_before_saying_it_serves(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "GENRIFY_CACHE_DIR": str(tmp_path / "cache")}
        r = subprocess.run([sys.executable, "-m", "genrify", "serve", "--port", str(port), "--library", str(tmp_path)],
                           env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "serving on" not in r.stdout
    assert f"port {port}" in r.stderr and "in use" in r.stderr and "--port" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
