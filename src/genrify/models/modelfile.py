"""The ``.genrify`` model file: safetensors tensors + JSON metadata, never pickle.

A model file holds the weights, the full :class:`~genrify.config.RunConfig`, the
label list, the normalisation statistics and any extra JSON (metrics, seed,
calibration), so it alone rebuilds the pipeline. Loading it cannot execute code:
safetensors is a flat header + raw buffers. A SHA-256 of the tensor data, the
config, the labels and the extra JSON is kept in the header, so a truncated or
damaged file is refused, and so is one edited by a tool that does not recompute it.

The checksum is not a signature: anyone who edits a model file (its labels, say)
and recomputes the checksum, which needs no secret, makes a file that loads.
Trust a model file as much as its source, as with any program's data.

Reading is bounded: only a regular file of at most
:data:`~genrify.fileio.MAX_FILE_BYTES` is read (a FIFO or ``/dev/zero`` is
refused without blocking), the JSON header is at most :data:`MAX_HEADER_BYTES`
and nests at most :data:`MAX_JSON_DEPTH` deep, so every bad file is a
:class:`~genrify.errors.ModelFileError` with a one-line reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrify.config import RunConfig
from genrify.errors import ConfigError, ModelFileError

FORMAT = "genrify-model"
VERSION = 1
#: The largest JSON header read (safetensors' own limit).
MAX_HEADER_BYTES = 100_000_000
#: How deeply the header's JSON (and the JSON held in its metadata) may nest; genrify's own is 4 deep.
MAX_JSON_DEPTH = 64


@dataclass
class ModelFile:
    """Contents of a model file. ``tensors`` are float32/int64 NumPy arrays by name; ``sha256`` is the
    checksum of the file it was loaded from (``None`` for a model built in memory, not yet saved)."""

    config: RunConfig
    labels: list[str]
    tensors: dict[str, np.ndarray]
    extra: dict = field(default_factory=dict)
    sha256: str | None = field(default=None, compare=False)

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


def _json(text: str | bytes, *, path: Path, what: str):
    """``json.loads(text)``, refusing JSON nested deeper than :data:`MAX_JSON_DEPTH` before parsing it
    (a header of 100 000 ``[`` would otherwise end in a ``RecursionError``)."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    bare = _JSON_STRING.sub(b'""', raw)  # brackets inside strings do not nest
    steps = np.frombuffer(bare, dtype=np.uint8)
    depth = np.cumsum(np.isin(steps, _OPENERS).astype(np.int64) - np.isin(steps, _CLOSERS))
    if depth.size and int(depth.max()) > MAX_JSON_DEPTH:
        raise ModelFileError(f"{path}: not a genrify model file ({what} nested deeper than {MAX_JSON_DEPTH})")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ModelFileError(f"{path}: not a genrify model file (unreadable {what})") from None


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENERS = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSERS = np.frombuffer(b"]}", dtype=np.uint8)


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Read and verify a model file; any problem raises :class:`ModelFileError`.

    Only a regular file of at most :data:`~genrify.fileio.MAX_FILE_BYTES` is read.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    from genrify.fileio import read_regular

    path = Path(path)
    try:
        data = read_regular(path)
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
    if header_len > MAX_HEADER_BYTES:
        raise ModelFileError(f"{path}: not a genrify model file (a {header_len}-byte header)")
    header = _json(data[8 : 8 + header_len], path=path, what="header")
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a genrify model file (unreadable header)")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: not a genrify model file (its header's metadata is not a JSON object)")
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a genrify model file (made by another tool)")
    if metadata.get("version") != str(VERSION):
        raise ModelFileError(f"{path}: unsupported model file version {str(metadata.get('version'))[:40]!r}")
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, Exception) as exc:
        raise ModelFileError(f"{path}: damaged model file ({str(exc).splitlines()[0][:120]})") from None
    if _digest(tensors, metadata) != metadata.get("sha256"):
        raise ModelFileError(f"{path}: model file is damaged or was modified (checksum mismatch)")
    fields = {name: metadata.get(name, "{}" if name == "extra" else None) for name in _SIGNED_FIELDS}
    if not all(isinstance(v, str) for v in fields.values()):
        raise ModelFileError(f"{path}: model file has an invalid configuration (missing metadata)")
    labels = _json(fields["labels"], path=path, what="label list")
    extra = _json(fields["extra"], path=path, what="extra metadata")
    _json(fields["config"], path=path, what="configuration")  # bounded before RunConfig parses it
    try:
        config = RunConfig.from_json(fields["config"])
    except Exception as exc:  # the file is untrusted input: whatever the parser meets, one line
        reason = str(exc).splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: model file has an invalid configuration ({reason})") from None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ModelFileError(f"{path}: model file has an invalid label list")
    if not isinstance(extra, dict):
        raise ModelFileError(f"{path}: model file has invalid extra metadata")
    return ModelFile(config=config, labels=labels, tensors=dict(tensors), extra=extra, sha256=metadata["sha256"])
