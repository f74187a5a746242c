"""The ``.genrify`` model file: safetensors tensors + JSON metadata, never pickle.

A model file holds the weights, the full :class:`~genrify.config.RunConfig`, the
label list, the normalisation statistics and any extra JSON (metrics, seed,
calibration), so it alone rebuilds the pipeline. Loading it cannot execute code:
safetensors is a flat header + raw buffers. A SHA-256 of the tensor data, the
config, the labels and the extra JSON is kept in the header, so a truncated or
tampered file is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrify.config import RunConfig
from genrify.errors import ConfigError, ModelFileError

FORMAT = "genrify-model"
VERSION = 1


@dataclass
class ModelFile:
    """Contents of a model file. ``tensors`` are float32/int64 NumPy arrays by name."""

    config: RunConfig
    labels: list[str]
    tensors: dict[str, np.ndarray]
    extra: dict = field(default_factory=dict)

    def network_state(self):
        """The network's ``state_dict`` (tensors stored under ``model.``), as torch tensors."""
        import torch

        return {k[len(NETWORK_PREFIX):]: torch.from_numpy(np.array(v)) for k, v in self.tensors.items()
                if k.startswith(NETWORK_PREFIX)}


#: Name prefix of the network's weights among a model file's tensors.
NETWORK_PREFIX = "model."


def network_tensors(module) -> dict[str, np.ndarray]:
    """A torch module's ``state_dict`` as model-file tensors (the inverse of :meth:`ModelFile.network_state`)."""
    return {f"{NETWORK_PREFIX}{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()}


#: Metadata fields covered by the checksum with the tensors (a tampered label list or config is refused too).
_SIGNED_FIELDS = ("config", "labels", "extra")


def _digest(tensors: dict[str, np.ndarray], fields: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in _SIGNED_FIELDS:
        h.update(name.encode())
        h.update(str(fields.get(name, "")).encode())
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def save_model_file(path: str | os.PathLike, model: ModelFile) -> None:
    """Write ``model`` to ``path`` atomically."""
    from safetensors.numpy import save

    from genrify.fileio import write_bytes_atomic

    tensors = {k: np.ascontiguousarray(v) for k, v in model.tensors.items()}
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "config": model.config.to_json(),
        "labels": json.dumps(list(model.labels)),
        "extra": json.dumps(model.extra, sort_keys=True),
    }
    metadata["sha256"] = _digest(tensors, metadata)
    write_bytes_atomic(path, save(tensors, metadata=metadata))


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Read and verify a model file; any problem raises :class:`ModelFileError`."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, not a model file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file ({exc.strerror or exc})") from None
    if len(data) < 8:
        raise ModelFileError(f"{path}: not a genrify model file (too short)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len <= 0 or header_len > len(data) - 8 or data[8:9] != b"{":
        raise ModelFileError(f"{path}: not a genrify model file (no safetensors header; pickles are never loaded)")
    try:
        header = json.loads(data[8 : 8 + header_len])
        metadata = header.get("__metadata__") or {}
    except (ValueError, AttributeError):
        raise ModelFileError(f"{path}: not a genrify model file (unreadable header)") from None
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a genrify model file (made by another tool)")
    if metadata.get("version") != str(VERSION):
        raise ModelFileError(f"{path}: unsupported model file version {metadata.get('version')!r}")
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, Exception) as exc:
        raise ModelFileError(f"{path}: damaged model file ({str(exc).splitlines()[0][:120]})") from None
    if _digest(tensors, metadata) != metadata.get("sha256"):
        raise ModelFileError(f"{path}: model file is damaged or was modified (checksum mismatch)")
    try:
        config = RunConfig.from_json(metadata["config"])
        labels = json.loads(metadata["labels"])
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, ValueError, TypeError, ConfigError) as exc:
        raise ModelFileError(f"{path}: model file has an invalid configuration ({exc})") from None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ModelFileError(f"{path}: model file has an invalid label list")
    return ModelFile(config=config, labels=labels, tensors=dict(tensors), extra=extra)
