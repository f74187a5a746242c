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

Reading is bounded and the cheap checks come first: only a regular file of at
most :data:`~genrify.fileio.MAX_FILE_BYTES` is opened (a FIFO or ``/dev/zero``
is refused without blocking); the header's length is checked against
:data:`MAX_HEADER_BYTES` and the file's size before the header is read; the
header nests at most :data:`HEADER_DEPTH` deep (the JSON held in its metadata
at most :data:`MAX_JSON_DEPTH`) before it is parsed; the tensor table must tile
the rest of the file exactly; and the checksum is computed from the file 1 MiB
at a time before any tensor is read into memory. So every bad file is a
:class:`~genrify.errors.ModelFileError` with a one-line reason, found in memory
of the order of the header, and a good one costs its size once.
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
#: The largest JSON header read (8 MiB), checked before it is read. The shipped files' headers are
#: 2.5-30 KB; a model trained on 100 000 tracks lists their hashes in 7 MB. :func:`save_model_file`
#: refuses to write a larger one, so every file genrify writes can be read back.
MAX_HEADER_BYTES = 8 * 1024**2
#: How deeply the JSON held in the header's metadata (config, labels, extra) may nest; genrify's own is 4 deep.
MAX_JSON_DEPTH = 64
#: How deeply the header itself nests: ``{"name": {"shape": [...]}}``; metadata values are strings.
HEADER_DEPTH = 3
#: The bytes the header's lists (shapes, offsets) may hold, as a table by byte: non-negative integers.
_IN_LISTS = np.zeros(256, dtype=bool)
_IN_LISTS[np.frombuffer(b"0123456789,[ \t\r\n", dtype=np.uint8)] = True
#: safetensors' dtype names → NumPy's (the types NumPy has; bfloat16 and float8 are refused).
DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32", "I16": "int16",
          "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool"}


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
    h = _digest_start(fields)
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        _digest_tensor(h, name, dtype=str(arr.dtype), shape=arr.shape)
        h.update(arr.reshape(-1).view(np.uint8))  # the bytes, without the copy tobytes() makes
    return h.hexdigest()


def _digest_start(fields: dict[str, str]):
    h = hashlib.sha256()
    for name in _SIGNED_FIELDS:
        h.update(name.encode())
        h.update(str(fields.get(name, "")).encode())
    return h


def _digest_tensor(h, name: str, *, dtype: str, shape: tuple[int, ...]) -> None:
    # What precedes a tensor's bytes in the checksum; its bytes follow (from memory or streamed from the file).
    # A scalar counts as shape (1,): files were always hashed through np.ascontiguousarray, which makes it so.
    h.update(name.encode())
    h.update(dtype.encode())
    h.update(str(tuple(shape) or (1,)).encode())


def save_model_file(path: str | os.PathLike, model: ModelFile) -> None:
    """Write ``model`` to ``path`` atomically.

    Raises:
        ModelFileError: its header would exceed :data:`MAX_HEADER_BYTES` (nothing is written).
    """
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
    data = save(tensors, metadata=metadata)
    if int.from_bytes(data[:8], "little") > MAX_HEADER_BYTES:
        raise ModelFileError(f"{path}: cannot write a model file whose header exceeds {MAX_HEADER_BYTES} bytes "
                             "(too much extra metadata)")
    write_bytes_atomic(path, data)


def _json(text: str | bytes, *, path: Path, what: str):
    """``json.loads(text)``, refusing JSON nested deeper than :data:`MAX_JSON_DEPTH` before parsing it
    (a header of 100 000 ``[`` would otherwise end in a ``RecursionError``)."""
    _, depth = _nesting(text)
    if depth.size and int(depth.max()) > MAX_JSON_DEPTH:
        raise ModelFileError(f"{path}: not a genrify model file ({what} nested deeper than {MAX_JSON_DEPTH})")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ModelFileError(f"{path}: not a genrify model file (unreadable {what})") from None


def _nesting(text: str | bytes) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of ``text`` outside its strings (0 inside), and the nesting depth after each byte.

    A few bytes of memory per byte of text: no object per string or bracket is built.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    # Escaped backslashes, then escaped quotes, go first: what is left of a quote opens or closes a string.
    raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    data = np.frombuffer(raw, dtype=np.uint8)
    quotes = data == ord('"')
    outside = np.bitwise_xor.accumulate(quotes.view(np.uint8)) == 0  # a closing quote counts as outside
    bare = np.where(outside, data, np.uint8(0))  # brackets inside strings do not nest
    opens = ((bare == ord("[")) | (bare == ord("{"))).view(np.int8)
    moves = opens - ((bare == ord("]")) | (bare == ord("}"))).view(np.int8)
    # int16 may wrap only past 32 767 levels, and depth moves by one: it reads above any limit first.
    return bare, np.cumsum(moves, dtype=np.int16)


