"""musicnn port: input pipeline and network against the original's outputs on real clips.

The references (``../shared/reference/musicnn/*.npz``) were computed by musicnn
0.1.0 under TensorFlow 2.15 with librosa 0.11 (see their README).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from genrify.audio import load_audio
from genrify.errors import InvalidAudioError, ModelFileError
from genrify.features.musicnn import (
    PATCH_FRAMES,
    MusicnnLogMel,
    musicnn_logmel,
    musicnn_patches,
    patch_starts,
)
from genrify.models.musicnn import FAST_PATCHES, MusiCNN, bfloat16_is_fast, load_musicnn, quantize_musicnn

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference" / "musicnn"
CLIPS = ["blues.00000", "classical.00000", "metal.00000"]

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference/musicnn not present")


@pytest.fixture(scope="module")
def model() -> MusiCNN:
    return load_musicnn()


def _load(clip: str) -> dict:
    with np.load(REFERENCE / f"{clip}_MSD_musicnn.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module", params=CLIPS)
def ref(request) -> dict:
    return _load(request.param)


@pytest.fixture(scope="module")
def blues() -> dict:
    return _load(CLIPS[0])


@pytest.fixture(scope="module")
def fast_model() -> MusiCNN:
    return load_musicnn(fast=True)


@pytest.fixture(scope="module")
def out(model, ref) -> dict[str, np.ndarray]:
    """The network's outputs on the reference's exact input patches (computed once per clip)."""
    return _run(model, ref["input_patches"])


def _run(model: MusiCNN, patches: np.ndarray) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        out = model.forward_features(torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)))
    return {k: v.numpy() for k, v in out.items()}


def _float16_ulp_in_log(logmel: np.ndarray) -> np.ndarray:
    """How far one float16 step of the mel power moves log10(10000·x + 1), per element."""
    x16 = ((10.0 ** logmel.astype(np.float64) - 1.0) / 10000.0).astype(np.float16)
    ulp = np.spacing(np.abs(x16)).astype(np.float64)
    return (10000.0 * ulp / np.log(10.0) / 10.0 ** logmel.astype(np.float64)).astype(np.float32)


# --------------------------------------------------------------------------- (a) input pipeline


def test_logmel_matches_reference(ref):
    ours = musicnn_logmel(y=ref["audio_16k"])
    assert ours.shape == ref["logmel_full"].shape
    diff = np.abs(ours - ref["logmel_full"])
    # The reference rounds the mel power to float16 before the log. Our float32 STFT
    # differs from librosa's (float64 FFT) by ~1e-7 relative, which flips the float16
    # rounding of a few elements (measured 0.03–0.06 %) by exactly one float16 step:
    # <= 4.1e-4 after the log. Every other element agrees to float32 round-off.
    assert np.all(diff <= 1.01 * _float16_ulp_in_log(ref["logmel_full"]) + 2e-6)
    assert diff.max() < 5e-4
    assert np.mean(diff > 1e-5) < 2e-3


def test_patches_match_reference(ref):
    patches = musicnn_patches(ref["logmel_full"])
    np.testing.assert_array_equal(patches, ref["input_patches"])


def test_logmel_module_batch_equals_single(blues):
    y = torch.from_numpy(blues["audio_16k"][: 16000 * 4])
    module = MusicnnLogMel()
    with torch.inference_mode():
        batch = module(torch.stack([y, y.flip(0)]))
        singles = torch.stack([module(y), module(y.flip(0))])
    assert batch.shape == (2, 1 + y.shape[0] // 256, 96)
    torch.testing.assert_close(batch, singles, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- (b) network


def test_network_matches_reference(out, ref):
    n = ref["input_patches"].shape[0]
    assert out["logits"].shape == (n, 50) and out["penultimate"].shape == (n, 200)
    assert np.abs(out["taggram"] - ref["taggram"]).max() < 1e-4  # measured <= 7.5e-7
    assert np.abs(out["penultimate"] - ref["penultimate_per_patch"]).max() < 1e-4  # measured <= 4.7e-6
    # Pooled and front-end features reach ~100 in magnitude: compare relative to that. The
    # float32 summation order differs between CPUs' convolution kernels: up to 1.13e-4 measured
    # on an AMD EPYC without AVX512-BF16 (max_pool of classical.00000).
    for key in ("mean_pool", "max_pool", "timbral", "temporal"):
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-5, atol=2e-4, err_msg=key)


def test_tag_names(model, ref):
    assert model.tags == list(ref["tags"])


def test_batch_equals_stacked_singles(model, blues):
    batch = _run(model, blues["input_patches"][:2])
    singles = [_run(model, p[None]) for p in blues["input_patches"][:2]]
    for key in ("logits", "penultimate", "max_pool"):
        # Equal up to float32 reassociation (oneDNN picks conv kernels by batch size).
        np.testing.assert_allclose(batch[key], np.concatenate([s[key] for s in singles]), rtol=1e-5, atol=1e-4)


def test_pool_first_equals_literal_order(model):
    # The blocks max-pool before ReLU and batch norm (and the timbral ones replace the conv by a
    # matrix product); check against conv → ReLU → BN → max, up to float32 reassociation.
    x = torch.randn(2, 1, 60, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for block in [*model.timbral, *model.temporal]:
            torch.testing.assert_close(block(x), block.reference_forward(x), rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- (c) end to end


def test_end_to_end_from_wav(model, ref):
    y, sr = load_audio(SHARED / str(ref["source_path"]), sr=16000, max_duration=None)
    assert sr == 16000
    out = _run(model, musicnn_patches(musicnn_logmel(y=y)))
    assert out["taggram"].shape == ref["taggram"].shape
    # load_audio decodes and resamples with soxr HQ like librosa 0.11 (bit-identical
    # here); what remains are the one-float16-step input flips of the log-mel test,
    # which move tag probabilities by <= 5.1e-6 (measured).
    assert np.abs(out["taggram"] - ref["taggram"]).max() < 1e-4
    assert np.abs(out["penultimate"] - ref["penultimate_per_patch"]).max() < 1e-3


# --------------------------------------------------------------------------- patching, fast mode, loading


def test_short_clip_is_wrap_padded():
    y = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)  # 1 s → 63 frames
    logmel = musicnn_logmel(y=y)
    patches = musicnn_patches(logmel)
    assert patches.shape == (1, PATCH_FRAMES, 96)
    np.testing.assert_array_equal(patches[0, : logmel.shape[0]], logmel)
    np.testing.assert_array_equal(patches[0, logmel.shape[0] :], np.resize(logmel, (PATCH_FRAMES, 96))[logmel.shape[0] :])


def test_tiny_and_empty_audio():
    patches = musicnn_patches(musicnn_logmel(y=np.full(100, 0.1, dtype=np.float32)))  # 1 frame
    assert patches.shape == (1, PATCH_FRAMES, 96)
    assert np.all(patches == patches[:, :1])
    with pytest.raises(InvalidAudioError):
        musicnn_logmel(y=np.zeros(0, dtype=np.float32))


@pytest.mark.parametrize("n_frames", [187, 200, 1876, 20000])
def test_spread_patches_count_and_bounds(n_frames):
    starts = patch_starts(n_frames, max_patches=FAST_PATCHES)
    assert len(starts) == min(FAST_PATCHES, n_frames // PATCH_FRAMES)
    assert starts.min() >= 0 and starts.max() + PATCH_FRAMES <= n_frames
    assert np.all(np.diff(starts) >= 0)
    # Without a cap: musicnn's non-overlapping grid.
    np.testing.assert_array_equal(patch_starts(n_frames), np.arange(n_frames // PATCH_FRAMES) * PATCH_FRAMES)


def test_patches_keep_tensor_type():
    logmel = torch.arange(400 * 96, dtype=torch.float32).reshape(400, 96)
    patches = musicnn_patches(logmel)
    assert isinstance(patches, torch.Tensor) and patches.shape == (2, PATCH_FRAMES, 96)
    torch.testing.assert_close(patches[1], logmel[PATCH_FRAMES : 2 * PATCH_FRAMES])


def test_fast_mode_stays_close(model, fast_model, blues):
    assert fast_model.uses_bfloat16 == bfloat16_is_fast()
    full, fast = _run(model, blues["input_patches"]), _run(fast_model, blues["input_patches"])
    # bfloat16 timbral convs: measured <= 0.006 on the probabilities over the three clips.
    assert np.abs(fast["taggram"] - full["taggram"]).max() < 0.02
    cos = np.sum(fast["penultimate"] * full["penultimate"], 1) / (
        np.linalg.norm(fast["penultimate"], axis=1) * np.linalg.norm(full["penultimate"], axis=1)
    )
    assert cos.min() > 0.999


def test_quantize_musicnn_copies(model):
    fast = quantize_musicnn(model)
    assert fast is not model and not model.uses_bfloat16
    assert fast.tags == model.tags and fast.uses_bfloat16 == bfloat16_is_fast()


def test_missing_or_bad_weights(tmp_path):
    with pytest.raises(ModelFileError):
        load_musicnn(weights=tmp_path / "absent.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFileError):
        load_musicnn(weights=bad)
