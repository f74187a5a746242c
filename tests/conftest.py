"""Shared fixtures for genrify's tests.

Real data
    ``shared_data``      Path to ``../shared/data`` beside the checkout (real audio: ``gtzan-mini/<genre>/<genre>.0000N.wav``
                         15–20 s clips, ``gtzan-excerpts/<genre>/*.wav`` 2–3 s, ``cc-audio/*.ogg``). Tests that use it are
                         skipped, with the reason, when the folder is absent.
    ``gtzan_mini``       ``shared_data / "gtzan-mini"`` (skips when absent).
    ``gtzan_excerpts``   ``shared_data / "gtzan-excerpts"`` (skips when absent).

    ``real_embedded``    a dataset folder of ``REAL_EMBEDDED_GENRES`` × 7 gtzan-mini clips (symlinked sources, features at
                         22.05 kHz) with musicnn embeddings of every window (session-scoped, READ-ONLY: copy it first).
    ``real_embedded_windows``  ``(tracks, windows)`` of ``real_embedded``: its track rows and per-window embeddings.

Synthetic data (session-scoped, built once, READ-ONLY: copy before modifying)
    ``synthetic_corpus``   folder written by ``write_demo_corpus(per_genre=6, duration=6.0, fmt="wav")``:
                           ``<style>/<Artist> - <Title>.wav`` for the five styles plus ``manifest.csv``.
    ``synthetic_dataset``  a dataset folder (``index.sqlite`` + ``features/``) built from ``synthetic_corpus`` with the
                           default :class:`~genrify.config.FeatureConfig` (10 MFCCs at 44.1 kHz, n_fft 2048, hop 512).
    ``tiny_cnn_model``     path of a ``.genrify`` CNN model file trained a few epochs on ``synthetic_dataset`` exactly as
                           ``genrify train`` does (3 s windows, seed 0); its extra holds ``fit_tracks``/``val_tracks``
                           (sha256 of the tracks trained on / held out) and the history. Reports lie beside it.
    ``tiny_cnn_metrics``   the held-out validation metrics dict returned when ``tiny_cnn_model`` was trained.
    ``seeded_mlp_model``   path of a ``.genrify`` MLP model file built and saved, not fitted (``helpers.modelfiles``):
                           seeded initial weights, normalisation statistics of generated clips, the default run
                           config, the five synthetic labels. It loads like a trained file and takes about a second,
                           so tests that need *a* model, not a trained one, stay in the fast lane.

Helpers
    ``run_genrify``        ``run_genrify(*args, cwd=None, timeout=300, check=False)`` runs ``python -m genrify ARGS`` in a
                           subprocess with the test interpreter's environment and returns ``CompletedProcess`` (text).
    ``genrify_env()``      the environment used by ``run_genrify`` (the venv's ``bin`` first on ``PATH``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Tag journals and other per-user data of the suite's runs go to a throwaway folder, never ~/.local/share.
os.environ.setdefault("GENRIFY_DATA_DIR", tempfile.mkdtemp(prefix="genrify-data-"))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: Small, fast, deterministic corpus settings shared by the session fixtures.
CORPUS_PER_GENRE = 6
CORPUS_DURATION = 6.0
TINY_CNN_EPOCHS = 6


def _need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"real audio not available: {path} is missing (expected ../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def mn04_reference() -> dict:
    """The original mn04's outputs on six clips (``../shared/reference/mn04/fixtures.npz``)."""
    import numpy as np

    fixtures = SHARED_DATA.parent / "reference" / "mn04" / "fixtures.npz"
    if not fixtures.is_file():
        pytest.skip(f"{fixtures} not present (expected ../shared beside the checkout)")
    with np.load(fixtures) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="session")
def gtzan_mini(shared_data) -> Path:
    return _need(shared_data / "gtzan-mini")


@pytest.fixture(scope="session")
def gtzan_excerpts(shared_data) -> Path:
    return _need(shared_data / "gtzan-excerpts")


#: Four GTZAN genres that a few-shot head over musicnn should tell apart.
REAL_EMBEDDED_GENRES = ("classical", "hiphop", "metal", "reggae")


@pytest.fixture(scope="session")
def real_embedded(gtzan_mini, tmp_path_factory) -> Path:
    from genrify.config import FeatureConfig
    from genrify.dataset import Dataset
    from genrify.dataset.build import build_dataset
    from genrify.train.embed import embed_dataset

    work = tmp_path_factory.mktemp("real-embedded")
    for genre in REAL_EMBEDDED_GENRES:
        clips = sorted((gtzan_mini / genre).glob("*.wav"))[:7]
        if len(clips) < 7:
            pytest.skip(f"{gtzan_mini / genre}: fewer than 7 clips")
        (work / "src" / genre).mkdir(parents=True)
        for clip in clips:
            (work / "src" / genre / clip.name).symlink_to(clip)
    out = work / "real.gdb"
    summary = build_dataset(work / "src", out, features=FeatureConfig(sr=22050), workers=2)
    assert summary.statuses == {"ok": 7 * len(REAL_EMBEDDED_GENRES)}, summary.lines()
    dataset = Dataset(out)
    try:
        done = embed_dataset(dataset, workers=2)
    finally:
        dataset.close()
    assert done["embedded"] == 7 * len(REAL_EMBEDDED_GENRES) and not done["failed"], done
    return out


