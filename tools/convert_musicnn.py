"""Convert the pretrained musicnn checkpoints (musicnn 0.1.0, TensorFlow 1) to safetensors.

One-off tool; genrify itself never imports TensorFlow (nor this tool). It reads
each TF1 checkpoint's variables by name (no graph is rebuilt), renames them to
the state_dict keys of the PyTorch port, transposes kernels to PyTorch's layout
and writes, in ``--out``:

* ``msd_musicnn.safetensors``, ``mtt_musicnn.safetensors`` — for
  :class:`genrify.models.musicnn.MusiCNN`;
* ``msd_vgg.safetensors``, ``mtt_vgg.safetensors`` — for
  :class:`genrify.models.vgg.VGG`;

each float32, with the 50 tag names (JSON) and the provenance in the
safetensors metadata, and ``NOTICE-musicnn.txt``: the ISC copyright notice and
how the files were made. MSD models are trained on the Million Song Dataset
(``MSD_LABELS``), MTT models on MagnaTagATune (``MTT_LABELS``).

How to run it (in a throwaway virtual environment, outside the repository)::

    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 safetensors
    cd /tmp && /tmp/tfenv/bin/pip download musicnn==0.1.0 --no-deps
    /tmp/tfenv/bin/python tools/convert_musicnn.py \\
        --wheel /tmp/musicnn-0.1.0-py3-none-any.whl \\
        --out src/genrify/models/weights [--model all | MSD_musicnn | MTT_musicnn | MSD_vgg | MTT_vgg]

Re-running it is harmless: a file whose tensors and metadata already equal the
conversion is left untouched (safetensors writes the metadata of a new file in
hash-map order, so a rewrite would change the bytes but not the content).

Layout changes relative to TensorFlow (the PyTorch modules expect these):

* conv kernels ``(kh, kw, in, out)`` → ``(out, in, kh, kw)``; musicnn's mid-end
  convs, whose TF kernels span the whole feature axis, become Conv1d
  ``(out, in, k)``;
* dense kernels ``(in, out)`` → ``(out, in)``;
* musicnn: TF's back end flattens ``concat([max_pool, mean_pool], axis=2)`` of
  shape ``(753, 2)`` (features interleaved: max0, mean0, max1, …); the PyTorch
  pooled vector is ``cat([max_pool, mean_pool])``, so the 1506-wide batch norm
  and the rows of the first dense kernel are permuted to match;
* vgg: no permutation — the PyTorch module flattens pool5 in TF's
  (time, mel, channel) order itself, so the dense kernel is only transposed.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
#: Checkpoint name → (architecture, label list in musicnn/configuration.py, what it was trained on).
MODELS = {
    "MSD_musicnn": ("musicnn", "MSD_LABELS", "the Million Song Dataset"),
    "MTT_musicnn": ("musicnn", "MTT_LABELS", "MagnaTagATune"),
    "MSD_vgg": ("vgg", "MSD_LABELS", "the Million Song Dataset"),
    "MTT_vgg": ("vgg", "MTT_LABELS", "MagnaTagATune"),
}
#: The safetensors metadata "layout" entry, per architecture.
LAYOUTS = {
    "musicnn": "pytorch; pooled features = cat([max_pool, mean_pool])",
    "vgg": "pytorch; penultimate = pool5 flattened in TF's (time, mel, channel) order",
}
PYTORCH_CLASSES = {"musicnn": "genrify.models.musicnn.MusiCNN", "vgg": "genrify.models.vgg.VGG"}

# musicnn: TF1 variable scope → PyTorch module prefix, in the order TF created them.
_BATCH_NORMS = {
    "batch_normalization": "input_bn",
    "batch_normalization_1": "timbral.0.bn",
    "batch_normalization_2": "timbral.1.bn",
    "batch_normalization_3": "temporal.0.bn",
    "batch_normalization_4": "temporal.1.bn",
    "batch_normalization_5": "temporal.2.bn",
    "batch_normalization_6": "midend.0.bn",
    "batch_normalization_7": "midend.1.bn",
    "batch_normalization_8": "midend.2.bn",
    "batch_normalization_9": "pool_bn",
    "batch_normalization_10": "dense_bn",
}
_CONV2D = {
    "conv2d": "timbral.0.conv",  # 7 x 38 (40 % of 96 mels)
    "conv2d_1": "timbral.1.conv",  # 7 x 67 (70 % of 96 mels)
    "conv2d_2": "temporal.0.conv",  # 128 x 1
    "conv2d_3": "temporal.1.conv",  # 64 x 1
    "conv2d_4": "temporal.2.conv",  # 32 x 1
}
_CONV1D = {"conv2d_5": "midend.0.conv", "conv2d_6": "midend.1.conv", "conv2d_7": "midend.2.conv"}
_DENSE = {"dense": "dense", "dense_1": "classifier"}
_BN_FIELDS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}

# vgg: the input batch norm, then 5 blocks named "1CNN".."5CNN" by musicnn, each followed by a batch norm.
_VGG_BATCH_NORMS = {"batch_normalization": "input_bn", **{f"batch_normalization_{i}": f"blocks.{i - 1}.bn"
                                                          for i in range(1, 6)}}
_VGG_CONV2D = {f"{i}CNN": f"blocks.{i - 1}.conv" for i in range(1, 6)}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tag_names(configuration_py: str, name: str) -> list[str]:
    """The ``name`` list literal (``MSD_LABELS`` / ``MTT_LABELS``) of musicnn/configuration.py, read with ``ast``."""
    for node in ast.parse(configuration_py).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise SystemExit(f"{name} not found in musicnn/configuration.py")


def _interleaved_to_blocked(v: np.ndarray, n_features: int) -> np.ndarray:
    """Rows ordered (f0 max, f0 mean, f1 max, …) → (all max, then all mean)."""
    return v.reshape(n_features, 2, *v.shape[1:]).swapaxes(0, 1).reshape(v.shape)


def _getter(reader):
    return lambda name: np.asarray(reader.get_tensor(name), dtype=np.float32)


def _batch_norms(get, names: dict[str, str], out: dict[str, np.ndarray]) -> None:
    for tf_name, pt in names.items():
        for tf_field, pt_field in _BN_FIELDS.items():
            out[f"{pt}.{pt_field}"] = get(f"{tf_name}/{tf_field}")


def _conv2d(get, names: dict[str, str], out: dict[str, np.ndarray]) -> None:
    for tf_name, pt in names.items():
        out[f"{pt}.weight"] = get(f"{tf_name}/kernel").transpose(3, 2, 0, 1)
        out[f"{pt}.bias"] = get(f"{tf_name}/bias")


def convert(reader, tags: list[str]) -> dict[str, np.ndarray]:
    """Map a musicnn checkpoint's variables to :class:`MusiCNN` state_dict tensors (float32)."""
    get = _getter(reader)
    out: dict[str, np.ndarray] = {}
    _batch_norms(get, _BATCH_NORMS, out)
    _conv2d(get, _CONV2D, out)
    for tf_name, pt in _CONV1D.items():
        k = get(f"{tf_name}/kernel")  # (k, in, 1, out)
        out[f"{pt}.weight"] = k[:, :, 0, :].transpose(2, 1, 0)
        out[f"{pt}.bias"] = get(f"{tf_name}/bias")
    for tf_name, pt in _DENSE.items():
        out[f"{pt}.weight"] = get(f"{tf_name}/kernel").T
        out[f"{pt}.bias"] = get(f"{tf_name}/bias")

    n_pooled = out["pool_bn.weight"].shape[0] // 2  # 753
    for field in _BN_FIELDS.values():
        out[f"pool_bn.{field}"] = _interleaved_to_blocked(out[f"pool_bn.{field}"], n_pooled)
    out["dense.weight"] = _interleaved_to_blocked(out["dense.weight"].T, n_pooled).T

    assert out["classifier.weight"].shape == (len(tags), 200), out["classifier.weight"].shape
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(out.items())}


