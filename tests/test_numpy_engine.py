"""The NumPy inference engine (features.musicnn_numpy, models.musicnn_numpy, models.embedder's choice):
against musicnn 0.1.0's TensorFlow outputs, against the torch port, and without torch in the process.

The references (``../shared/reference/musicnn/*.npz``) are those of tests/test_musicnn.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genrify.audio import load_audio
from genrify.errors import ConfigError, InvalidAudioError, ModelFileError
from genrify.features.musicnn_numpy import NumpyLogMel, patch_index
from genrify.models.embedder import MusicnnEmbedder, NumpyEmbedder, make_embedder
from genrify.predict.runtime import FEW_SONGS, choose_engine, plan_runtime
from genrify.models.musicnn_numpy import load_numpy_musicnn

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference" / "musicnn"
GTZAN = SHARED / "data" / "gtzan-mini"
CLIPS = ["blues.00000", "classical.00000", "metal.00000"]

needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference/musicnn not present")


@pytest.fixture(scope="module")
def net():
    return load_numpy_musicnn()


@pytest.fixture(scope="module", params=CLIPS)
def ref(request) -> dict:
    with np.load(REFERENCE / f"{request.param}_MSD_musicnn.npz") as f:
        return {k: f[k] for k in f.files}


@needs_reference
def test_logmel_matches_reference(ref):
    ours = NumpyLogMel()(ref["audio_16k"])
    assert ours.shape == ref["logmel_full"].shape
    diff = np.abs(ours - ref["logmel_full"])
    # As for the torch port (tests/test_musicnn.py): a float32 STFT flips the float16 rounding of a
    # few mel values by one float16 step (<= 4.1e-4 after the log); the rest agrees to round-off.
    assert diff.max() < 5e-4
    assert np.mean(diff > 1e-5) < 2e-3


@needs_reference
def test_network_matches_reference(net, ref):
    out = net.forward_features(ref["input_patches"])
    n = ref["input_patches"].shape[0]
    assert out["logits"].shape == (n, 50) and out["max_pool"].shape == (n, 753)
    assert np.abs(out["taggram"] - ref["taggram"]).max() < 1e-4
    assert np.abs(out["penultimate"] - ref["penultimate_per_patch"]).max() < 1e-4
    for key in ("mean_pool", "max_pool"):
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-5, atol=2e-4, err_msg=key)


@needs_reference
def test_tag_names(net, ref):
    assert net.tags == list(ref["tags"])


def test_matches_the_torch_port_on_real_songs(net):
    import torch

    from genrify.models.musicnn import load_musicnn

    torch_net = load_musicnn()
    for genre in ("jazz", "metal", "reggae"):
        y, _ = load_audio(sorted((GTZAN / genre).iterdir())[0], sr=16000)
        patches = NumpyLogMel()(y)[patch_index(1 + len(y) // 256)]
        with torch.inference_mode():
            expected = {k: v.numpy() for k, v in torch_net.forward_features(torch.from_numpy(patches)).items()}
        got = net.forward_features(patches)
        assert np.abs(got["taggram"] - expected["taggram"]).max() < 1e-5
        for key in ("max_pool", "mean_pool", "penultimate"):
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=2e-4, err_msg=key)


def test_both_embedders_agree(tmp_path):
    y, _ = load_audio(sorted((GTZAN / "country").iterdir())[0], sr=16000)
    a, b = NumpyEmbedder(max_patches=4).embed(y), MusicnnEmbedder(max_patches=4).embed(y)
    np.testing.assert_array_equal(a.starts, b.starts)
    assert set(a.taggrams) == set(b.taggrams) == {"msd_musicnn"}
    assert np.abs(a.taggram - b.taggram).max() < 1e-4
    np.testing.assert_allclose(a.embeddings, b.embeddings, rtol=1e-4, atol=1e-3)


def test_short_and_empty_audio():
    emb = NumpyEmbedder().embed(np.sin(np.arange(16000, dtype=np.float32) / 5))  # 1 s: one wrapped patch
    assert emb.embeddings.shape == (1, 1506) and emb.starts.tolist() == [0.0]
    with pytest.raises(InvalidAudioError):
        NumpyLogMel()(np.zeros(0, np.float32))


def test_missing_or_bad_weights(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_numpy_musicnn(weights=tmp_path / "absent.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFileError, match="not a musicnn weights file"):
        load_numpy_musicnn(weights=bad)


def test_engine_choice(monkeypatch):
    monkeypatch.delenv("GENRIFY_ENGINE", raising=False)
    msd = ("msd_musicnn",)
    assert choose_engine(fast=False, backbones=msd) == "torch"  # a long-running process: torch analyses each song faster
    assert choose_engine(fast=False, backbones=msd, prefer="numpy") == "numpy"  # a few songs: no torch import
    # torch where NumPy cannot compute the same thing: other backbones, the fast mode where torch may
    # measure bfloat16 faster
    assert choose_engine(fast=False, backbones=("msd_musicnn", "mtt_musicnn"), prefer="numpy") == "torch"
    # mn04 has a NumPy twin and no reduced precision: its fast mode is float32 on any CPU
    assert choose_engine(fast=False, backbones=("msd_musicnn", "mn04"), prefer="numpy") == "numpy"
    assert choose_engine(fast=True, backbones=("mn04",), prefer="numpy", cpu_flags=frozenset({"avx512_bf16"})) == "numpy"
    # the fast mode: float32 (so NumPy) where the CPU has no native bfloat16, torch's measured choice
    # where it has (an AMD EPYC without it, a Sapphire Rapids Xeon with it) or its flags are unknown
    assert choose_engine(fast=True, backbones=msd, prefer="numpy", cpu_flags=frozenset({"avx2", "fma"})) == "numpy"
    assert choose_engine(fast=True, backbones=msd, prefer="numpy",
                         cpu_flags=frozenset({"avx512f", "avx512_bf16", "amx_bf16"})) == "torch"
    assert choose_engine(fast=True, backbones=msd, prefer="numpy", cpu_flags=frozenset()) == "torch"
    assert choose_engine(fast=True, backbones=msd, cpu_flags=frozenset({"avx2"})) == "torch"  # a long run prefers torch
    # the user's choice wins over the caller's preference
    assert choose_engine(fast=False, backbones=msd, requested="torch", prefer="numpy") == "torch"
    assert choose_engine(fast=False, backbones=msd, requested="numpy") == "numpy"
    assert choose_engine(fast=True, backbones=msd, requested="numpy") == "numpy"  # asked for: float32 on 3 windows
    with pytest.raises(ConfigError, match="numpy engine"):
        choose_engine(fast=False, backbones=("mtt_musicnn",), requested="numpy")
    monkeypatch.setenv("GENRIFY_ENGINE", "tensorflow")
    with pytest.raises(ConfigError, match="GENRIFY_ENGINE"):
        choose_engine(fast=False, backbones=msd)


def test_the_runtime_plan_builds_the_engine_it_names(monkeypatch):
    """The plan decides; the embedder is what the plan says, whatever the environment says later."""
    monkeypatch.delenv("GENRIFY_ENGINE", raising=False)
    few = plan_runtime(backbones=("msd_musicnn",), fast=False, max_windows=1, songs=1, threads=1)
    many = plan_runtime(backbones=("msd_musicnn",), fast=False, max_windows=1, songs=None, threads=1)
    assert (few.engine, many.engine) == ("numpy", "torch")
    assert few.precision == many.precision == "float32" and few.threads == 1
    monkeypatch.setenv("GENRIFY_ENGINE", "torch")
    assert isinstance(make_embedder(engine=few.engine, max_patches=1), NumpyEmbedder)
    assert isinstance(make_embedder(engine=many.engine, max_patches=1), MusicnnEmbedder)
    assert plan_runtime(backbones=("msd_musicnn",), fast=False, max_windows=1, songs=1).engine == "torch"
    window = plan_runtime(backbones=(), fast=True, max_windows=None, songs=1, threads=2)
    assert (window.engine, window.fast, window.precision, window.threads) == ("torch", False, "float32", 2)


def test_a_few_songs_prefer_numpy(monkeypatch):
    monkeypatch.delenv("GENRIFY_ENGINE", raising=False)

    def engine(songs):
        return plan_runtime(backbones=("msd_musicnn",), fast=False, max_windows=None, songs=songs, threads=1).engine

    assert engine(1) == engine(FEW_SONGS) == "numpy"
    assert engine(FEW_SONGS + 1) == engine(None) == "torch"


def _predict_json(song: Path, *, engine: str) -> tuple[dict, bool]:
    """``genrify predict --json`` in a fresh process, and whether that process imported torch."""
    code = ("import json, sys; from genrify.predict import load_classifier; "
            "a = load_classifier(None, songs=1).analyse(sys.argv[1]); "
            "print(json.dumps([a.to_dict(), 'torch' in sys.modules]))")
    env = {**os.environ, "GENRIFY_ENGINE": engine, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(song)], capture_output=True, text=True, env=env, check=True)
    answer, torch_loaded = json.loads(out.stdout)
    return answer, torch_loaded


def test_default_model_predicts_without_torch_and_as_torch_does():
    song = sorted((GTZAN / "hiphop").iterdir())[0]
    lean, lean_torch = _predict_json(song, engine="auto")
    full, full_torch = _predict_json(song, engine="torch")
    assert not lean_torch and full_torch
    assert lean["genre"] == full["genre"] and lean["verdict"] == full["verdict"]
    for genre, p in full["probabilities"].items():
        assert abs(lean["probabilities"][genre] - p) <= 2e-4, genre  # 4 decimals either side of round-off
    assert lean["details"]["music_probability"] == pytest.approx(full["details"]["music_probability"], abs=2e-4)
