"""``genrify predict --json`` answers exactly as recorded, byte for byte.

The fixtures under ``tests/fixtures/predict_json/`` hold the output of the
command on every clip of ``gtzan-mini`` and ``cc-audio``, for the bundled model
(full and ``--fast``), musicnn's and AudioSet's own taggers and the CNN the suite trains
(``tiny_cnn_model``). A change that alters how a song is scored shows up here
as a diff; re-record deliberately with ``GENRIFY_RECORD_PARITY=1 pytest
tests/test_predict_parity.py`` and say why in the commit.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "predict_json"
RECORD = os.environ.get("GENRIFY_RECORD_PARITY") == "1"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _recorded_thread_count(monkeypatch):
    """The answers were recorded with torch's default thread count (every core). Left alone, genrify
    follows the load average (``predict.threads.free_cores``), and float sums split over one or two
    threads can differ in the 4th decimal that the answers are printed to."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(os.cpu_count() or 1))


def _clips(shared_data: Path) -> list[str]:
    clips = sorted(shared_data.glob("gtzan-mini/*/*.wav")) + sorted(shared_data.glob("cc-audio/*.ogg"))
    if len(clips) < 70:
        pytest.skip(f"{shared_data}: expected the 70 gtzan-mini clips and cc-audio")
    return [str(p.relative_to(shared_data)) for p in clips]


def _bf16() -> bool:
    from genrify.models.musicnn import bfloat16_is_fast

    return bfloat16_is_fast()


def _check(name: str, args: list, *, shared_data, run_genrify, machine: dict | None = None,
           engine: str | None = None) -> None:
    clips = _clips(shared_data)
    proc = run_genrify("predict", "--json", *args, *clips, cwd=shared_data, timeout=900)
    assert proc.stdout.startswith("["), proc.stderr[-2000:]
    if engine is not None:
        assert f"{engine} engine" in proc.stderr, proc.stderr[-2000:]
    fixture = FIXTURES / f"{name}.json.gz"
    meta = FIXTURES / f"{name}.meta.json"
    if RECORD:
        FIXTURES.mkdir(parents=True, exist_ok=True)
        fixture.write_bytes(gzip.compress(proc.stdout.encode("utf-8"), mtime=0))
        meta.write_text(json.dumps({"clips": len(clips), "returncode": proc.returncode, **(machine or {})}) + "\n")
        return
    recorded = json.loads(meta.read_text())
    for key, value in (machine or {}).items():
        if recorded.get(key) != value:
            pytest.skip(f"recorded where {key}={recorded.get(key)}, this machine has {value}")
    expected = gzip.decompress(fixture.read_bytes()).decode("utf-8")
    assert proc.returncode == recorded["returncode"], proc.stderr[-2000:]
    got, want = json.loads(proc.stdout), json.loads(expected)
    # Fields added to the answer since the recording (genre, styles, genres) are not compared;
    # every recorded field must come back exactly.
    diff = [w["path"] for g, w in zip(got, want) if {k: g.get(k) for k in w} != w]
    assert len(got) == len(want) and not diff, f"{name}: {len(diff)} of {len(want)} answers differ, first: {diff[:5]}"


def test_bundled_gtzan_model_answers_as_recorded(shared_data, run_genrify):
    _check("gtzan", ["--model", "gtzan"], shared_data=shared_data, run_genrify=run_genrify)


def test_bundled_taxonomy_model_answers_as_recorded(shared_data, run_genrify):
    """84 songs: a process of many songs runs the torch engine."""
    _check("default", [], shared_data=shared_data, run_genrify=run_genrify)


def test_bundled_taxonomy_model_on_the_numpy_engine_answers_as_recorded(shared_data, run_genrify, monkeypatch):
    """The engine a process of a few songs runs (``genrify predict song.mp3``), held to its own
    recording: its float32 sums differ from torch's in the 4th decimal on some clips, and
    ``tests/test_numpy_engine.py`` holds the two engines to each other within that round-off."""
    monkeypatch.setenv("GENRIFY_ENGINE", "numpy")
    _check("default-numpy", ["-v"], shared_data=shared_data, run_genrify=run_genrify, engine="numpy")


def test_bundled_gtzan_model_fast_mode_answers_as_recorded(shared_data, run_genrify):
    _check("gtzan-fast", ["--model", "gtzan", "--fast"], shared_data=shared_data, run_genrify=run_genrify,
           machine={"bfloat16_is_fast": _bf16()})


def test_musicnn_tagger_answers_as_recorded(shared_data, run_genrify):
    _check("musicnn", ["--model", "musicnn"], shared_data=shared_data, run_genrify=run_genrify)


def test_audioset_tagger_answers_as_recorded(shared_data, run_genrify):
    _check("audioset", ["--model", "audioset"], shared_data=shared_data, run_genrify=run_genrify)


def test_suite_cnn_answers_as_recorded(shared_data, run_genrify, tiny_cnn_model):
    _check("tiny-cnn", ["--model", tiny_cnn_model], shared_data=shared_data, run_genrify=run_genrify)