def convert_vgg(reader, tags: list[str]) -> dict[str, np.ndarray]:
    """Map a vgg checkpoint's variables to :class:`VGG` state_dict tensors (float32)."""
    get = _getter(reader)
    out: dict[str, np.ndarray] = {}
    _batch_norms(get, _VGG_BATCH_NORMS, out)
    _conv2d(get, _VGG_CONV2D, out)
    out["classifier.weight"] = get("dense/kernel").T  # rows already in the (time, mel, channel) order
    out["classifier.bias"] = get("dense/bias")
    assert out["classifier.weight"].shape == (len(tags), 256), out["classifier.weight"].shape
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(out.items())}


NOTICE_HEAD = """\
Pretrained weights: musicnn taggers (Pons & Serra, 2019)
========================================================

The .safetensors files listed below hold the weights of pretrained music
taggers from the musicnn package (https://github.com/jordipons/musicnn), 50
tags each. Paper: J. Pons and X. Serra, "musicnn: Pre-trained convolutional
neural networks for music audio tagging", ISMIR 2019 LBD.

{files}

Provenance
----------
- source: {wheel} from PyPI (musicnn==0.1.0)
- sha256 of the wheel: {sha}
- checkpoints inside the wheel: musicnn/<model>/ (TensorFlow 1 checkpoints),
  one per file above
- converted by genrify's tools/convert_musicnn.py: each checkpoint variable was
  read with TensorFlow's checkpoint reader, cast to float32 (the checkpoints
  store float32), renamed to the PyTorch state_dict keys of the class named
  above and transposed to PyTorch's layout (see the tool's docstring); Adam
  slots were dropped. No value was changed otherwise.
- tag names: MSD_LABELS (MSD models) or MTT_LABELS (MTT models) of
  musicnn/configuration.py, stored as JSON in the safetensors metadata under
  "tags".

Licence of the original (ISC), which applies to these weights
---------------------------------------------------------------
{licence}
"""