def _header(raw: bytes, *, path: Path) -> dict:
    """The parsed safetensors header, its shape checked before it is parsed: objects at the first two
    levels, strings no deeper, lists of non-negative integers at the third. So millions of empty
    objects, strings or floats in a list are refused before any is built; the costliest header left
    (entries by the hundred thousand, docs/reliability.md) builds about 20 bytes per byte."""
    bare, depth = _nesting(raw)
    if depth.size and int(depth.max()) > HEADER_DEPTH:
        raise ModelFileError(f"{path}: not a genrify model file (header nested deeper than {HEADER_DEPTH})")
    inner = depth == HEADER_DEPTH
    if (np.any((bare == ord("{")) & (depth > 2)) or np.any((bare == ord("[")) & ~inner)
            or np.any(inner & ~_IN_LISTS[bare])):
        raise ModelFileError(f"{path}: not a genrify model file (its header is not a safetensors header)")
    try:
        header = json.loads(raw)
    except ValueError:
        raise ModelFileError(f"{path}: not a genrify model file (unreadable header)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a genrify model file (unreadable header)")
    return header


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Read and verify a model file; any problem raises :class:`ModelFileError`.

    Only a regular file of at most :data:`~genrify.fileio.MAX_FILE_BYTES` is read; see the
    module docstring for the order of the checks.
    """
    from genrify.fileio import open_regular

    path = Path(path)
    try:
        with open_regular(path) as f:
            return _read_model_file(f, path=path)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, not a model file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file ({exc.strerror or exc})") from None


def _read_model_file(f, *, path: Path) -> ModelFile:
    size = os.fstat(f.fileno()).st_size
    if size < 8:
        raise ModelFileError(f"{path}: not a genrify model file (too short)")
    lead = f.read(9)
    header_len = int.from_bytes(lead[:8], "little")
    if header_len <= 0 or header_len > size - 8 or lead[8:9] != b"{":
        raise ModelFileError(f"{path}: not a genrify model file (no safetensors header; pickles are never loaded)")
    if header_len > MAX_HEADER_BYTES:  # refused before it is read
        raise ModelFileError(f"{path}: not a genrify model file (a header of {header_len} bytes; "
                             f"the limit is {MAX_HEADER_BYTES})")
    raw = b"{" + f.read(header_len - 1)
    if len(raw) != header_len:
        raise ModelFileError(f"{path}: damaged model file (it changed while it was read)")
    header = _header(raw, path=path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: not a genrify model file (its header's metadata is not a JSON object)")
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a genrify model file (made by another tool)")
    if metadata.get("version") != str(VERSION):
        raise ModelFileError(f"{path}: unsupported model file version {str(metadata.get('version'))[:40]!r}")
    start = 8 + header_len
    table = _tensor_table(header, data_bytes=size - start, path=path)
    h = _digest_start(metadata)
    for name, (dtype, shape, begin, end) in sorted(table.items()):
        _digest_tensor(h, name, dtype=dtype, shape=shape)
        _stream_into(h, f, offset=start + begin, length=end - begin, path=path)
    if h.hexdigest() != metadata.get("sha256"):
        raise ModelFileError(f"{path}: model file is damaged or was modified (checksum mismatch)")
    # Read once, after the checksum: each tensor is a view of this buffer. A file rewritten between the two
    # reads is no attack: the checksum is no signature, and anyone able to write it can write a valid one.
    data = bytearray(size - start)
    f.seek(start)
    if f.readinto(data) != len(data):
        raise ModelFileError(f"{path}: damaged model file (it changed while it was read)")
    tensors = {name: np.frombuffer(data, dtype=dtype, count=(end - begin) // np.dtype(dtype).itemsize, offset=begin)
               .reshape(shape) for name, (dtype, shape, begin, end) in table.items()}
    return _model_from(metadata, tensors, path=path)


def _tensor_table(header: dict, *, data_bytes: int, path: Path) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
    """``{name: (numpy dtype, shape, begin, end)}`` of the header's tensors, which must tile the
    ``data_bytes`` after the header exactly (as safetensors requires): no gap, no overlap, no excess."""
    def damaged(reason: str) -> ModelFileError:
        return ModelFileError(f"{path}: damaged model file ({reason})")

    table = {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise damaged(f"tensor {name[:40]!r} is not described")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            raise damaged(f"tensor {name[:40]!r} has the unsupported type {str(dtype)[:20]!r}")
        if (not isinstance(shape, list) or not all(type(n) is int and 0 <= n < 2**40 for n in shape)
                or not isinstance(offsets, list) or len(offsets) != 2 or not all(type(n) is int for n in offsets)):
            raise damaged(f"tensor {name[:40]!r} has an invalid shape or offsets")
        begin, end = offsets
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(DTYPES[dtype]).itemsize
        if not 0 <= begin <= end <= data_bytes or end - begin != nbytes:
            raise damaged(f"tensor {name[:40]!r} does not fit the file (truncated?)")
        table[name] = (DTYPES[dtype], tuple(shape), begin, end)
    covered = 0
    for _, _, begin, end in sorted(table.values(), key=lambda t: (t[2], t[3])):
        if begin != covered:
            raise damaged("its tensors overlap or leave gaps")
        covered = end
    if covered != data_bytes:
        raise damaged("its tensors do not cover the file (truncated, or bytes added)")
    return table


#: Bytes hashed at a time while the checksum streams from the file.
_CHUNK = 1 << 20


def _stream_into(h, f, *, offset: int, length: int, path: Path) -> None:
    f.seek(offset)
    while length > 0:
        chunk = f.read(min(_CHUNK, length))
        if not chunk:
            raise ModelFileError(f"{path}: damaged model file (it changed while it was read)")
        h.update(chunk)
        length -= len(chunk)


def _model_from(metadata: dict, tensors: dict[str, np.ndarray], *, path: Path) -> ModelFile:
    """The verified metadata's config, labels and extra, parsed and checked, with ``tensors``."""
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
    return ModelFile(config=config, labels=labels, tensors=tensors, extra=extra, sha256=metadata["sha256"])
