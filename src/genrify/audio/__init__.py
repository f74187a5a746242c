"""Decoding: any supported file (or bytes) → mono float32 samples at a chosen rate.

:func:`load_audio` checks the input (a regular file, not empty, not obviously
something else), then decodes, downmixes (average of channels) and resamples
(soxr, high quality) — by default in a disposable worker process
(:mod:`genrify.audio.isolation`), so that a decoder crash, hang or memory
blow-up costs one file and never the caller. Every failure becomes
:class:`~genrify.errors.AudioDecodeError` or
:class:`~genrify.errors.InvalidAudioError` naming the file and the reason.

What genrify knows about audio formats lives in :mod:`genrify.audio.formats`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from genrify.audio.decode import DECODE_BUDGET_BYTES, DECODE_WORK_SAMPLES, decode_audio, resample
from genrify.audio.formats import AUDIO_EXTENSIONS, MEDIA_TYPES, SNIFFED_EXTENSIONS, media_type, not_audio_kind, sniff_audio
from genrify.errors import AudioDecodeError
from genrify.fileio import MAX_FILE_BYTES

__all__ = ["AUDIO_EXTENSIONS", "DECODE_BUDGET_BYTES", "DECODE_WORK_SAMPLES", "MAX_FILE_BYTES", "MEDIA_TYPES",
           "SNIFFED_EXTENSIONS", "load_audio", "media_type", "prewarm_decoder", "read_file_tags", "resample",
           "sniff_audio"]


def load_audio(
    source: str | os.PathLike | bytes,
    *,
    sr: int | None = 44100,
    max_duration: float | None = 600.0,
    offset: float = 0.0,
    name: str | None = None,
    isolate: bool | None = None,
) -> tuple[np.ndarray, int]:
    """Decode ``source`` to mono float32 samples.

    Args:
        source: a file path, or the encoded file's bytes.
        sr: target sample rate in Hz; ``None`` keeps the file's own rate.
        max_duration: decode at most this many seconds (``None``: everything). Either way at most
            :data:`DECODE_WORK_SAMPLES` samples (channels × frames) are decoded; a file cut
            short by that is logged as a warning naming the seconds kept.
        offset: start this many seconds into the file.
        name: how to name the input in error messages (defaults to the path).
        isolate: decode in a disposable worker process; ``False`` decodes in
            this process (a few ms faster per file, and trusts the decoders
            with the caller's life). ``None``: isolated unless the environment
            sets ``GENRIFY_DECODE_IN_PROCESS=1``.

    Returns:
        ``(y, sr)`` with ``y`` of shape ``(samples,)``, float32, finite.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<upload>")
    head = _check_source(source, label)
    kind = not_audio_kind(head)
    if kind:
        raise AudioDecodeError(f"{label}: not an audio file (looks like {kind})")
    if not _isolated(isolate):
        return decode_audio(source, sr=sr, max_duration=max_duration, offset=offset, label=label)
    from genrify.audio.isolation import default_pool

    return default_pool().decode(source, sr=sr, max_duration=max_duration, offset=offset, label=label)


def read_file_tags(path: str | os.PathLike, *, isolate: bool | None = None) -> dict:
    """Artist, title, album, genre and duration of the audio file ``path``, from its tags
    (see :func:`genrify.audio.worker.read_tags_in_process`).

    Read in a decoder worker, like :func:`load_audio` (``isolate`` as there): mutagen
    loads every tag block whole, so a file carrying hundreds of MB of pictures meets
    the worker's memory and time limits instead of the caller's. Raises a one-line
    :class:`~genrify.errors.GenrifyError` naming the file.
    """
    if not _isolated(isolate):
        from genrify.audio.worker import read_tags_in_process

        return read_tags_in_process(path)
    from genrify.audio.isolation import default_pool

    return default_pool().read_tags(path, label=str(path))


def _isolated(isolate: bool | None) -> bool:
    """``isolate``, or where ``None``, whether the environment leaves decoding in workers (the default)."""
    if isolate is not None:
        return isolate
    return os.environ.get("GENRIFY_DECODE_IN_PROCESS", "") not in ("1", "true", "yes")


def prewarm_decoder() -> None:
    """Start a decoder worker in the background (call before loading a model: the two overlap)."""
    from genrify.audio.isolation import default_pool

    default_pool().prewarm()


def _check_source(source: str | os.PathLike | bytes, label: str) -> bytes:
    """The first 64 bytes of ``source``, after refusing what is not a readable, regular, non-empty file."""
    if isinstance(source, bytes):
        if len(source) == 0:
            raise AudioDecodeError(f"{label}: empty file (0 bytes)")
        return source[:64]
    path = Path(source)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioDecodeError(f"{label}: no such file") from None
    except OSError as exc:
        raise AudioDecodeError(f"{label}: cannot access ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioDecodeError(f"{label}: is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO would block the reader for ever, a device would never end.
        raise AudioDecodeError(f"{label}: not a regular file (a pipe, socket or device)")
    if st.st_size == 0:
        raise AudioDecodeError(f"{label}: empty file (0 bytes)")
    if st.st_size > MAX_FILE_BYTES:
        raise AudioDecodeError(f"{label}: {st.st_size / 1024**3:.1f} GB is larger than the "
                               f"{MAX_FILE_BYTES // 1024**3} GB genrify reads")
    if not os.access(path, os.R_OK):
        raise AudioDecodeError(f"{label}: permission denied")
    try:
        with open(path, "rb") as f:
            return f.read(64)
    except OSError as exc:
        raise AudioDecodeError(f"{label}: cannot read ({exc.strerror or exc})") from None
