"""Reliability: the whole bad-input corpus through every command that reads audio, files that
cannot be written, damaged and hostile model files, and the fuzzers' crashing inputs replayed.

Everything runs as a user runs it: ``python -m genrify ...`` in a subprocess, and a real
``genrify serve`` on 127.0.0.1 spoken to over HTTP. ``test_audio.py`` checks the same corpus
against ``load_audio`` itself, ``test_web.py`` uploads it to an in-process server and
``test_sources_providers.py`` serves it as provider previews; docs/reliability.md maps every
case to its test.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import genrify_env
from genrify.config import AudioConfig
from genrify.sources.synthetic import generate_clip
from helpers.badinput import make_bad_corpus

httpx = pytest.importorskip("httpx")

#: The analysed-duration cap every entry point applies (seconds).
MAX_DURATION = AudioConfig().max_duration
#: Sanity bounds, not benchmarks (the machine may be busy with other work).
BATCH_SECONDS = 240
REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
#: Inputs that decode but are shorter than a model's minimum duration: a clean "too short" error.
TOO_SHORT_OK = "too short"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """``music/jazz`` holds the whole bad-input corpus, ``music/metal`` two good clips."""
    root = tmp_path_factory.mktemp("reliability") / "music"
    cases = make_bad_corpus(root / "jazz")
    (root / "metal").mkdir()
    for i in range(2):
        sf.write(root / "metal" / f"Metal Band - Song {i}.wav",
                 generate_clip("metal", seed=40 + i, sr=22050, duration=4.0), 22050)
    return root, {c.name: c for c in cases}


def _may_succeed(case) -> bool:
    """Expected to decode (or meaningless here: root reads a mode-000 file)."""
    return case.expect == "ok" or case.skip is not None


def _genrify(*args, timeout=BATCH_SECONDS, env=None):
    return subprocess.run([sys.executable, "-m", "genrify", *map(str, args)], env=env or genrify_env(),
                          capture_output=True, text=True, timeout=timeout)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("genrify: error:")]


def _leftovers(*roots: Path) -> list[Path]:
    """Temporary or half-written files genrify might have left."""
    found = []
    for root in roots:
        for p in root.rglob("*"):
            if p.name.endswith((".part", ".tmp")) or ".tmp" in p.suffixes:
                found.append(p)
    return found


# ---------------------------------------------------------------------------- genrify predict


@pytest.mark.parametrize("workers", [1, 2])
def test_predict_batch_json_over_the_whole_corpus(music, tiny_cnn_model, workers):
    root, cases = music
    paths = [c.path for c in cases.values()]
    t0 = time.monotonic()
    proc = _genrify("predict", *paths, "--model", tiny_cnn_model, "--json", "--workers", workers)
    assert time.monotonic() - t0 < BATCH_SECONDS
    assert proc.returncode == 1  # some files failed, the rest were answered
    assert "Traceback" not in proc.stdout + proc.stderr
    listed = json.loads(proc.stdout)
    assert [r["path"] for r in listed] == [str(p) for p in paths]  # in the order given, one answer each
    results = {r["path"]: r for r in listed}
    for case in cases.values():
        r = results[str(case.path)]
        if "error" in r:
            assert str(case.path) in r["error"] and "\n" not in r["error"], r
            assert case.expect == "error" or TOO_SHORT_OK in r["error"], (case.name, r["error"])
        else:
            assert _may_succeed(case), (case.name, r)
            assert r["verdict"] in ("genre", "unsure", "not_music") and len(r["top"]) == 2, case.name
            assert 0 < r["duration"] <= MAX_DURATION + 0.01, case.name
    # More than an hour of audio is analysed up to the cap, not refused and not read whole.
    long = results[str(cases["long_over_an_hour"].path)]
    assert long["duration"] == pytest.approx(MAX_DURATION, abs=0.01)
    assert long["windows"]["starts"][-1] < MAX_DURATION


@pytest.mark.parametrize("name", ["directory_named_mp3", "symlink_loop", "leading_dash_name"])
def test_predict_one_file_one_line(music, tiny_cnn_model, name):
    case = music[1][name]
    proc = _genrify("predict", "--model", tiny_cnn_model, "--", case.path)
    assert "Traceback" not in proc.stdout + proc.stderr
    if case.expect == "error":
        assert proc.returncode == 1 and proc.stdout == ""
        errors = _error_lines(proc.stderr)
        assert len(errors) == 1 and str(case.path) in errors[0], proc.stderr
        assert len(errors[0].split(f"{case.path}: ", 1)[1]) > 5  # and a reason
    else:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"{case.path}: ") and proc.stdout.count("\n") == 1


# ---------------------------------------------------------------------------- genrify dataset build


def test_dataset_build_over_the_whole_corpus(music, tmp_path):
    root, cases = music
    out = tmp_path / "corpus.gdb"
    proc = _genrify("dataset", "build", root, "--out", out, "--sr", "22050", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    with sqlite3.connect(f"file:{out / 'index.sqlite'}?mode=ro", uri=True) as db:
        rows = {Path(p).name: (status, error, duration)
                for p, status, error, duration in db.execute("SELECT path, status, error, duration FROM tracks")}
    total = len(rows)
    statuses = {s for s, _, _ in rows.values()}
    assert statuses <= {"ok", "error", "duplicate"}
    counts = {s: sum(1 for r in rows.values() if r[0] == s) for s in sorted(statuses)}
    assert f"{total} tracks: " in proc.stdout
    for status, n in counts.items():
        assert f"{n} {status}" in proc.stdout
    for case in cases.values():
        row = rows.get(case.path.name)
        if not case.path.is_file():
            assert row is None or row[0] == "error", case.name  # folders, missing files: never a track
            continue
        assert row is not None, f"{case.name} was not indexed"
        status, error, duration = row
        if status == "error":
            assert error and "\n" not in error, case.name
            assert case.expect == "error" or TOO_SHORT_OK in error, (case.name, error)
            assert f"skipped {case.path}: {error}" in proc.stdout, case.name  # the reason is printed too
        else:
            assert _may_succeed(case), (case.name, status)
            assert duration <= MAX_DURATION + 0.01
    assert rows["long.flac"][0] == "ok" and rows["long.flac"][2] == pytest.approx(MAX_DURATION, abs=0.01)
    assert rows["Metal Band - Song 0.wav"][0] == "ok"
    assert _leftovers(out) == []
    # Every track marked ok has its features, and nothing else is stored.
    from genrify.dataset import Dataset

    ds = Dataset(out)
    try:
        usable = ds.tracks()
        assert len(usable) == counts["ok"]
        for t in usable:
            assert np.isfinite(np.asarray(ds.features(t))).all()
    finally:
        ds.close()


# ---------------------------------------------------------------------------- genrify library scan


def test_library_scan_over_the_whole_corpus(music, tmp_path):
    root, cases = music
    db = tmp_path / "library.sqlite"
    proc = _genrify("library", "scan", root, "--db", db, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert "added" in proc.stdout and "playable tracks" in proc.stdout
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("skipped ")]
    assert skipped, proc.stderr
    from genrify.sources.library import LibraryIndex

    with LibraryIndex(db) as index:
        tracks = {Path(t.path).name: t for t in index.tracks(include_errors=True)}
        for t in tracks.values():
            if t.status == "error":
                assert t.error and any(line.startswith(f"skipped {t.path}: ") for line in skipped), t.path
        # Garbage is recorded, never offered; odd names are searchable.
        offered = {Path(t.path).name for t in index.tracks()}
        for name in ("zero_bytes", "text_as_mp3", "png_as_mp3", "random_bytes_wav", "symlink_loop"):
            assert cases[name].path.name not in offered, name
        assert "x.mp3" not in offered  # a folder
        assert index.search(artist="", track="Ünïcødé 曲 \"double\" 'single' name")
    again = _genrify("library", "scan", root, "--db", db, timeout=120)
    assert again.returncode == 0 and "0 added" in again.stdout and "Traceback" not in again.stderr


# ---------------------------------------------------------------------------- genrify serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(music, tiny_cnn_model, tmp_path_factory):
    """``genrify serve`` (a real subprocess) whose library is the bad-input corpus itself."""
    root, _ = music
    port = _free_port()
    cache = tmp_path_factory.mktemp("serve-cache")
    env = {**genrify_env(), "GENRIFY_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "genrify", "serve", "--model", str(tiny_cnn_model),
                             "--library", str(root), "--port", str(port), "--scan", "blocking",
                             "--max-waiting", "32", "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "genrify serve did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=120) as client:
            yield client, proc
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "Traceback" not in out, out


def _assert_json_answer(r, name):
    assert r.status_code < 500, (name, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), name
    if r.status_code != 200:
        assert 400 <= r.status_code < 500 and r.json()["error"], (name, r.text[:300])


def test_serve_uploads_of_the_whole_corpus(music, served):
    client, proc = served
    _, cases = music
    for case in cases.values():
        if not case.path.is_file():
            continue  # folders, missing files and link loops cannot be uploaded
        with open(case.path, "rb") as fh:
            r = client.post("/api/predict?images=false", files={"file": (case.path.name, fh, "audio/mpeg")})
        _assert_json_answer(r, case.name)
        if r.status_code == 200:
            assert _may_succeed(case), (case.name, r.text[:200])
        if case.name == "long_over_an_hour":  # 8.9 MB, under the 20 MB default limit
            assert r.status_code == 200 and r.json()["duration"] == pytest.approx(MAX_DURATION, abs=0.01)
    assert client.get("/healthz").status_code == 200 and proc.poll() is None


def test_serve_predicts_bad_library_tracks_as_json_errors(music, served):
    """The library scan indexes what looks like audio by its tags; analysing it may still fail."""
    client, proc = served
    for title in ("nan", "liar", "one sample", "silence", "surround"):
        r = client.get("/api/predict", params={"artist": "", "track": title, "images": "false"})
        _assert_json_answer(r, title)
        if r.status_code == 404:
            assert "could not be found" in r.json()["error"]
    legacy = client.get("/d/music-prediction", params={"artist": "", "track": "nan"})
    _assert_json_answer(legacy, "the original endpoint")
    assert client.get("/healthz").status_code == 200 and proc.poll() is None


# ---------------------------------------------------------------------------- damaged and hostile model files


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # the marker file appearing would prove code ran


@pytest.fixture(scope="module")
def bad_models(tiny_cnn_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad models")
    data = tiny_cnn_model.read_bytes()
    (d / "truncated.genrify").write_bytes(data[: len(data) // 2])
    tampered = bytearray(data)
    tampered[-10] ^= 0x01  # one bit of one weight
    (d / "tampered.genrify").write_bytes(bytes(tampered))
    marker = d / "pwned"
    (d / "pickle.genrify").write_bytes(pickle.dumps({"weights": _Exploit(marker)}))
    return d, marker


@pytest.mark.parametrize("kind, reason", [("truncated", "damaged"), ("tampered", "modified"),
                                          ("pickle", "not a genrify model")])
def test_bad_model_is_refused_by_predict_and_serve(music, bad_models, kind, reason):
    d, marker = bad_models
    model = d / f"{kind}.genrify"
    clip = music[0] / "metal" / "Metal Band - Song 0.wav"
    proc = _genrify("predict", clip, "--model", model, timeout=120)
    env = {**genrify_env(), "GENRIFY_CACHE_DIR": str(d / "cache")}
    serve = _genrify("serve", "--model", model, "--port", _free_port(), "--scan", "off", timeout=120, env=env)
    for p in (proc, serve):
        assert p.returncode == 1 and p.stdout.count("\n") <= 1, p.stdout  # serve prints its banner only on success
        assert "Traceback" not in p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and str(model) in lines[0] and reason in lines[0], lines
    assert "serving on" not in serve.stdout
    assert not marker.exists()


# ---------------------------------------------------------------------------- atomic writes


def _unwritable_dir(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores permissions: use /proc then)."""
    if os.geteuid() == 0:
        return Path("/proc/genrify-no-such-dir")
    d = tmp_path / "read-only"
    d.mkdir()
    d.chmod(0o500)
    return d