@pytest.fixture(scope="session")
def real_embedded_windows(real_embedded):
    """``(tracks, windows)``: the tracks of ``real_embedded`` and their per-window embeddings (READ-ONLY)."""
    from genrify.dataset import Dataset
    from genrify.dataset.embeddings import load_embeddings

    ds = Dataset(real_embedded)
    try:
        tracks = ds.tracks()
        return tracks, load_embeddings(ds, tracks)
    finally:
        ds.close()


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    from genrify.sources.synthetic import write_demo_corpus

    root = tmp_path_factory.mktemp("synthetic-corpus")
    write_demo_corpus(root, per_genre=CORPUS_PER_GENRE, duration=CORPUS_DURATION, fmt="wav")
    return root


@pytest.fixture(scope="session")
def synthetic_dataset(synthetic_corpus, tmp_path_factory) -> Path:
    from genrify.config import FeatureConfig
    from genrify.dataset.build import build_dataset

    out = tmp_path_factory.mktemp("synthetic-dataset") / "synthetic.gdb"
    summary = build_dataset(synthetic_corpus, out, features=FeatureConfig(), workers=1)
    assert summary.statuses == {"ok": 5 * CORPUS_PER_GENRE}, summary.lines()
    return out


@pytest.fixture(scope="session")
def _tiny_cnn(synthetic_dataset, tmp_path_factory):
    from genrify.config import AudioConfig, ModelConfig, RunConfig, TrainConfig
    from genrify.dataset import Dataset
    from genrify.train.run import train_and_report

    folder = tmp_path_factory.mktemp("tiny-cnn")
    dataset = Dataset(synthetic_dataset)
    try:
        audio = dataset.audio_config
        config = RunConfig(audio=AudioConfig(sr=dataset.feature_config.sr, max_duration=audio.max_duration,
                                             min_duration=audio.min_duration), features=dataset.feature_config,
                           model=ModelConfig(name="cnn"),
                           train=TrainConfig(epochs=TINY_CNN_EPOCHS, batch_size=16, patience=TINY_CNN_EPOCHS))
        out = folder / "tiny-cnn.genrify"
        metrics = train_and_report(dataset, config, out=out, prefix=folder / "tiny-cnn")
    finally:
        dataset.close()
    return out, metrics


@pytest.fixture(scope="session")
def tiny_cnn_model(_tiny_cnn) -> Path:
    return _tiny_cnn[0]


@pytest.fixture(scope="session")
def tiny_cnn_metrics(_tiny_cnn) -> dict:
    return _tiny_cnn[1]


@pytest.fixture(scope="session")
def seeded_mlp_model(tmp_path_factory) -> Path:
    from helpers.modelfiles import write_seeded_model

    path = tmp_path_factory.mktemp("seeded-mlp") / "seeded-mlp.genrify"
    write_seeded_model(path, name="mlp", seed=0)
    return path


def genrify_env() -> dict:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.pop("PYTHONSTARTUP", None)
    return env


def _run_genrify(*args, cwd=None, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "genrify", *map(str, args)], cwd=cwd, env=genrify_env(),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"genrify {' '.join(map(str, args))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def run_genrify():
    return _run_genrify


# ---------------------------------------------------------------------------- the fake provider (helpers/fakeprovider.py)


@pytest.fixture(scope="module")
def fake_provider():
    """A local fake of Deezer's and iTunes' APIs on 127.0.0.1 (``helpers.fakeprovider``), one per test module."""
    from helpers.fakeprovider import FakeProvider

    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fp(fake_provider):
    """``fake_provider``, back to good behaviour (no faults, no expiring URLs, no request log) around the test."""
    fake_provider.reset()
    yield fake_provider
    fake_provider.reset()


#: Session fixtures that train a model or embed a corpus: a test that needs one is in the slow lane.
SLOW_FIXTURES = {"real_embedded", "real_embedded_windows", "_tiny_cnn", "tiny_cnn_model", "tiny_cnn_metrics"}


#: Whole modules in the slow lane: end-to-end runs and the benchmarks' smoke runs.
SLOW_MODULES = {"test_e2e.py", "test_benchmarks.py", "test_predict_parity.py"}


def pytest_collection_modifyitems(config, items):
    """Mark slow every test that trains or embeds, every test of a slow module and every browser test
    (it starts Chromium), so that the fast lane, ``-m "not slow"``, runs none of them."""
    for item in items:
        if (SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())) or item.path.name in SLOW_MODULES
                or item.get_closest_marker("browser") is not None):
            item.add_marker(pytest.mark.slow)
