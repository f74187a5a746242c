"""``collect`` and ``genrify collect`` against the real local fake provider."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genrify.audio import sniff_audio
from genrify.errors import ConfigError
from genrify.sources.collect import collect, make_provider, safe_name, track_stem
from genrify.sources.http import HttpClient, HttpConfig, ProviderRequestError
from helpers.fakeprovider import FakeProvider

FAST = HttpConfig(connect_timeout=1.0, read_timeout=1.0, deadline=2.0, retries=1, backoff=0.01, max_backoff=0.05)
GENRES = ["metal", "jazz", "classical"]
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def client():
    with HttpClient(FAST) as c:
        yield c


def manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def audio_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".mp3", ".m4a"))


def assert_consistent(out: Path) -> list[dict]:
    """Manifest rows and audio files agree one to one, every file is whole audio, no temporaries."""
    rows = manifest(out)
    assert sorted(out / r["path"] for r in rows) == audio_files(out)
    for p in audio_files(out):
        assert sniff_audio(p.read_bytes()[:16]) is not None, p
    assert [p for p in out.rglob("*") if p.name.endswith(".part")] == []
    return rows


def genrify(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "genrify", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


# -- file names ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_safe_name_is_always_one_harmless_component(text):
    name = safe_name(text)
    assert name and "/" not in name and "\\" not in name and "\x00" not in name
    assert all(ch.isprintable() for ch in name)
    assert not name.startswith(".") and name not in ("..", ".")
    assert len(name.encode("utf-8")) <= 100
    assert name == name.strip()


def test_track_stem_examples():
    assert track_stem("AC/DC", "Back in Black") == "AC_DC - Back in Black"
    assert track_stem("..", "\x00\x07") == "Unknown - Unknown"
    assert track_stem("Björk", "Jóga") == "Björk - Jóga"
    assert len(track_stem("é" * 500, "ü" * 500).encode()) <= 200


# -- collect ----------------------------------------------------------------------------------


def test_collect_writes_layout_manifest_and_reports_duplicates(fp, client, tmp_path):
    out = tmp_path / "out"
    dz = make_provider("deezer", base_url=fp.deezer_url, client=client)
    seen = []
    summary = collect(provider=dz, genres=GENRES, per_genre=5, out=out,
                      progress=lambda done, total, genre: seen.append((done, total)))
    assert summary.counts == {"metal": 5, "jazz": 5, "classical": 5} and summary.downloaded == 15
    assert seen[-1] == (15, 15) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    rows = assert_consistent(out)
    assert {r["genre"] for r in rows} == set(GENRES)
    for r in rows:
        path = Path(r["path"])
        assert path.parts[0] == r["genre"] and path.suffix == ".mp3" and r["provider"] == "deezer"
        assert (out / path).read_bytes() == fp.audio_bytes(int(r["track_id"]), "mp3")
    # the track in a metal and a jazz playlist is kept under metal (first genre) and reported
    assert [(d.track_id, d.kept_genre, d.also_in) for d in summary.duplicates] == [("9001", "metal", "jazz")]
    with open(out / "duplicates.csv", newline="") as f:
        dups = list(csv.DictReader(f))
    assert dups == [{"provider": "deezer", "track_id": "9001", "artist": "Crossover Quartet", "title": "Both Ways",
                     "kept_genre": "metal", "also_in": "jazz"}]
    assert sum(r["track_id"] == "9001" for r in rows) == 1
    # names are sanitised: separators, quotes and control characters never reach the file system
    weird = next(r for r in rows if r["track_id"] == "9004")
    assert weird["path"] == "metal/AC_DC_Tribute - Back in _Black_.mp3"
    assert weird["artist"] == "AC/DC\\Tribute"  # the manifest keeps the real names
    text = summary.render()
    assert "Crossover Quartet - Both Ways: kept in metal, skipped in jazz" in text and len(text.splitlines()) < 25


def test_collect_skips_the_same_song_under_another_id_and_reports_short_genres(fp, client, tmp_path):
    out = tmp_path / "out"
    dz = make_provider("deezer", base_url=fp.deezer_url, client=client)
    summary = collect(provider=dz, genres=["metal", "polka"], per_genre=50, out=out)
    rows = assert_consistent(out)
    # metal: 6 own tracks + crossover + weird names; 9003 (same artist and title as 1000) and 9002 (no preview) are not
    assert summary.counts == {"metal": 8, "polka": 0}
    assert "9003" not in {r["track_id"] for r in rows} and "9002" not in {r["track_id"] for r in rows}
    assert summary.short == {"metal": 8, "polka": 0}


def test_collect_from_itunes_writes_m4a(fp, client, tmp_path):
    out = tmp_path / "out"
    it = make_provider("itunes", base_url=fp.itunes_url, client=client)
    summary = collect(provider=it, genres=["jazz", "classical"], per_genre=3, out=out)
    rows = assert_consistent(out)
    assert summary.counts == {"jazz": 3, "classical": 3}
    assert all(r["path"].endswith(".m4a") and r["provider"] == "itunes" for r in rows)
    from genrify.audio import load_audio

    y, sr = load_audio(out / rows[0]["path"], sr=None)
    assert len(y) > sr


def test_collect_resumes_after_a_limit_without_downloading_twice(fp, client, tmp_path):
    out = tmp_path / "out"
    dz = make_provider("deezer", base_url=fp.deezer_url, client=client)
    first = collect(provider=dz, genres=GENRES, per_genre=4, out=out, max_downloads=5)
    assert first.stopped_early and first.downloaded == 5
    assert len(assert_consistent(out)) == 5
    media_before = fp.count(r"^/media/")
    second = collect(provider=dz, genres=GENRES, per_genre=4, out=out)
    assert not second.stopped_early and second.downloaded == 7
    assert fp.count(r"^/media/") - media_before == 7
    assert len(assert_consistent(out)) == 12
    # a third run has nothing to do and asks the provider nothing
    n = len(fp.requests)
    third = collect(provider=dz, genres=GENRES, per_genre=4, out=out)
    assert third.downloaded == 0 and len(fp.requests) == n and third.counts == second.counts


def test_collect_recovers_files_written_after_the_last_manifest(fp, client, tmp_path):
    out = tmp_path / "out"
    dz = make_provider("deezer", base_url=fp.deezer_url, client=client)
    collect(provider=dz, genres=["jazz"], per_genre=4, out=out)
    (out / "manifest.csv").unlink()  # as if killed before the manifest was rewritten
    (out / "jazz" / ".Jazz Band 9 - x.mp3.abc123.part").write_bytes(b"ID3 half a file")  # and mid-write
    media_before = fp.count(r"^/media/")
    again = collect(provider=dz, genres=["jazz"], per_genre=4, out=out)
    assert again.downloaded == 0 and again.adopted == 4 and fp.count(r"^/media/") == media_before
    assert len(assert_consistent(out)) == 4


def test_a_bad_preview_costs_one_song_not_the_run(fp, client, tmp_path):
    out = tmp_path / "out"
    fp.fail(r"^/media/mp3/1013\.mp3", "html")
    fp.fail(r"^/media/mp3/1014\.mp3", "500")
    dz = make_provider("deezer", base_url=fp.deezer_url, client=client)
    summary = collect(provider=dz, genres=["classical"], per_genre=4, out=out)
    rows = assert_consistent(out)
    assert summary.counts == {"classical": 4}
    assert {f.track_id for f in summary.failures} == {"1013", "1014"}
    assert not {"1013", "1014"} & {r["track_id"] for r in rows}
    assert "instead of audio" in summary.render()


def test_collect_stops_with_one_clear_error_when_the_provider_is_unreachable(client, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dz = make_provider("deezer", base_url=f"http://127.0.0.1:{port}", client=client)
    with pytest.raises(ProviderRequestError, match=f"cannot reach 127.0.0.1:{port}"):
        collect(provider=dz, genres=["jazz"], per_genre=2, out=tmp_path / "out")
    assert manifest(tmp_path / "out") == []


def test_collect_validates_its_arguments(fp, client, tmp_path):
    dz = make_provider("deezer", base_url=fp.deezer_url, client=client)
    with pytest.raises(ConfigError):
        collect(provider=dz, genres=[" ", ""], per_genre=3, out=tmp_path)
    with pytest.raises(ConfigError):
        collect(provider=dz, genres=["jazz"], per_genre=0, out=tmp_path)
    with pytest.raises(ConfigError):
        make_provider("spotify")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):
        collect(provider=dz, genres=["jazz"], per_genre=1, out=tmp_path / "file")


# -- the command line -------------------------------------------------------------------------


def test_cli_collect_runs_and_resumes(fp, tmp_path):
    out = tmp_path / "previews"
    args = ["collect", "--base-url", fp.deezer_url, "--genres", "metal,jazz", "--per-genre", "3", str(out)]
    r = genrify(*args, "--max-downloads", "2")
    assert r.returncode == 0, r.stderr
    assert "stopped early" in r.stdout and len(assert_consistent(out)) == 2
    r = genrify(*args)
    assert r.returncode == 0, r.stderr
    assert "metal" in r.stdout and "manifest:" in r.stdout and "Traceback" not in r.stderr
    assert len(assert_consistent(out)) == 6


def test_cli_collect_itunes(fp, tmp_path):
    out = tmp_path / "previews"
    r = genrify("collect", "--provider", "itunes", "--base-url", fp.itunes_url, "--genres", "classical",
                "--per-genre", "2", str(out))
    assert r.returncode == 0, r.stderr
    assert [Path(x["path"]).suffix for x in assert_consistent(out)] == [".m4a", ".m4a"]


@pytest.mark.parametrize("base_url, message", [
    ("http://127.0.0.1:{port}", "genrify: error: cannot reach 127.0.0.1:{port}: connection refused"),
    ("http://no-such-host.invalid", "genrify: error: cannot reach no-such-host.invalid: offline or DNS failure"),
])
def test_cli_collect_unreachable_prints_one_line_and_fails(tmp_path, base_url, message):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = genrify("collect", "--base-url", base_url.format(port=port), "--genres", "jazz", "--per-genre", "2",
                "--retries", "0", "--timeout", "2", str(tmp_path / "out"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [message.format(port=port)]
    assert "Traceback" not in r.stderr


def test_cli_collect_killed_midway_leaves_only_whole_files_and_a_rerun_completes(fp, tmp_path):
    out = tmp_path / "previews"
    fp.fail(r"^/media/", "delay", delay=0.15)
    args = [sys.executable, "-m", "genrify", "collect", "--base-url", fp.deezer_url, "--genres", "metal,jazz",
            "--per-genre", "5", "--no-progress", str(out)]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(audio_files(out) if out.exists() else []) < 3:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    written = audio_files(out)
    assert 3 <= len(written) < 10
    for p in written:  # whole files only, nothing half written under a real name
        assert p.read_bytes() == fp.audio_bytes(_track_id_of(fp, p), "mp3")
    fp.reset()
    r = genrify("collect", "--base-url", fp.deezer_url, "--genres", "metal,jazz", "--per-genre", "5", str(out))
    assert r.returncode == 0, r.stderr
    rows = assert_consistent(out)
    assert len(rows) == 10 and fp.count(r"^/media/") == 10 - len(written)


def _track_id_of(fp: FakeProvider, path: Path) -> int:
    return next(t.id for t in fp.tracks.values() if track_stem(t.artist, t.title) == path.stem)
