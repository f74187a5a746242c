"""genrify audit: real clips, a real SQLite dataset built by genrify, faults injected and found."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genrify.audit.duplicates import exact_pairs, group_pairs
from genrify.audit.fingerprints import FINGERPRINT_SR, fingerprint, matching_pairs
from genrify.audit.labels import artist_table, balance_table
from genrify.cli import main
from genrify.dataset import Dataset
from genrify.dataset.build import build_dataset
from genrify.dataset.exclusions import read_exclusions
from genrify.errors import DatasetError

GENRES = ("classical", "metal", "reggae")


def _clip_audio(seconds: float, seed: int) -> np.ndarray:
    """A changing, chord-like signal (what Chromaprint keys on), different for every seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FINGERPRINT_SR)) / FINGERPRINT_SR
    y = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.5):
        f = rng.uniform(150, 1200, size=3)
        seg = (t >= start) & (t < start + 0.5)
        y[seg] = sum(np.sin(2 * np.pi * fi * t[seg]) for fi in f)
    return (0.2 * y).astype(np.float32)


def test_fingerprints_match_a_louder_copy_and_a_trim_but_not_another_song():
    a = _clip_audio(12, seed=1)
    fps = [fingerprint(a), fingerprint(0.5 * a), fingerprint(a[3 * FINGERPRINT_SR: 9 * FINGERPRINT_SR]),
           fingerprint(_clip_audio(12, seed=2))]
    pairs = {(i, j) for i, j, _, _ in matching_pairs(fps)}
    assert (0, 1) in pairs and (0, 2) in pairs
    assert not any(3 in p for p in pairs)


def test_exact_pairs_and_groups():
    w = np.random.default_rng(0).normal(size=(3, 1506)).astype(np.float32)
    windows = [w, w.copy(), w + 0.1, w]
    assert exact_pairs(windows, [3.0, 3.0, 3.0, 3.5]) == [(0, 1)]
    assert group_pairs(5, [(0, 1), (1, 3)]) == [[0, 1, 3]]


def test_artist_and_balance_tables():
    table = artist_table(["a", "a", "a", "b"], ["X", "x ", None, "Y"])
    assert table["a"] == {"tracks": 3, "artists": 1, "unknown": 1, "top_artist": "X", "top_share": 2 / 3}
    assert balance_table(["a", "b", "a"], [60.0, 30.0, 30.0]) == {"a": {"tracks": 2, "minutes": 1.5},
                                                                   "b": {"tracks": 1, "minutes": 0.5}}


def _encode_mp3(y: np.ndarray, sr: int, out: Path) -> None:
    import av

    with av.open(str(out), "w", format="mp3") as box:
        stream = box.add_stream("libmp3lame", rate=sr)
        stream.layout, stream.bit_rate = "mono", 128_000
        for start in range(0, len(y), 1152):
            frame = av.AudioFrame.from_ndarray(y[None, start:start + 1152].copy(), format="fltp", layout="mono")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                box.mux(packet)
        for packet in stream.encode(None):
            box.mux(packet)


