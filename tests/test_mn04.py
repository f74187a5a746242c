"""mn04 (EfficientAT's AudioSet tagger) and its front end against the original's outputs.

``../shared/reference/mn04/fixtures.npz`` holds, for six clips (speech, a dog,
drum and bass, jazz, metal, reggae), the 10 s 32 kHz waveform, the log-mel the
original ``AugmentMelSTFT`` made of it, and the original network's logits and
embedding on that log-mel (see the folder's README).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from genrify.errors import ModelFileError
from genrify.features.audioset import (
    FMAX,
    HOP_LENGTH,
    N_FFT,
    N_MELS,
    SR,
    AudioSetMel,
    audioset_logmel,
    kaldi_mel_filters,
)
from genrify.models.mn04 import (
    AUDIOSET_CLASSES,
    LABELS_PATH,
    MN04,
    MN04_EMBEDDING_DIM,
    WEIGHTS_PATH,
    audioset_labels,
    load_mn04,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "mn04"
N_CLIPS = 6

# The network runs the original's operations in the original's order: on the
# reference machine's log-mel it reproduces logits and embeddings exactly (0.0);
# 1e-4 leaves room for another CPU's kernels (a different summation order).
NET_ATOL = 1e-4
# Front-end outputs are (log(mel + 1e-5) + 4.5) / 5, values in about [-1.4, 2]:
# an absolute difference d is a relative difference of 5·d in mel + 1e-5, and the
# 1e-5 offset bounds that relative error in near-silent bands too, so one absolute
# tolerance holds from the log floor (-1.4026) up. torch: the same float32 STFT,
# products and sums as the original, differences of 2 ulps (2.4e-7 measured).
# NumPy: another float32 FFT and a Hann window rounded from float64, 9.2e-6 measured.
TORCH_MEL_ATOL = 1e-6
NUMPY_MEL_ATOL = 2e-5
LOG_FLOOR = (np.log(1e-5) + 4.5) / 5


@pytest.fixture(scope="module")
def ref(mn04_reference) -> dict[str, np.ndarray]:
    return mn04_reference


@pytest.fixture(scope="module")
def model() -> MN04:
    return load_mn04()


@pytest.fixture(scope="module")
def front_end() -> AudioSetMel:
    return AudioSetMel()


@pytest.fixture(scope="module")
def outputs(model, ref) -> list[dict[str, np.ndarray]]:
    """The network's outputs on each reference log-mel, one clip at a time (as the original was run)."""
    with torch.inference_mode():
        return [{k: v[0].numpy() for k, v in model.forward_features(torch.from_numpy(ref[f"mel_{i}"])[None]).items()}
                for i in range(N_CLIPS)]


def _clip(ref, fragment: str) -> int:
    return next(i for i, name in enumerate(ref["names"]) if fragment in str(name))


def _top(model, logits: np.ndarray, k: int) -> list[str]:
    return [model.labels[j] for j in np.argsort(-logits)[:k]]


# --- the network ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("i", range(N_CLIPS))
def test_network_matches_the_original(outputs, ref, i):
    logits, embedding = outputs[i]["logits"], outputs[i]["embedding"]
    assert logits.shape == (AUDIOSET_CLASSES,) and embedding.shape == (MN04_EMBEDDING_DIM,)
    assert np.abs(logits - ref[f"logits_{i}"]).max() <= NET_ATOL
    assert np.abs(embedding - ref[f"embedding_{i}"]).max() <= NET_ATOL


def test_top_classes_make_sense(model, outputs, ref):
    speech = outputs[_clip(ref, "198-209")]["logits"]
    assert _top(model, speech, 1) == ["Speech"]
    dog = _top(model, outputs[_clip(ref, "pibble")]["logits"], 3)
    assert {"Dog", "Animal", "Domestic animals, pets", "Bark"} & set(dog), dog
    metal = _top(model, outputs[_clip(ref, "metal")]["logits"], 3)
    assert "Heavy metal" in metal and metal[0] in {"Music", "Heavy metal"}, metal


def test_forward_features_and_input_shapes(model, ref):
    mel = torch.from_numpy(np.stack([ref["mel_0"], ref["mel_4"]])[:, :, :400])
    with torch.inference_mode():
        out = model.forward_features(mel)
        assert set(out) == {"logits", "embedding", "probabilities"}
        assert out["logits"].shape == (2, AUDIOSET_CLASSES)
        assert out["embedding"].shape == (2, MN04_EMBEDDING_DIM)
        torch.testing.assert_close(out["probabilities"], torch.sigmoid(out["logits"]), rtol=0, atol=0)
        torch.testing.assert_close(model(mel), out["logits"], rtol=0, atol=0)
        torch.testing.assert_close(model(mel[:, None]), out["logits"], rtol=0, atol=0)
        # A batch equals its clips one by one (up to the batched kernels' summation order).
        torch.testing.assert_close(model(mel[1:]), out["logits"][1:], rtol=0, atol=1e-5)
        # Any length: the head averages over time.
        assert model(mel[:, :, :157]).shape == (2, AUDIOSET_CLASSES)
        with pytest.raises(ValueError, match="128, T"):
            model(mel[:, None, None])


