"""mn04's NumPy engine (models.mn04_numpy) against the original's outputs and the torch module, without torch.

``../shared/reference/mn04/fixtures.npz`` is the reference of tests/test_mn04.py: six 10 s log-mels with the
original network's logits and embeddings. The torch module's trunk (the last feature map averaged over
frequency) and head (dense → hard-swish → dense on the pooled embedding) are written out here from its layers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from genrify.errors import ModelFileError
from genrify.models.mn04 import audioset_labels, load_mn04
from genrify.models.mn04_numpy import (
    AUDIOSET_CLASSES,
    MN04_EMBEDDING_DIM,
    WEIGHTS_PATH,
    NumpyMN04,
    load_numpy_mn04,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "mn04"
JAZZ = SHARED / "data" / "gtzan-mini" / "jazz"
N_CLIPS = 6
# As for the torch module (tests/test_mn04.py): float32 round-off, here with the batch norms folded into the
# convolutions and another summation order; up to 1.3e-5 (logits) and 2.7e-6 (embeddings) measured.
ATOL = 1e-4


@pytest.fixture(scope="module")
def ref(mn04_reference) -> dict[str, np.ndarray]:
    return mn04_reference


@pytest.fixture(scope="module")
def net() -> NumpyMN04:
    return load_numpy_mn04()


@pytest.fixture(scope="module")
def model():
    return load_mn04()


@pytest.fixture(scope="module")
def song_mel() -> np.ndarray:
    """The log-mel of 30 s of GTZAN jazz (two 17 s excerpts end to end), ``(128, 3001)``."""
    import soundfile as sf

    from genrify.audio import resample
    from genrify.features.audioset import SR, audioset_logmel

    paths = [JAZZ / "jazz.00000.wav", JAZZ / "jazz.00001.wav"]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"{JAZZ} not present")
    parts = []
    for path in paths:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        parts.append(resample(y.mean(axis=1), orig_sr=sr, target_sr=SR))
    mel = audioset_logmel(np.concatenate(parts)[: 30 * SR + 1])
    assert mel.shape == (128, 3001)
    return mel


def torch_trunk(model, mel: np.ndarray) -> np.ndarray:
    """The torch module's trunk: ``features(mel[:, None]).mean(dim=2)`` of a batch ``(B, 128, T)``."""
    with torch.inference_mode():
        return model.features(torch.from_numpy(mel)[:, None]).mean(dim=2).numpy()


def torch_head(model, embedding: np.ndarray) -> np.ndarray:
    """The torch module's head: dense → hard-swish → dense on embeddings ``(n, 384)``."""
    c = model.classifier
    with torch.inference_mode():
        return c[5](c[3](c[2](torch.from_numpy(embedding)))).numpy()


@pytest.fixture(scope="module")
def outputs(net, ref) -> dict[str, np.ndarray]:
    """The engine's outputs on the six reference log-mels, as one batch (the clips in parallel threads)."""
    return net.forward_features(np.stack([ref[f"mel_{i}"] for i in range(N_CLIPS)]))


@pytest.mark.parametrize("i", range(N_CLIPS))
def test_network_matches_the_original(outputs, ref, i):
    assert np.abs(outputs["logits"][i] - ref[f"logits_{i}"]).max() <= ATOL
    assert np.abs(outputs["embedding"][i] - ref[f"embedding_{i}"]).max() <= ATOL


def test_outputs_shapes_and_types(outputs):
    assert set(outputs) == {"logits", "embedding", "probabilities"}
    assert outputs["logits"].shape == (N_CLIPS, AUDIOSET_CLASSES)
    assert outputs["embedding"].shape == (N_CLIPS, MN04_EMBEDDING_DIM)
    assert all(v.dtype == np.float32 for v in outputs.values())
    np.testing.assert_allclose(outputs["probabilities"], 1 / (1 + np.exp(-outputs["logits"].astype(np.float64))),
                               rtol=0, atol=1e-6)