def _write(path: Path, y: np.ndarray, sr: int, fmt: str | None = None) -> Path:
    import soundfile as sf

    sf.write(path, y, sr, format=fmt)
    return path


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, shared_data):
    """A manifest of 3 genres × 5 gtzan excerpts with a FLAC copy under another genre, an MP3 re-encode,
    a speech recording filed as metal; built by genrify and audited once through the CLI."""
    import soundfile as sf

    tmp = tmp_path_factory.mktemp("audit")
    with open(shared_data / "gtzan-artists.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["genre"] in GENRES and "gtzan-excerpts" in r["path"]]
    rows = [dict(r, path=str(shared_data / r["path"])) for g in GENRES for r in [x for x in rows if x["genre"] == g][:5]]
    mini = shared_data / "gtzan-mini" / "metal" / "metal.00001.wav"
    y, sr = sf.read(mini, dtype="float32")
    rows.append({"path": str(mini), "genre": "metal", "artist": "Metallica", "title": "original"})
    copy = _write(tmp / "copy.flac", y, sr, "FLAC")
    rows.append({"path": str(copy), "genre": "classical", "artist": "Metallica", "title": "copy"})
    mp3 = tmp / "reencoded.mp3"
    _encode_mp3(y, sr, mp3)
    rows.append({"path": str(mp3), "genre": "metal", "artist": "Metallica", "title": "mp3"})
    s, ssr = sf.read(sorted((shared_data / "music-speech" / "speech").glob("*.wav"))[0], dtype="float32")
    speech = _write(tmp / "speech.wav", s[: 8 * ssr], ssr)
    rows.append({"path": str(speech), "genre": "metal", "artist": "", "title": "talk"})
    manifest = tmp / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["path", "genre", "artist", "title"])
        w.writeheader()
        w.writerows({k: r[k] for k in ("path", "genre", "artist", "title")} for r in rows)
    ds = tmp / "my.gdb"
    build_dataset(manifest, ds, workers=1)
    stamp = {p: (p.stat().st_mtime, p.read_bytes()) for p in (copy, mp3, speech)}
    assert main(["audit", str(ds), "--out", str(tmp / "report"), "--apply"]) == 0
    result = json.loads((tmp / "report" / "audit.json").read_text())
    return {"ds": ds, "copy": str(copy.resolve()), "mp3": str(mp3.resolve()), "speech": str(speech.resolve()),
            "mini": str(mini.resolve()), "result": result, "report": tmp / "report", "stamp": stamp}


def _findings(result, kind):
    return [f for f in result["findings"] if f["kind"] == kind]


@pytest.mark.slow
def test_audit_finds_the_injected_faults(faulty):
    result = faulty["result"]
    cross = _findings(result, "cross-genre-duplicate")
    assert any({faulty["copy"], faulty["mini"]} <= {t["path"] for t in f["tracks"]} for f in cross)
    assert result["findings"][0]["kind"] == "cross-genre-duplicate"  # the same song under two genres first
    grouped = {t["path"] for f in cross + _findings(result, "duplicate") for t in f["tracks"]}
    assert faulty["mp3"] in grouped
    assert faulty["speech"] in {t["path"] for f in _findings(result, "not-music") for t in f["tracks"]}
    concentrated = {f["title"].split(":")[0] for f in _findings(result, "artist-concentration")}
    assert concentrated == set(GENRES)  # five excerpts per genre: fewer than 5 artists everywhere
    assert all(f["evidence"] and f["action"] for f in result["findings"])