def test_module_stays_in_eval_mode(model, ref):
    mel = torch.from_numpy(ref["mel_1"])[None]
    before = model.features[0][1].running_mean.clone()
    model.train()
    assert not model.training and not any(m.training for m in model.modules())
    with torch.inference_mode():
        first, second = model(mel), model(mel)
    torch.testing.assert_close(first, second, rtol=0, atol=0)   # no dropout
    torch.testing.assert_close(model.features[0][1].running_mean, before, rtol=0, atol=0)


def test_state_dict_is_the_checkpoints(model):
    shipped = load_file(str(WEIGHTS_PATH))
    assert len(shipped) == 312
    assert set(MN04().state_dict()) == set(shipped)
    assert sum(p.numel() for p in model.parameters()) == 983_599
    assert not any(p.requires_grad for p in model.parameters())


def test_labels_csv_has_the_527_classes(model):
    labels = audioset_labels()
    assert len(labels) == AUDIOSET_CLASSES == len(set(labels))
    assert labels[0] == "Speech" and labels[137] == "Music" and "Heavy metal" in labels
    assert model.labels == labels
    assert LABELS_PATH.parent == WEIGHTS_PATH.parent


def test_missing_or_wrong_weights_raise_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found") as missing:
        load_mn04(weights=tmp_path / "absent.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x07" * 64)
    with pytest.raises(ModelFileError, match="not an mn04 weights file") as wrong:
        load_mn04(weights=garbage)
    partial = tmp_path / "partial.safetensors"
    state = load_file(str(WEIGHTS_PATH))
    del state["classifier.5.bias"]
    save_file(state, str(partial))
    with pytest.raises(ModelFileError, match="do not fit") as unfit:
        load_mn04(weights=partial)
    for error in (missing, wrong, unfit):
        assert "\n" not in str(error.value)


# --- the front end -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("i", range(N_CLIPS))
def test_torch_front_end_matches_the_original(front_end, ref, i):
    mel = front_end(torch.from_numpy(ref[f"wave_{i}"])).numpy()
    expected = ref[f"mel_{i}"]
    assert mel.shape == expected.shape == (N_MELS, 1000) and mel.dtype == np.float32
    assert np.abs(mel - expected).max() <= TORCH_MEL_ATOL
    assert expected.min() >= LOG_FLOOR - 1e-6   # the comparison covers floor values too


@pytest.mark.parametrize("i", range(N_CLIPS))
def test_numpy_front_end_matches_the_original(ref, i):
    mel = audioset_logmel(ref[f"wave_{i}"])
    assert mel.shape == (N_MELS, 1000) and mel.dtype == np.float32
    assert np.abs(mel - ref[f"mel_{i}"]).max() <= NUMPY_MEL_ATOL


def test_waveform_to_logits_matches_the_original(model, front_end, ref):
    i = _clip(ref, "metal")
    with torch.inference_mode():
        logits = model(front_end(torch.from_numpy(ref[f"wave_{i}"]))[None])[0].numpy()
    assert np.abs(logits - ref[f"logits_{i}"]).max() <= NET_ATOL


