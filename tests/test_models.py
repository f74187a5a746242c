"""Models: the registry, output shapes, the MLP's column-offset augmentation, and the
model file (round trip; refusal of everything that is not an intact genrify model)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from helpers.modelfiles import write_raw_model
from hypothesis import given, settings
from hypothesis import strategies as st

from genrify.config import ModelConfig, RunConfig
from genrify.errors import ConfigError, ModelFileError
from genrify.models import REGISTRY, build_model
from genrify.models.modelfile import ModelFile, load_model_file, save_model_file


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize(("n_features", "n_frames"), [(10, 259), (128, 259), (10, 2584), (13, 20), (2, 40), (1, 20)])
def test_registry_builds_models_with_the_right_output_shape(name, n_features, n_frames):
    assert set(REGISTRY) >= {"mlp", "cnn"}
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, hidden=(32,), dense=16), n_features=n_features, n_frames=n_frames,
                        n_classes=7)
    x = torch.randn(3, n_features, n_frames)
    model.train()
    out = model(x)
    assert out.shape == (3, 7) and torch.isfinite(out).all()
    out.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (3, 7)
    # The output depends on the input (not a constant function of an empty view).
    with torch.no_grad():
        assert not torch.allclose(model(x), model(torch.randn_like(x) * 3))


@pytest.mark.parametrize(("n_features", "n_frames"), [(1, 1), (1, 3), (3, 2), (10, 8)])
def test_cnn_accepts_tiny_windows(n_features, n_frames):
    model = build_model(ModelConfig(name="cnn"), n_features=n_features, n_frames=n_frames, n_classes=2).eval()
    with torch.no_grad():
        assert model(torch.randn(4, n_features, n_frames)).shape == (4, 2)


def test_mlp_window_shorter_than_its_column_step_is_a_config_error():
    with pytest.raises(ConfigError, match="column_step"):
        build_model(ModelConfig(name="mlp", column_step=20), n_features=10, n_frames=19, n_classes=3)


def test_unknown_model_name_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model"):
        build_model(ModelConfig(name="transformer"), n_features=10, n_frames=259, n_classes=3)


def test_mlp_hidden_layers_follow_the_config():
    model = build_model(ModelConfig(name="mlp", hidden=(600, 400, 100), column_step=20), n_features=10,
                        n_frames=259, n_classes=5)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10 * 12, 600), (600, 400), (400, 100), (100, 5)]


@settings(max_examples=20, deadline=None)
@given(step=st.integers(2, 20), cols=st.integers(1, 6), extra=st.integers(0, 19), batch=st.integers(2, 16),
       seed=st.integers(0, 1000))
def test_mlp_train_uses_one_offset_per_sample_and_eval_averages_all(step, cols, extra, batch, seed):
    torch.manual_seed(seed)
    n_frames = step * cols + extra % step
    model = build_model(ModelConfig(name="mlp", hidden=(8,), dropout=0.0, column_step=step), n_features=3,
                        n_frames=n_frames, n_classes=4)
    x = torch.randn(batch, 3, n_frames)
    net = model.net
    with torch.no_grad():
        # The logits of every view x[..., o::step] (the first cols columns at offset o).
        views = torch.stack([net(x[..., o: step * cols: step].flatten(1)) for o in range(step)], dim=1)  # (B, step, C)
        model.train()
        offsets_seen = set()
        for _ in range(5):
            out = model(x)
            match = (out[:, None, :] - views).abs().amax(-1) < 1e-5  # (B, step)
            assert (match.sum(1) >= 1).all()  # each sample is exactly one view
            offsets_seen |= {int(m.nonzero()[0]) for m in match}
        assert len(offsets_seen) > 1  # offsets are random, not fixed
        model.eval()
        a, b = model(x), model(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # deterministic
    torch.testing.assert_close(a, views.mean(1), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- model files


def _model_file(name: str = "cnn") -> ModelFile:
    torch.manual_seed(0)
    config = RunConfig(model=ModelConfig(name=name, hidden=(16,), dense=16))
    model = build_model(config.model, n_features=10, n_frames=259, n_classes=3)
    tensors = {f"model.{k}": v.numpy().copy() for k, v in model.state_dict().items()}
    tensors["norm.mean"] = np.arange(10, dtype=np.float32)
    tensors["norm.std"] = np.ones(10, dtype=np.float32)
    return ModelFile(config=config, labels=["jazz", "metal", "pop"], tensors=tensors, extra={"seed": 0, "note": "ü"})


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_model_file_round_trip(tmp_path, name):
    mf = _model_file(name)
    path = tmp_path / "m.genrify"
    save_model_file(path, mf)
    back = load_model_file(path)
    assert back.config == mf.config and back.labels == mf.labels and back.extra == mf.extra
    assert set(back.tensors) == set(mf.tensors)
    for k, v in mf.tensors.items():
        assert back.tensors[k].dtype == v.dtype
        np.testing.assert_array_equal(back.tensors[k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["m.genrify"]  # nothing but the file (atomic write)
    # The weights load strictly into a fresh model of the stored architecture.
    from genrify.predict import GenreClassifier

    clf = GenreClassifier.from_file(path)
    assert clf.labels == ["jazz", "metal", "pop"]


@pytest.fixture
def saved_model(tmp_path):
    path = tmp_path / "good.genrify"
    save_model_file(path, _model_file())
    return path


def _refused(path, *words):
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert any(w in message for w in words), message
    return message


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_model_file_is_refused(saved_model, tmp_path, keep):
    data = saved_model.read_bytes()
    bad = tmp_path / "truncated.genrify"
    bad.write_bytes(data[: int(len(data) * keep)])
    _refused(bad, "damaged", "not a genrify model", "header")


def test_tampered_tensor_byte_is_refused(saved_model, tmp_path):
    data = bytearray(saved_model.read_bytes())
    data[-10] ^= 0x01  # one bit of one weight
    bad = tmp_path / "tampered.genrify"
    bad.write_bytes(bytes(data))
    _refused(bad, "modified", "damaged")


def test_tampered_label_in_the_header_is_refused(saved_model, tmp_path):
    """Swapping two genre names keeps the header valid JSON and the weights intact, but the
    model would now name the wrong genres: it must be refused too."""
    data = saved_model.read_bytes()
    assert data.count(b"jazz") == 1 and data.count(b"metal") == 1
    swapped = data.replace(b"jazz", b"JAZZ").replace(b"metal", b"jazz_").replace(b"JAZZ", b"metal")
    assert len(swapped) == len(data) + 1
    # Keep the 8-byte header length in step with the one-byte-longer header.
    n = int.from_bytes(swapped[:8], "little") + 1
    bad = tmp_path / "labels.genrify"
    bad.write_bytes(n.to_bytes(8, "little") + swapped[8:])
    _refused(bad, "modified", "damaged")
    # A tampered configuration byte, same length.
    data2 = saved_model.read_bytes().replace(b'\\"dense\\": 16', b'\\"dense\\": 17')
    assert data2 != saved_model.read_bytes()
    bad.write_bytes(data2)
    _refused(bad, "modified", "damaged", "match")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # creating the marker file would prove code ran


def test_pickles_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    raw = tmp_path / "raw.genrify"
    raw.write_bytes(pickle.dumps({"weights": _Exploit(marker)}))
    assert not marker.exists()
    _refused(raw, "not a genrify model", "pickle")
    assert not marker.exists()

    torch_file = tmp_path / "torch.genrify"
    torch.save({"model": {"w": torch.zeros(3)}, "labels": ["a", "b"], "hook": _Exploit(marker)}, torch_file)
    assert not marker.exists()
    _refused(torch_file, "not a genrify model", "pickle")
    assert not marker.exists()

    from genrify.predict import GenreClassifier

    with pytest.raises(ModelFileError):
        GenreClassifier.from_file(raw)
    assert not marker.exists()


@pytest.mark.parametrize("size", [0, 3, 8, 64, 4096])
def test_random_bytes_are_refused(tmp_path, size):
    bad = tmp_path / "random.genrify"
    bad.write_bytes(np.random.default_rng(size).bytes(size))
    _refused(bad, "not a genrify model", "damaged", "too short", "header")


def test_safetensors_from_another_tool_is_refused(tmp_path):
    from safetensors.numpy import save_file
    from safetensors.torch import save_file as save_torch

    other = tmp_path / "other.safetensors"
    save_file({"weight": np.zeros((3, 3), np.float32)}, other)
    assert "another tool" in _refused(other, "another tool")
    save_torch({"w": torch.ones(2)}, other, metadata={"format": "pt"})
    _refused(other, "another tool")


def test_missing_file_and_directory_are_refused(tmp_path):
    _refused(tmp_path / "nope.genrify", "no such")
    _refused(tmp_path, "directory")


def test_model_file_whose_weights_do_not_fit_the_architecture_is_refused(tmp_path):
    from genrify.predict import GenreClassifier

    mf = _model_file("cnn")
    last = [k for k in mf.tensors if k.startswith("model.")][-1]  # the output layer's bias
    mf.tensors = {k: v for k, v in mf.tensors.items() if k != last}
    path = tmp_path / "partial.genrify"
    save_model_file(path, mf)
    with pytest.raises(ModelFileError, match="does not match"):
        GenreClassifier.from_file(path)


# --------------------------------------------------------------------------- model files that are not plain files, or hostile


def test_a_fifo_a_device_and_a_huge_file_are_refused_without_reading(tmp_path):
    """Opening a FIFO for reading blocks until a writer comes; /dev/zero never ends: neither is opened."""
    from genrify.fileio import MAX_FILE_BYTES

    fifo = tmp_path / "fifo.genrify"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.genrify"
    zero.symlink_to("/dev/zero")
    huge = tmp_path / "huge.genrify"
    with open(huge, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing written, nothing should be read
    assert "named pipe" in _refused(fifo, "not a regular file")
    assert "character device" in _refused(zero, "not a regular file")
    _refused(huge, "too large")


def _rewritten(saved_model, tmp_path, **changes):
    """The saved model with metadata fields changed and the checksum recomputed, as anyone can."""
    from safetensors.numpy import load, save

    from genrify.models.modelfile import _digest
    from safetensors import safe_open

    data = saved_model.read_bytes()
    with safe_open(str(saved_model), framework="np") as f:
        metadata = dict(f.metadata())
    tensors = load(data)
    metadata.update(changes)
    metadata["sha256"] = _digest(tensors, metadata)
    out = tmp_path / "rewritten.genrify"
    out.write_bytes(save(tensors, metadata=metadata))
    return out


def test_a_recomputed_checksum_is_accepted_it_is_not_a_signature(saved_model, tmp_path):
    """The checksum catches damage and careless edits; anyone who recomputes it can change the labels.
    docs/reliability.md ("Files and tags") says so."""
    import json

    edited = _rewritten(saved_model, tmp_path, labels=json.dumps(["pop", "metal", "jazz"]))
    assert load_model_file(edited).labels == ["pop", "metal", "jazz"]


def test_deeply_nested_json_in_the_header_is_refused_in_one_line(saved_model, tmp_path):
    import struct

    deep = "[" * 100_000 + "]" * 100_000
    for field in ("labels", "extra", "config"):
        bad = _rewritten(saved_model, tmp_path, **{field: deep})
        _refused(bad, "nested deeper")
    header = b'{"__metadata__": {"format": "genrify-model", "version": "1"}, "x": ' + deep.encode() + b"}"
    raw = tmp_path / "deep.genrify"
    raw.write_bytes(struct.pack("<Q", len(header)) + header)
    _refused(raw, "nested deeper")
    # Brackets inside strings do not nest: a label made of brackets is fine.
    ok = _rewritten(saved_model, tmp_path, labels='["' + "[" * 1000 + '", "b", "c"]')
    assert load_model_file(ok).labels[0] == "[" * 1000


def test_a_header_of_the_wrong_shape_is_refused_in_one_line(tmp_path):
    import struct

    for header in (b'{"__metadata__": [1, 2]}', b'{"__metadata__": "x"}', b"{}", b'{"__metadata__": {"format": 1}}'):
        bad = tmp_path / "shape.genrify"
        bad.write_bytes(struct.pack("<Q", len(header)) + header)
        _refused(bad, "not a genrify model", "another tool")


def _peak_growth_mb(path) -> tuple[float, str]:
    """Load ``path`` in a fresh interpreter: (peak RSS growth in MB during the load, the refusal or "loaded")."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import safetensors.numpy\n"
        "from genrify.errors import ModelFileError\n"
        "from genrify.models.modelfile import load_model_file\n"
        # VmHWM, not ru_maxrss: the latter keeps the peak of the process that started this one (pytest's).
        "def peak():\n"
        "    return int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
        "before = peak()\n"
        "try:\n"
        "    load_model_file(sys.argv[1]); what = 'loaded'\n"
        "except ModelFileError as exc:\n"
        "    what = str(exc)\n"
        "grown = peak() - before\n"
        "print(grown / 1024); print(what)\n"
    )
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    grown, what = proc.stdout.splitlines()
    return float(grown), what


