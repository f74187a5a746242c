"""musicnn's four pretrained taggers: the registry, and each PyTorch port against TensorFlow's outputs.

The fixtures (``tests/fixtures/musicnn_tf/*.npz``) were made once by
``tools/make_musicnn_fixtures.py``: musicnn 0.1.0 under TensorFlow 2.15.1 with
librosa 0.11 on two 6 s excerpts of real clips (classical.00000 and metal.00000
of gtzan-mini, from 5 s), two 3 s patches each. They hold the exact input
patches, so these tests need neither TensorFlow nor librosa nor the audio.

Tolerance: TensorFlow and PyTorch both compute in float32 and differ only in the
summation order of their convolution kernels. Measured (max over both clips):
tag probabilities 3.5e-6 (mtt_musicnn), 7.8e-7 (msd_musicnn), 6.0e-7 (mtt_vgg),
3.0e-7 (msd_vgg); penultimate 1.0e-5 / 5.6e-6 / 7.6e-6 / 5.1e-6. The bounds
(1e-4 absolute) leave room for other CPUs' kernels (up to 1.1e-4 was seen on
musicnn's pooled features on an AMD EPYC, see tests/test_musicnn.py) while a
real porting mistake is far larger: TensorFlow's batch-norm epsilon 1e-3
replaced by PyTorch's 1e-5 moves the probabilities by 0.03-0.04, flattening
VGG's pool5 channel-first by 0.9.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from genrify.errors import ConfigError, ModelFileError
from genrify.models.backbones import BACKBONES, MSD_TAGS, MTT_TAGS, Backbone, get_backbone, load_backbone
from genrify.models.musicnn import MusiCNN, bfloat16_is_fast, load_musicnn
from genrify.models.vgg import VGG, load_vgg

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "musicnn_tf"
CLIPS = ["classical.00000", "metal.00000"]
#: Backbone name → the checkpoint name musicnn (and the fixtures' keys) use.
TF_NAMES = {"msd_musicnn": "MSD_musicnn", "mtt_musicnn": "MTT_musicnn", "msd_vgg": "MSD_vgg", "mtt_vgg": "MTT_vgg"}
ATOL = 1e-4  # see the module docstring


@functools.cache
def _model(name: str) -> torch.nn.Module:
    return load_backbone(name)


@functools.cache
def _reference(clip: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{clip}.npz") as f:
        return {k: f[k] for k in f.files}


def _run(model: torch.nn.Module, patches: np.ndarray) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return model.forward_features(torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)))


@functools.cache
def _outputs(name: str, clip: str) -> dict[str, torch.Tensor]:
    """The backbone's outputs on the fixture's input patches, computed once per module (the CPU is shared)."""
    return _run(_model(name), _reference(clip)["input_patches"])


#: The backbones over musicnn's input (held to musicnn's TensorFlow outputs here); mn04 has its own
#: input and its own reference (tests/test_mn04.py).
MUSICNN_INPUT = [name for name, spec in BACKBONES.items() if spec.input == "musicnn"]
PAIRS = [(name, clip) for name in MUSICNN_INPUT for clip in CLIPS]


def test_registry_names_and_files():
    assert list(BACKBONES) == ["msd_musicnn", "mtt_musicnn", "msd_vgg", "mtt_vgg", "mn04"]
    assert MUSICNN_INPUT == ["msd_musicnn", "mtt_musicnn", "msd_vgg", "mtt_vgg"]
    for spec in BACKBONES.values():
        # float32 weights; the package should stay small (musicnn 3.2 MB, vgg 2.4 MB, mn04 4.0 MB).
        assert 1_000_000 < spec.weights_path.stat().st_size < 4_100_000, spec.name
        assert len(spec.tags) == (527 if spec.input == "audioset" else 50)
    assert get_backbone("mn04").tags[137] == "Music" and get_backbone("mn04").embedding_dim == 384


def test_mtt_tags_add_genres_msd_lacks():
    for tag in ("classical", "techno", "ambient", "new age", "opera", "choral", "indian", "country", "metal", "dance"):
        assert tag in MTT_TAGS
    assert {"classical", "techno", "opera", "choral", "indian"}.isdisjoint(MSD_TAGS)


@pytest.mark.parametrize("name", MUSICNN_INPUT)
def test_registry_loads_each(name):
    spec, model, reference = BACKBONES[name], _model(name), _reference(CLIPS[0])
    assert isinstance(model, spec.architecture) and not model.training
    assert tuple(model.tags) == spec.tags == tuple(reference[f"{TF_NAMES[name]}.tags"])
    out = _outputs(name, CLIPS[0])
    n = reference["input_patches"].shape[0]
    assert out["taggram"].shape == (n, 50)
    assert spec.embed(out).shape == (n, spec.embedding_dim)
    with torch.inference_mode():  # forward is the logits of forward_features
        logits = model(torch.from_numpy(reference["input_patches"][:1]))
    torch.testing.assert_close(logits, out["logits"][:1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "clip"), PAIRS)
def test_outputs_match_tensorflow(name, clip):
    reference, tf_name = _reference(clip), TF_NAMES[name]
    out = {k: v.numpy() for k, v in _outputs(name, clip).items()}
    assert np.abs(out["taggram"] - reference[f"{tf_name}.taggram"]).max() < ATOL
    assert np.abs(out["penultimate"] - reference[f"{tf_name}.penultimate"]).max() < ATOL
    if BACKBONES[name].architecture is MusiCNN:
        # Pooled features reach ~100: compare relative to that (measured <= 3.6e-4 absolute at 74).
        for key in ("max_pool", "mean_pool"):
            np.testing.assert_allclose(out[key], reference[f"{tf_name}.{key}"], rtol=1e-5, atol=2e-4, err_msg=key)


@pytest.mark.parametrize("name", ["mtt_musicnn", "mtt_vgg"])
def test_mtt_taggers_hear_the_genre(name):
    # The point of the MTT taggers: genre tags MSD lacks. Top 3 of the mean over patches.
    for clip, tag in (("classical.00000", "classical"), ("metal.00000", "metal")):
        probs = _outputs(name, clip)["taggram"].mean(0)
        assert tag in [_model(name).tags[i] for i in probs.argsort(descending=True)[:3]], (name, clip)


def test_msd_musicnn_is_the_shipped_model():
    # The registry's default backbone is load_musicnn()'s model, bit for bit.
    via_registry = _outputs("msd_musicnn", "metal.00000")
    direct = _run(load_musicnn(), _reference("metal.00000")["input_patches"])
    for key in ("logits", "max_pool", "mean_pool"):
        torch.testing.assert_close(via_registry[key], direct[key], rtol=0, atol=0)
    spec = get_backbone("msd_musicnn")
    torch.testing.assert_close(spec.embed(direct), torch.cat([direct["max_pool"], direct["mean_pool"]], dim=1))


def test_vgg_batch_equals_stacked_singles():
    model, patches = _model("msd_vgg"), _reference("classical.00000")["input_patches"]
    batch = _outputs("msd_vgg", "classical.00000")
    singles = [_run(model, p[None]) for p in patches]
    for key in ("logits", "penultimate"):
        # Equal up to float32 reassociation (oneDNN picks conv kernels by batch size).
        torch.testing.assert_close(batch[key], torch.cat([s[key] for s in singles]), rtol=1e-5, atol=1e-5)


def test_vgg_shapes_and_patch_length():
    model = VGG()
    out = _run(model, np.zeros((1, 187, 96), dtype=np.float32))
    assert [tuple(out[f"pool{i}"].shape) for i in range(1, 6)] == [
        (1, 128, 92, 48), (1, 128, 46, 24), (1, 128, 23, 12), (1, 128, 11, 6), (1, 128, 2, 1)]
    assert out["penultimate"].shape == (1, 256) and model.embedding_dim == 256
    with pytest.raises(ValueError):
        model(torch.zeros(1, 200, 96))  # the dense layer fixes the patch length


def test_fast_flag():
    assert load_backbone("mtt_musicnn", fast=True).uses_bfloat16 == bfloat16_is_fast()
    assert isinstance(load_backbone("mtt_vgg", fast=True), VGG)  # no fast path: same model


def test_bad_names_and_files(tmp_path):
    with pytest.raises(ConfigError):
        load_backbone("gtzan_vgg")
    with pytest.raises(ModelFileError):
        load_vgg(weights=tmp_path / "absent.safetensors")
    with pytest.raises(ModelFileError):  # musicnn weights do not fit the vgg
        load_vgg(weights=get_backbone("mtt_musicnn").weights_path)
    spec = get_backbone("msd_vgg")
    wrong_tags = Backbone("msd_vgg", VGG, spec.weights, MTT_TAGS, spec.embedding, spec.embedding_dim, "")
    with pytest.raises(ModelFileError):
        wrong_tags.load()