def test_failed_writes_are_one_line_and_leave_nothing_behind(music, tiny_cnn_model, tmp_path):
    from genrify.errors import WriteError
    from genrify.fileio import write_bytes_atomic

    clip = music[0] / "metal" / "Metal Band - Song 0.wav"
    target = _unwritable_dir(tmp_path) / "timeline.png"
    proc = _genrify("predict", clip, "--model", tiny_cnn_model, "--timeline", target, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0] and "cannot write" in lines[0], lines
    # A file where a folder should be, and a folder where the file should be: the same, in-process.
    (tmp_path / "a-file").write_text("in the way")
    (tmp_path / "a-folder").mkdir()
    for target in (tmp_path / "a-file" / "timeline.png", tmp_path / "a-folder"):
        with pytest.raises(WriteError, match="cannot write") as info:
            write_bytes_atomic(target, b"\x89PNG")
        assert str(target) in str(info.value) and "\n" not in str(info.value)
    assert list((tmp_path / "a-folder").iterdir()) == []
    assert _leftovers(tmp_path) == [] and (tmp_path / "a-file").read_text() == "in the way"


def test_train_into_a_missing_folder_with_a_bad_dataset_writes_nothing(music, tmp_path):
    junk = tmp_path / "junk.gdb"
    junk.mkdir()
    (junk / "index.sqlite").write_bytes(b"SQLite format 3\x00" + os.urandom(2000))  # a damaged index
    only_bad = tmp_path / "only-bad"
    (only_bad / "jazz").mkdir(parents=True)
    (only_bad / "jazz" / "notes.mp3").write_text("not a song\n" * 40)
    (only_bad / "jazz" / "empty.wav").write_bytes(b"")
    built = _genrify("dataset", "build", only_bad, "--out", tmp_path / "only-bad.gdb", "--workers", "1", timeout=120)
    assert built.returncode == 0 and "2 error" in built.stdout, built.stdout + built.stderr
    for dataset in (junk, tmp_path / "only-bad.gdb", tmp_path / "nowhere.gdb"):
        out = tmp_path / "missing" / "dir" / "model.genrify"
        proc = _genrify("train", dataset, "--out", out, "--epochs", "1", timeout=120)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "missing").exists()
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------- fuzzers' findings, replayed