def test_a_huge_header_is_refused_before_it_is_read(tmp_path):
    """A 20 MB header of spaces once cost about 20 bytes of memory per byte before it was refused."""
    from genrify.models.modelfile import MAX_HEADER_BYTES

    spaces = tmp_path / "spaces.genrify"
    write_raw_model(spaces, b"{" + b" " * 20_000_000 + b"}")
    grown, what = _peak_growth_mb(spaces)
    assert "header" in what and str(MAX_HEADER_BYTES) in what.replace(",", ""), what
    assert grown < 16, f"{grown:.0f} MB to refuse a header it should not read"


def test_a_header_of_many_small_values_is_bounded(tmp_path):
    """Empty objects by the million (``{},{},…``) are refused by the header's shape before any is built
    (once about 40 bytes of memory per byte of header)."""
    from genrify.models.modelfile import MAX_HEADER_BYTES

    body = b"{}," * ((MAX_HEADER_BYTES - 200) // 3)
    bad = tmp_path / "objects.genrify"
    write_raw_model(bad, b'{"__metadata__": {"format": "genrify-model", "version": "1"}, "x": [' + body + b"{}]}")
    grown, what = _peak_growth_mb(bad)
    assert "not a safetensors header" in what, what
    assert grown < 128, f"{grown:.0f} MB to refuse a {MAX_HEADER_BYTES}-byte header"


def test_a_bad_checksum_is_found_without_reading_the_file_into_memory(tmp_path):
    """200 MB of weights whose checksum does not match: refused while streaming, not after loading."""
    import json

    n = 50_000_000
    metadata = {"format": "genrify-model", "version": "1", "config": RunConfig().to_json(), "labels": '["a"]',
                "extra": "{}", "sha256": "0" * 64}
    header = json.dumps({"__metadata__": metadata,
                         "model.w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    bad = tmp_path / "big.genrify"
    write_raw_model(bad, header + b" " * (-len(header) % 8), data_bytes=4 * n)
    grown, what = _peak_growth_mb(bad)
    assert "checksum mismatch" in what, what
    assert grown < 64, f"{grown:.0f} MB to refuse a 200 MB file by its checksum"


def test_tensor_tables_that_do_not_fit_the_file_are_refused(tmp_path, saved_model):
    import json
    import struct

    data = saved_model.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    for change in ({"dtype": "BF16"}, {"dtype": "X"}, {"shape": [-1]}, {"shape": "3"}, {"data_offsets": [0, 10**12]},
                   {"data_offsets": [5, 1]}, {"data_offsets": "x"}):
        edited = dict(header, **{name: dict(header[name], **change)})
        raw = json.dumps(edited).encode()
        bad = tmp_path / "table.genrify"
        bad.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
        _refused(bad, "damaged", "not a genrify model")


# --------------------------------------------------------------------------- conv through a frequency DFT


@pytest.mark.parametrize("width, n_freq, frames, chunk", [(38, 96, 60, 16), (67, 96, 23, 16), (1, 8, 5, 2),
                                                           (96, 96, 9, 4), (5, 10, 17, 32)])
def test_dft_conv_equals_direct_conv(width, n_freq, frames, chunk):
    import torch.nn.functional as F

    from genrify.models.fftconv import conv_max_min_over_frequency, prepare_weights

    g = torch.Generator().manual_seed(width)
    weight = torch.randn(11, 1, 7, width, generator=g)
    x = torch.randn(frames + 6, n_freq, generator=g)
    direct = F.conv2d(x[None, None], weight)[0]  # (C, frames, n_freq - width + 1)
    zmax, zmin = conv_max_min_over_frequency(x, prepare_weights(weight, n_freq=n_freq), time_chunk=chunk)
    scale = direct.abs().max()
    torch.testing.assert_close(zmax, direct.amax(dim=2), rtol=0, atol=2e-6 * scale)
    torch.testing.assert_close(zmin, direct.amin(dim=2), rtol=0, atol=2e-6 * scale)
    only_max, none = conv_max_min_over_frequency(x, prepare_weights(weight, n_freq=n_freq), need_min=False)
    assert none is None
    torch.testing.assert_close(only_max, zmax, rtol=0, atol=2e-6 * scale)


def test_dft_conv_rejects_what_it_cannot_compute():
    from genrify.models.fftconv import prepare_weights

    with pytest.raises(ValueError, match="weight"):
        prepare_weights(torch.zeros(4, 2, 7, 5), n_freq=96)
    with pytest.raises(ValueError, match="even"):
        prepare_weights(torch.zeros(4, 1, 7, 5), n_freq=95)