def _notice(out_dir: Path, sha: str, licence: str) -> str:
    lines = []
    for model, (arch, labels, dataset) in MODELS.items():
        if (out_dir / f"{model.lower()}.safetensors").exists():
            lines.append(f"- {model.lower()}.safetensors: {model}, trained on {dataset} ({labels});\n"
                         f"  PyTorch class {PYTORCH_CLASSES[arch]}")
    return NOTICE_HEAD.format(files="\n".join(lines), wheel=WHEEL_NAME, sha=sha, licence=licence)


def _unchanged(tensors: dict[str, np.ndarray], metadata: dict[str, str], target: Path) -> bool:
    """Whether ``target`` already holds exactly these tensors and this metadata."""
    from safetensors import safe_open

    if not target.exists():
        return False
    with safe_open(str(target), framework="np") as f:
        if (f.metadata() or {}) != metadata or set(f.keys()) != set(tensors):
            return False
        return all(np.array_equal(f.get_tensor(k), v) and f.get_tensor(k).dtype == v.dtype for k, v in tensors.items())


def _write_atomic(tensors: dict[str, np.ndarray], metadata: dict[str, str], target: Path) -> bool:
    """Write ``target`` (temporary name, then rename) unless it is unchanged; returns whether it wrote."""
    from safetensors.numpy import save_file

    if _unchanged(tensors, metadata, target):
        return False

    fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(fd)
    save_file(tensors, tmp_name, metadata=metadata)
    os.chmod(tmp_name, 0o644)
    os.replace(tmp_name, target)
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help=f"path to {WHEEL_NAME}")
    parser.add_argument("--out", type=Path, required=True, help="folder for the .safetensors and NOTICE files")
    parser.add_argument("--model", choices=[*MODELS, "all"], default="all", help="which checkpoint (default: all)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    sha = _sha256(args.wheel)
    if sha != WHEEL_SHA256:
        raise SystemExit(f"{args.wheel}: sha256 {sha} is not the expected {WHEEL_SHA256}")
    args.out.mkdir(parents=True, exist_ok=True)
    models = list(MODELS) if args.model == "all" else [args.model]

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.wheel) as wheel:
        wheel.extractall(tmp)
        root = Path(tmp) / "musicnn"
        configuration = (root / "configuration.py").read_text()
        licence = next(Path(tmp).glob("musicnn-*.dist-info/LICENSE*")).read_text().strip()
        for model in models:
            arch, labels, _ = MODELS[model]
            tags = _tag_names(configuration, labels)
            # The checkpoint's files are named ".index"/".data-…": the prefix is the folder itself.
            reader = tf.compat.v1.train.NewCheckpointReader(str(root / model) + "/")
            tensors = (convert if arch == "musicnn" else convert_vgg)(reader, tags)
            # The same keys as the first (MSD_musicnn-only) version of this tool wrote.
            metadata = {
                "model": model,
                "tags": json.dumps(tags),
                "source": f"{WHEEL_NAME} (sha256 {sha})",
                "layout": LAYOUTS[arch],
                "batch_norm_eps": "0.001",
            }
            target = args.out / f"{model.lower()}.safetensors"
            action = "wrote" if _write_atomic(tensors, metadata, target) else "unchanged:"
            n_params = sum(v.size for v in tensors.values())
            print(f"{action} {target} ({len(tensors)} tensors, {n_params} values, {target.stat().st_size} bytes)")

    (args.out / "NOTICE-musicnn.txt").write_text(_notice(args.out, sha, licence))


if __name__ == "__main__":
    main()