def _regressions() -> list[Path]:
    return sorted(p for p in REGRESSIONS.glob("*.bin"))


def test_fuzz_regressions_are_kept():
    assert REGRESSIONS.is_dir() and (REGRESSIONS / "README.md").is_file()


@pytest.mark.parametrize("path", _regressions(), ids=lambda p: p.name)
def test_fuzz_regression_replays_cleanly(path, tiny_cnn_model, request):
    """Each saved input now decodes and predicts, or fails with a GenrifyError, in bounded time;
    ``upload-*`` inputs are also posted to a real server, which answers JSON below 500."""
    from genrify.errors import GenrifyError
    from genrify.predict import GenreClassifier

    data = path.read_bytes()
    clf = GenreClassifier.from_file(tiny_cnn_model)
    t0 = time.monotonic()
    try:
        a = clf.analyse(data)
        assert np.isfinite(a.probabilities).all() and a.duration <= MAX_DURATION + 0.01
    except GenrifyError as exc:
        assert "\n" not in str(exc)
    assert time.monotonic() - t0 < 60
    if path.name.startswith("upload-"):
        client, _ = request.getfixturevalue("served")
        r = client.post("/api/predict?images=false", content=data, headers={"content-type": "application/octet-stream"})
        _assert_json_answer(r, path.name)


def test_a_pickled_feature_file_is_refused_without_running_it(synthetic_dataset, tmp_path):
    """The feature store is plain .npy read with allow_pickle=False: a planted pickle is an error, not code."""
    import shutil

    from genrify.dataset import Dataset
    from genrify.errors import GenrifyError

    copy = tmp_path / "copy.gdb"
    shutil.copytree(synthetic_dataset, copy)
    marker = tmp_path / "pwned"
    ds = Dataset(copy)
    try:
        track = ds.tracks()[0]
        victim = next(p for p in (copy / "features").glob("*.npy") if track.sha256[:16] in p.name)
        np.save(victim, np.array([_Exploit(marker)], dtype=object), allow_pickle=True)
        with pytest.raises(GenrifyError) as info:
            ds.features(track)
        assert "\n" not in str(info.value)
    finally:
        ds.close()
    assert not marker.exists()
