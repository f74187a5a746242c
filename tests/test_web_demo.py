"""The demo library a newcomer meets: real, freely licensed music, every "Try:" song answered with a genre.

The library is built as ``scripts/setup.sh`` builds it: ``tools/fetch_debian_music.py``
downloads the Debian packages (cached in ``/tmp/genrify-debian-music``, so a rerun
needs no network), :func:`genrify.sources.demo.build_demo_library` cuts the clips.
Skipped, saying why, only when the Debian archive cannot be reached.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from genrify.sources.demo import DEMO_SONGS, build_demo_library, credits_text, demo_packages, read_credits
from genrify.web.app import create_app
from genrify.web.demo import SYNTHETIC_DEMO_NOTE
from genrify.web.settings import Settings
from helpers.server import ServerThread, real_classifier

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_CACHE = Path("/tmp/genrify-debian-music")


def fetch_demo_packages(out: Path = DEBIAN_CACHE) -> Path:
    """The demo's Debian packages, unpacked under ``out`` (skips the test when the archive is unreachable)."""
    if all((out / "unpacked" / p).is_dir() for p in demo_packages()):
        return out
    cmd = [sys.executable, str(ROOT / "tools" / "fetch_debian_music.py"), "--out", str(out)]
    for package in demo_packages():
        cmd += ["--package", package]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"the Debian archive could not be reached (apt-get download failed): {r.stderr.strip()[-300:]}")
    return out


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory, request):
    """``genrify serve``'s default set-up: no --library, the demo library built in the data folder."""
    debian = fetch_demo_packages()
    data = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENRIFY_DATA_DIR", str(data))
        mp.setenv("GENRIFY_CACHE_DIR", str(data / "cache"))
        build_demo_library(debian_dir=debian)
        with ServerThread(create_app(Settings(scan="blocking"), classifier=real_classifier(request))) as srv:
            srv.client = httpx.Client(base_url=srv.base, timeout=120)
            yield srv
            srv.client.close()


def test_the_demo_library_is_built_with_credits(demo_server):
    body = demo_server.client.get("/api/examples", params={"n": 10}).json()
    demo = body["demo"]
    assert demo["kind"] == "debian"
    credits = demo["credits"]
    assert [(c["title"], c["artist"], c["licence"], c["package"]) for c in credits] == [
        (s.title, s.artist, s.licence, s.package) for s in DEMO_SONGS]
    assert len({s.package for s in DEMO_SONGS}) >= 3  # varied sources, hence genres
    tracks = demo_server.client.get("/healthz").json()["library"]["tracks"]
    assert tracks == len(DEMO_SONGS)


@pytest.mark.slow
def test_every_try_song_is_answered_with_a_genre(demo_server):
    examples = demo_server.client.get("/api/examples", params={"n": 4}).json()["examples"]
    expected = [(s.artist, s.title) for s in DEMO_SONGS if s.example]
    assert [(e["artist"], e["title"]) for e in examples] == expected
    genres = []
    for ex in examples:
        r = demo_server.client.get("/api/predict", params={"artist": ex["artist"], "track": ex["title"]})
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["verdict"] == "genre", (ex, data["verdict"], data["top"])
        genres.append(data["top"][0][0])
    assert len(set(genres)) >= 3, genres  # varied genres, not one genre four times


def test_without_the_real_demo_the_server_says_so_and_serves_the_synthetic_one(tmp_path, request, caplog):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENRIFY_DATA_DIR", str(tmp_path / "data"))  # set-up never built it (offline)
        mp.setenv("GENRIFY_CACHE_DIR", str(tmp_path / "cache"))
        with ServerThread(create_app(Settings(scan="blocking", demo_per_genre=1),
                                     classifier=real_classifier(request))) as srv:
            body = httpx.get(srv.base + "/api/examples", timeout=60).json()
    assert body["demo"]["kind"] == "synthetic" and body["demo"]["note"] == SYNTHETIC_DEMO_NOTE
    assert "synthetic" in SYNTHETIC_DEMO_NOTE and "scripts/setup.sh" in SYNTHETIC_DEMO_NOTE
    assert body["examples"] and all("Synthetic" in e["artist"] for e in body["examples"])
    assert SYNTHETIC_DEMO_NOTE in caplog.text


def test_a_users_library_has_no_demo_label(tmp_path, request):
    (tmp_path / "music").mkdir()
    settings = Settings(library=str(tmp_path / "music"), library_db=str(tmp_path / "i.sqlite"), scan="blocking")
    with ServerThread(create_app(settings, classifier=real_classifier(request))) as srv:
        assert httpx.get(srv.base + "/api/examples", timeout=60).json() == {"examples": [], "demo": None}


def test_serve_help_credits_every_demo_song():
    r = subprocess.run([sys.executable, "-m", "genrify", "serve", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0
    for song in DEMO_SONGS:
        assert f'"{song.title}" by {song.artist} ({song.licence}; Debian package {song.package})' in r.stdout
    assert credits_text().count("\n") == len(DEMO_SONGS) - 1


def test_building_needs_the_packages_and_never_leaves_half_a_library(tmp_path):
    from genrify.errors import ConfigError

    with pytest.raises(ConfigError, match="missing"):
        build_demo_library(debian_dir=tmp_path / "nothing", out=tmp_path / "demo")
    assert not (tmp_path / "demo").exists() and read_credits(tmp_path / "demo") is None


@pytest.mark.slow
def test_serve_says_before_serving_that_the_demo_is_synthetic(tmp_path):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GENRIFY_DATA_DIR": str(tmp_path / "data"), "GENRIFY_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "genrify", "serve", "--port", str(port), "--log-level", "error"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "serving on" in out
    assert SYNTHETIC_DEMO_NOTE in err