def test_front_end_batches_and_frame_count(front_end):
    rng = np.random.default_rng(3)
    y = (0.1 * rng.standard_normal((2, SR // 2 + 77))).astype(np.float32)
    batch = front_end(torch.from_numpy(y))
    frames = 1 + (y.shape[1] - 1) // HOP_LENGTH   # pre-emphasis drops a sample, center=True adds one frame
    assert batch.shape == (2, N_MELS, frames)
    for row, single in zip(batch, y):
        torch.testing.assert_close(row, front_end(torch.from_numpy(single)), rtol=0, atol=1e-6)
        # White noise puts little energy in the lowest bands after pre-emphasis, where float32 FFT rounding
        # (relative to the frame's energy) weighs most: the two engines differ by up to 2.2e-5 there.
        assert np.abs(audioset_logmel(single) - row.numpy()).max() <= 5e-5
    with pytest.raises(ValueError):
        front_end(torch.zeros(N_FFT // 2))
    with pytest.raises(ValueError):
        audioset_logmel(np.zeros(N_FFT // 2, dtype=np.float32))


def test_silence_sits_at_the_log_floor():
    mel = audioset_logmel(np.zeros(SR, dtype=np.float32))
    np.testing.assert_allclose(mel, LOG_FLOOR, rtol=0, atol=1e-6)


def test_kaldi_mel_filters():
    filters = kaldi_mel_filters(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=FMAX)
    assert filters.shape == (N_MELS, N_FFT // 2 + 1) and filters.dtype == np.float32
    assert (filters >= 0).all() and filters.max() <= 1.0
    assert not filters[:, -1].any()                               # Kaldi leaves out the Nyquist bin
    bin_hz = SR / N_FFT
    assert not filters[:, int(np.ceil(FMAX / bin_hz)):].any()     # nothing above fmax
    # Every band catches a bin (even the narrow low ones), and each peaks at the bin nearest its
    # centre on the mel scale 1127·ln(1 + f/700), equally spaced from 0 to fmax.
    peaks = filters.argmax(axis=1)
    assert filters.max(axis=1).min() > 0.1 and (np.diff(peaks) >= 0).all()
    mel = 1127.0 * np.log(1.0 + np.arange(N_FFT // 2 + 1) * bin_hz / 700.0)
    centres = np.linspace(0.0, 1127.0 * np.log(1.0 + FMAX / 700.0), N_MELS + 2)[1:-1]
    np.testing.assert_array_equal(peaks, np.abs(mel[None, :] - centres[:, None]).argmin(axis=1))
    # Kaldi's convention: fmax <= 0 counts down from Nyquist.
    np.testing.assert_array_equal(kaldi_mel_filters(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=-1000.0),
                                  filters)
    with pytest.raises(ValueError):
        kaldi_mel_filters(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=SR)


def test_a_sine_lights_the_band_around_its_frequency():
    t = np.arange(SR, dtype=np.float64) / SR
    for hz in (440.0, 3000.0, 9000.0):
        mel = audioset_logmel((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32))
        band = int(mel[:, 10:-10].mean(axis=1).argmax())
        centres = 700.0 * np.expm1(np.linspace(0.0, 1127.0 * np.log1p(FMAX / 700.0), N_MELS + 2)[1:-1] / 1127.0)
        assert abs(band - int(np.abs(centres - hz).argmin())) <= 1, (hz, band)


def test_the_numpy_front_end_imports_without_torch():
    code = ("import sys, numpy as np; from genrify.features.audioset import audioset_logmel; "
            "audioset_logmel(np.zeros(4000, dtype=np.float32)); assert 'torch' not in sys.modules")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# --- mn04 as a genrify backbone: windows aligned with musicnn's, and its own tagger --------------------------

def test_the_trunk_averaged_over_every_column_is_the_networks_embedding(model, ref):
    mel = torch.from_numpy(ref["mel_3"])[None]
    with torch.inference_mode():
        cols = model.trunk(mel)
        full = model.forward_features(mel)
        np.testing.assert_allclose(cols.mean(dim=2).numpy(), full["embedding"].numpy(), atol=1e-5)
        np.testing.assert_allclose(model.head(full["embedding"]).numpy(), full["logits"].numpy(), atol=1e-5)


def test_stretches_merge_windows_that_share_context():
    from genrify.models.embedder import stretches

    starts = np.array([0.0, 3.0, 6.0, 20.0])
    assert stretches(starts, seconds=3.0, duration=30.0, context=1.0) == [(0.0, 10.0), (19.0, 24.0)]
    assert stretches(np.array([0.0]), seconds=3.0, duration=2.0, context=1.0) == [(0.0, 2.0)]


def test_each_window_pools_the_columns_inside_it(model, ref):
    """A 10 s clip cut into musicnn's windows: each window's embedding is the mean of the trunk's
    columns inside it, and a window covering the whole clip gives the network's own output."""
    from genrify.models.embedder import audioset_windows

    wave = ref["wave_2"]

    def trunk(a, b):
        piece = wave[int(a * SR):int(b * SR)]
        with torch.inference_mode():
            return model.trunk(AudioSetMel()(torch.from_numpy(piece))[None]).numpy()[0]

    def head(e):
        with torch.inference_mode():
            return model.head(torch.from_numpy(e)).numpy()

    logits, emb = audioset_windows(trunk, head, starts=np.array([0.0, 3.0, 6.0]), seconds=3.0, duration=10.0,
                                   frame_rate=SR / HOP_LENGTH)
    assert logits.shape == (3, AUDIOSET_CLASSES) and emb.shape == (3, MN04_EMBEDDING_DIM)
    cols = trunk(0.0, 10.0)
    centres = (np.arange(cols.shape[1]) + 0.5) * 32 / (SR / HOP_LENGTH)  # these windows hold no last column
    np.testing.assert_allclose(emb[1], cols[:, (centres >= 3) & (centres < 6)].mean(axis=1), atol=1e-5)
    whole, _ = audioset_windows(trunk, head, starts=np.array([0.0]), seconds=10.0, duration=10.0,
                                frame_rate=SR / HOP_LENGTH)
    np.testing.assert_allclose(whole[0], ref["logits_2"], atol=1e-3)  # the clip's own mel, one sample shorter


def test_the_audioset_model_prints_audiosets_top_classes(run_genrify):
    speech = SHARED / "data" / "cc-audio" / "198-209-0000.ogg"
    if not speech.is_file():
        pytest.skip("cc-audio not available")
    proc = run_genrify("predict", "--model", "audioset", "--json", "--top-k", "3", str(speech))
    assert proc.returncode == 0, proc.stderr[-1000:]
    import json

    (answer,) = json.loads(proc.stdout)
    assert answer["verdict"] == "tags" and answer["top"][0][0] == "Speech"
    assert len(answer["probabilities"]) == AUDIOSET_CLASSES