@pytest.mark.slow
def test_report_files_and_exclusions_leave_user_files_alone(faulty):
    assert (faulty["report"] / "audit.md").read_text().startswith("# Audit of")
    assert (faulty["report"] / "label-pairs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    excluded = read_exclusions(faulty["ds"])
    assert faulty["speech"] in excluded and (faulty["copy"] in excluded or faulty["mini"] in excluded)
    ds = Dataset(faulty["ds"])
    try:
        used = {t.path for t in ds.tracks()}
        assert not used & set(excluded)
        assert set(excluded) <= {t.path for t in ds.tracks(include_excluded=True)}
    finally:
        ds.close()
    for p, (mtime, data) in faulty["stamp"].items():
        assert p.stat().st_mtime == mtime and p.read_bytes() == data


@pytest.mark.slow
def test_second_audit_reuses_embeddings_and_fingerprints(faulty, capsys):
    """Nothing is decoded again: the stored arrays keep their modification times."""
    stored = sorted((faulty["ds"] / "embeddings").rglob("*.npy")) + sorted((faulty["ds"] / "fingerprints").glob("*.npy"))
    before = {p: p.stat().st_mtime_ns for p in stored if p.name != "tracks.npy"}
    assert main(["audit", str(faulty["ds"]), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "cross-genre" in out and "tracks" in out.splitlines()[1]
    assert {p: p.stat().st_mtime_ns for p in before} == before


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("genrify: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_datasets_give_one_line_reasons(tmp_path, capsys, shared_data):
    assert "no such dataset folder" in _one_line_error(capsys, ["audit", str(tmp_path / "nope")])
    broken = tmp_path / "broken.gdb"
    broken.mkdir()
    (broken / "index.sqlite").write_bytes(b"this is not sqlite" * 100)
    assert "not a usable dataset index" in _one_line_error(capsys, ["audit", str(broken)])
    junk = tmp_path / "junk" / "rock"
    junk.mkdir(parents=True)
    (junk / "a.wav").write_bytes(b"RIFF not really audio")
    build_dataset(junk.parent, tmp_path / "empty.gdb", workers=1)
    assert "no usable tracks" in _one_line_error(capsys, ["audit", str(tmp_path / "empty.gdb")])
    one = tmp_path / "one" / "blues"
    one.mkdir(parents=True)
    for name in ("blues.00010.wav", "blues.00011.wav"):
        shutil.copy(shared_data / "gtzan-excerpts" / "blues" / name, one / name)
    build_dataset(one.parent, tmp_path / "one.gdb", workers=1)
    assert "at least two" in _one_line_error(capsys, ["audit", str(tmp_path / "one.gdb")])
    (tmp_path / "one.gdb" / "exclusions.json").write_text("{not json")
    # The commands that select tracks (train, evaluate, embed) refuse a damaged exclusion list in one line.
    assert "unreadable exclusion list" in _one_line_error(capsys, ["embed", str(tmp_path / "one.gdb")])


def test_no_artists_is_a_finding_not_a_crash():
    from types import SimpleNamespace

    from genrify.audit.checks import artist_findings
    from genrify.audit.findings import AuditConfig, Inputs

    tracks = [SimpleNamespace(genre=g, artist=None) for g in ("a", "a", "b", "b")]
    inp = Inputs(tracks, ["a", "b"], np.array([0, 0, 1, 1]), [], [1.0] * 4, [])
    (finding,) = artist_findings(inp, AuditConfig())
    assert finding.title == "no track names its artist"
    # Someone who built from genre folders learns which input carries artists, not "add a column" to a
    # manifest they never wrote.
    assert "dataset build" in finding.action and "CSV manifest" in finding.action
    assert "gtzan-artists.csv" in finding.action


@pytest.mark.slow
@pytest.mark.browser
def test_audit_page_plays_both_copies_and_accepting_excludes(faulty, tmp_path, request):
    """A real server on 127.0.0.1 and Debian's Chromium: the page lists the cross-genre copy first with
    a player per copy; Accept puts the finding's extra copy on the exclusion list."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    import httpx
    from helpers.server import ServerThread, real_classifier

    from genrify.web.app import create_app
    from genrify.web.settings import Settings

    ds = tmp_path / "page.gdb"
    shutil.copytree(faulty["ds"], ds)
    (ds / "exclusions.json").unlink()
    settings = Settings(library=str(tmp_path / "lib"), library_db=str(tmp_path / "lib.sqlite"), scan="off")
    (tmp_path / "lib").mkdir()
    with ServerThread(create_app(settings, classifier=real_classifier(request), audit=str(ds))) as srv:
        assert "/" not in json.dumps(httpx.get(srv.base + "/api/audit", timeout=120).json()["findings"][0]["tracks"])
        foreign = httpx.post(srv.base + "/api/audit/x", json={"decision": "accept"}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--headless", "--no-sandbox", "--disable-gpu", "--mute-audio"])
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(srv.base + "/audit")
            first = page.locator(".audit-finding").first
            first.wait_for(timeout=60_000)
            assert "cross-genre" in first.locator(".kind").inner_text().lower()  # CSS shows it in capitals
            assert first.locator("audio").count() == 3  # the WAV, its FLAC copy and its MP3 re-encode
            src = first.locator("audio").first.get_attribute("src")
            assert httpx.get(srv.base + src).content[:4] == b"RIFF"
            first.locator("button[data-decision=accept]").click()
            page.wait_for_selector(".audit-finding[data-decision=accept]", timeout=10_000)
            browser.close()
            assert not errors, errors
    excluded = read_exclusions(ds)
    assert len(excluded) == 2 and set(excluded) <= {faulty["copy"], faulty["mini"], faulty["mp3"]}


# ---------------------------------------------------------------------------- findings say what was found


def _track_row(i: int, genre: str, artist: str | None = None):
    from genrify.dataset.index import Track

    return Track(id=i, path=f"/music/{genre}/{i:02d}.wav", sha256=f"{i:064x}", genre=genre, artist=artist,
                 title=None, duration=30.0, n_frames=None, status="ok", error=None)


def test_similar_passages_are_probably_the_same_piece_and_only_near_one_is_a_copy():
    """A cosine well under 1 joins two tracks as "probably the same piece"; "copies of one recording" needs
    proof (identical audio, fingerprints) or a cosine at ``same_recording_cosine``."""
    from genrify.audit.checks import duplicate_findings
    from genrify.audit.duplicates import embedding_pairs
    from genrify.audit.findings import AuditConfig, Inputs

    rng = np.random.default_rng(3)
    windows = [rng.normal(size=(4, 64)).astype(np.float32) for _ in range(12)]
    windows[1] = windows[0] + 0.6 * rng.normal(size=(4, 64)).astype(np.float32)  # alike, not identical
    cosine = {(i, j): s for i, j, s in embedding_pairs(windows, threshold=-1.0)}[(0, 1)]
    others = max(s for (i, j), s in {(i, j): s for i, j, s in embedding_pairs(windows, threshold=-1.0)}.items()
                 if (i, j) != (0, 1))
    assert others < cosine < 0.999
    inp = Inputs([_track_row(i, "rock") for i in range(12)], ["rock"], np.zeros(12, int), windows, [30.0] * 12, [])
    near = (cosine + others) / 2
    (found,) = duplicate_findings(inp, None, None, AuditConfig(near_cosine=near, same_recording_cosine=cosine + 1e-4))
    assert "probably the same piece" in found.title and "copies" not in found.title
    (found,) = duplicate_findings(inp, None, None, AuditConfig(near_cosine=near, same_recording_cosine=cosine - 1e-4))
    assert "2 copies of one recording" in found.title
    # Identical decoded audio is always a copy, whatever the cosine thresholds.
    windows[2] = windows[0].copy()
    inp.durations[2] = inp.durations[0]
    found = duplicate_findings(inp, None, None, AuditConfig(near_cosine=0.999999, same_recording_cosine=1.0))
    assert [f.title.split(":")[0] for f in found] == ["2 copies of one recording in rock"]


def test_mislabel_evidence_names_the_cross_validation_that_was_run():
    """Without artists the folds hold out single tracks: the evidence must not claim leave-artist-out."""
    from genrify.audit.checks import cross_validation_kind, mislabel_findings
    from genrify.audit.findings import Inputs

    y = np.array([0] * 8 + [1] * 8)
    oof = np.where(np.eye(2)[y] == 1, 0.95, 0.05)
    oof[0] = [0.02, 0.98]  # filed as a, sounds like b
    for artists, said in ((lambda i: None, "cross-validation by track"),
                          (lambda i: f"artist {i % 4}", "leave-artist-out cross-validation"),
                          (lambda i: "x" if i % 2 else None, "by artist where known, else by track")):
        tracks = [_track_row(i, "ab"[k], artists(i)) for i, k in enumerate(y)]
        assert said in cross_validation_kind(tracks)
        inp = Inputs(tracks, ["a", "b"], y, [], [30.0] * len(y), [])
        found = [f for f in mislabel_findings(inp, oof) if f.tracks[0]["path"] == tracks[0].path]
        assert found and said in found[0].evidence
        assert found[0].relabel == {tracks[0].path: "b"}  # what the page offers instead of excluding
    no_artists = cross_validation_kind([_track_row(i, "a") for i in range(3)])
    assert "leave-artist-out" not in no_artists


# ---------------------------------------------------------------------------- progress, reuse, relabels


@pytest.fixture(scope="module")
def audited(real_embedded, tmp_path_factory):
    """gtzan-mini (4 genres × 7, built from folders: no artists) audited once by ``python -m genrify audit
    --out`` with stderr on a real pseudo-terminal; its stderr as the terminal showed it."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios
    import threading

    from conftest import genrify_env

    tmp = tmp_path_factory.mktemp("audited")
    ds = tmp / "real.gdb"
    shutil.copytree(real_embedded, ds)
    master, slave = pty.openpty()
    # A terminal has a size; a fresh pseudo-terminal's is 0×0, where tqdm draws nothing.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    shown = bytearray()

    def read():  # drained as it comes, so a chatty bar can never fill the terminal and block the audit
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc = subprocess.run([sys.executable, "-m", "genrify", "audit", str(ds), "--out", str(tmp / "report")],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=genrify_env(),
                          timeout=600)
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    assert proc.returncode == 0, shown.decode(errors="replace")
    return {"ds": ds, "report": tmp / "report", "stderr": shown.decode(errors="replace"),
            "stdout": proc.stdout.decode()}


def test_audit_shows_a_bar_for_every_long_stage_on_a_terminal(audited):
    for stage in ("cross-validation", "checks"):  # fingerprints too, unless an earlier test cached them
        assert stage in audited["stderr"], audited["stderr"][-2000:]
    assert "Traceback" not in audited["stderr"]
    assert "cross-validation" not in audited["stdout"]  # bars go to stderr only


def test_no_artists_findings_say_what_was_done(audited):
    result = json.loads((audited["report"] / "audit.json").read_text())
    (no_artist,) = [f for f in result["findings"] if f["title"] == "no track names its artist"]
    assert "CSV manifest" in no_artist["action"] and "add an artist column" not in no_artist["action"]
    assert not any("leave-artist-out" in f["evidence"] for f in result["findings"])
    assert not any("leave-artist-out" in n for n in result["notes"])


def test_serve_reuses_the_stored_audit_and_says_why_it_would_recompute(audited, tmp_path, capsys):
    """``serve --audit`` takes the audit ``audit --out`` stored while it is current; a change of the
    dataset or of the settings is named instead."""
    import time

    from genrify.audit import AuditConfig, stored_audit
    from genrify.dataset.exclusions import write_exclusions
    from genrify.web.audit import AuditPage

    page = AuditPage(audited["ds"])
    assert page.stale is None and "reusing the stored audit" in page.origin
    start = time.perf_counter()
    result = page.result()
    assert time.perf_counter() - start < 1.0  # no embedding, folds or fingerprints: read, not recomputed
    assert result["findings"] == json.loads((audited["report"] / "audit.json").read_text())["findings"]

    copy = tmp_path / "copy.gdb"
    shutil.copytree(audited["ds"], copy)
    assert stored_audit(copy)[1] is None  # the same tracks and files elsewhere: still current
    why = stored_audit(copy, config=AuditConfig(folds=3))[1]
    assert "settings differ" in why and "folds 5 → 3" in why
    assert "fingerprints, now without" in stored_audit(copy, fingerprints=False)[1]
    ds = Dataset(copy)
    try:
        track = ds.tracks()[0]
    finally:
        ds.close()
    other = next(g for g in result["genres"] if g != track.genre)
    write_exclusions(copy, {}, relabelled={track.path: other})
    assert "dataset changed" in stored_audit(copy)[1]
    page = AuditPage(copy)
    assert page.stale and "computing the audit" in page.origin and "dataset changed" in page.origin
    # Off a terminal the audit draws no bars (a log or a pipe gets the report alone).
    assert main(["audit", str(copy), "--no-fingerprints", "--top", "1"]) == 0
    assert "cross-validation" not in capsys.readouterr().err


def test_relabels_are_honoured_by_the_dataset_and_kept_by_apply(synthetic_dataset, tmp_path):
    """A relabel (written by the audit page) files a track under another genre for train, evaluate and
    embed (they all read Dataset.tracks); the index and the audio stay as they were; ``audit --apply``
    rewrites exclusions without dropping relabels."""
    from genrify.dataset.exclusions import read_relabels, write_exclusions

    ds_path = tmp_path / "relabel.gdb"
    shutil.copytree(synthetic_dataset, ds_path)
    ds = Dataset(ds_path)
    try:
        tracks = ds.tracks()
        moved, dropped = tracks[0], tracks[1]
        other = next(g for g in ds.labels() if g != moved.genre)
        audio = Path(moved.path).read_bytes()
        write_exclusions(ds_path, {dropped.path: "test"}, relabelled={moved.path: other})
        now = {t.path: t.genre for t in ds.tracks()}
        assert now[moved.path] == other and dropped.path not in now
        assert {t.path: t.genre for t in ds.tracks(include_excluded=True)}[dropped.path] == dropped.genre
        assert {t.path: t.genre for t in ds.index.tracks(status="ok")}[moved.path] == moved.genre  # index untouched
        assert Path(moved.path).read_bytes() == audio
    finally:
        ds.close()
    write_exclusions(ds_path, {}, note="as audit --apply writes it")
    assert read_relabels(ds_path) == {moved.path: other}