def test_trunk_matches_torch_on_a_song(net, model, song_mel):
    ours = net.trunk(song_mel)
    expected = torch_trunk(model, song_mel[None])[0]
    assert ours.shape == expected.shape == (MN04_EMBEDDING_DIM, 94) and ours.dtype == np.float32
    assert np.abs(ours - expected).max() <= ATOL
    # The embedding is the trunk averaged over time, as forward_features pools it.
    np.testing.assert_allclose(net.forward_features(song_mel[None])["embedding"][0], ours.mean(axis=1),
                               rtol=0, atol=1e-6)


def test_head_matches_torch(net, model, ref, song_mel):
    embeddings = np.concatenate([np.stack([ref[f"embedding_{i}"] for i in range(N_CLIPS)]),
                                 net.trunk(song_mel).mean(axis=1)[None]])
    ours = net.head(embeddings)
    assert ours.shape == (N_CLIPS + 1, AUDIOSET_CLASSES) and ours.dtype == np.float32
    assert np.abs(ours - torch_head(model, embeddings)).max() <= ATOL
    # On the original's embeddings the head gives the original's logits.
    for i in range(N_CLIPS):
        assert np.abs(ours[i] - ref[f"logits_{i}"]).max() <= ATOL


def test_clip_shorter_than_one_output_column(net, model, ref):
    mel = ref["mel_4"][:, 100:120]  # 20 frames: under the network's 32-frame stride
    trunk = net.trunk(mel)
    assert trunk.shape == (MN04_EMBEDDING_DIM, 1)
    assert np.abs(trunk - torch_trunk(model, np.ascontiguousarray(mel)[None])[0]).max() <= ATOL
    logits = net.forward_features(mel[None])["logits"]
    with torch.inference_mode():
        expected = model(torch.from_numpy(np.ascontiguousarray(mel))[None]).numpy()
    assert np.abs(logits - expected).max() <= ATOL


def test_input_shapes(net, ref):
    mel = np.stack([ref["mel_0"], ref["mel_5"]])[:, :, :157]
    logits = net(mel)
    assert logits.shape == (2, AUDIOSET_CLASSES)
    np.testing.assert_array_equal(net(mel[:, None]), logits)
    # A clip alone gets a multi-threaded BLAS, a batch's clips one thread each: another summation order.
    np.testing.assert_allclose(net(mel[1:]), logits[1:], rtol=0, atol=ATOL)
    with pytest.raises(ValueError, match="128, T"):
        net(mel[0])
    with pytest.raises(ValueError):
        net.trunk(mel)


def test_labels_are_the_torch_modules(net):
    assert net.labels == audioset_labels() and net.tags == list(net.labels)
    assert len(net.labels) == AUDIOSET_CLASSES and net.labels[137] == "Music"


def test_missing_or_wrong_weights_raise_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_numpy_mn04(weights=tmp_path / "absent.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x07" * 64)
    with pytest.raises(ModelFileError, match="not an mn04 weights file"):
        load_numpy_mn04(weights=garbage)
    state = load_file(str(WEIGHTS_PATH))
    for name, change in (("missing", lambda s: s.pop("features.7.block.1.1.running_var")),
                         ("extra", lambda s: s.update({"features.17.0.weight": np.zeros(3, np.float32)})),
                         ("kernel", lambda s: s.update({"features.4.block.1.0.weight": np.zeros((32, 1, 3, 3),
                                                                                                np.float32)})),
                         ("width", lambda s: s.update({"features.12.block.3.0.weight": np.zeros((40, 272, 1, 1),
                                                                                                np.float32)}))):
        broken = dict(state)
        change(broken)
        path = tmp_path / f"{name}.safetensors"
        save_file(broken, str(path))
        with pytest.raises(ModelFileError, match="do not fit") as error:
            load_numpy_mn04(weights=path)
        assert "\n" not in str(error.value)


def test_the_engine_never_imports_torch():
    code = ("import sys, numpy as np; import genrify.models.mn04_numpy as m; net = m.load_numpy_mn04(); "
            "out = net.forward_features(np.zeros((2, 128, 300), np.float32)); net.head(net.trunk(np.zeros((128, 50), "
            "np.float32)).mean(axis=1)[None]); assert out['logits'].shape == (2, 527); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
