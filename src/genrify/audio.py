"""Decoding: any supported file (or bytes) → mono float32 samples at a chosen rate.

``load_audio`` only decodes, downmixes (average of channels) and resamples
(soxr, high quality). WAV, FLAC, Ogg/Vorbis, Opus and MP3 go through soundfile
(libsndfile); AAC/M4A and anything libsndfile refuses go through PyAV (FFmpeg).
Every failure becomes :class:`~genrify.errors.AudioDecodeError` or
:class:`~genrify.errors.InvalidAudioError` naming the file and the reason.

What genrify knows about audio formats lives here too, in one place: the
extensions it reads (:data:`AUDIO_EXTENSIONS`), the media type of each
(:func:`media_type`) and the signatures that tell audio bytes apart
(:func:`sniff_audio`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from pathlib import Path

import numpy as np

from genrify.errors import AudioDecodeError, InvalidAudioError

#: Extensions genrify treats as audio when it scans folders.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".aiff", ".aif", ".au")

#: The extensions :func:`sniff_audio` can return, in the order genrify looks for
#: a file under each of them (previews, collected tracks); all in :data:`AUDIO_EXTENSIONS`.
SNIFFED_EXTENSIONS = (".mp3", ".m4a", ".aac", ".ogg", ".flac", ".wav")

#: The media type genrify sends with an audio file, by extension; :func:`media_type`
#: asks :mod:`mimetypes` about any other extension.
MEDIA_TYPES = {".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac", ".wav": "audio/wav",
               ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg"}


def media_type(name: str | os.PathLike) -> str:
    """The media type of the file called ``name``, from its extension.

    :data:`MEDIA_TYPES` first, then :mod:`mimetypes`, else ``"application/octet-stream"``.
    """
    import mimetypes

    path = Path(name)
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return MEDIA_TYPES.get(path.suffix.lower(), guessed)


def sniff_audio(head: bytes) -> str | None:
    """The file extension (``".mp3"``, ``".m4a"``, …) that ``head`` — a file's first bytes — implies.

    ``None`` when ``head`` does not start like an audio file genrify decodes.
    """
    if head.startswith(b"ID3"):
        return ".mp3"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return ".m4a"
    if head.startswith(b"OggS"):
        return ".ogg"
    if head.startswith(b"fLaC"):
        return ".flac"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return ".wav"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        # MPEG audio frame sync; layer bits 00 mean an AAC ADTS stream instead.
        return ".aac" if (head[1] & 0x06) == 0 else ".mp3"
    return None


def load_audio(
    source: str | os.PathLike | bytes,
    *,
    sr: int | None = 44100,
    max_duration: float | None = 600.0,
    offset: float = 0.0,
    name: str | None = None,
) -> tuple[np.ndarray, int]:
    """Decode ``source`` to mono float32 samples.

    Args:
        source: a file path, or the encoded file's bytes.
        sr: target sample rate in Hz; ``None`` keeps the file's own rate.
        max_duration: decode at most this many seconds (``None``: everything).
        offset: start this many seconds into the file.
        name: how to name the input in error messages (defaults to the path).

    Returns:
        ``(y, sr)`` with ``y`` of shape ``(samples,)``, float32, finite.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<upload>")
    if not isinstance(source, bytes):
        path = Path(source)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise AudioDecodeError(f"{label}: no such file") from None
        except OSError as exc:
            raise AudioDecodeError(f"{label}: cannot access ({exc.strerror or exc})") from None
        if path.is_dir():
            raise AudioDecodeError(f"{label}: is a directory, not an audio file")
        if st.st_size == 0:
            raise AudioDecodeError(f"{label}: empty file (0 bytes)")
        if not os.access(path, os.R_OK):
            raise AudioDecodeError(f"{label}: permission denied")
    elif len(source) == 0:
        raise AudioDecodeError(f"{label}: empty file (0 bytes)")
    kind = _not_audio_kind(source)
    if kind:
        raise AudioDecodeError(f"{label}: not an audio file (looks like {kind})")

    try:
        y, native_sr = _decode_soundfile(source, offset=offset, max_duration=max_duration)
    except _Unsupported:
        y, native_sr = _decode_av(source, label=label, offset=offset, max_duration=max_duration)

    if y.size == 0:
        raise InvalidAudioError(f"{label}: no audio samples")
    if not np.isfinite(y).all():
        raise InvalidAudioError(f"{label}: audio contains NaN or infinite samples")
    y = y.mean(axis=1) if y.ndim == 2 else y
    y = np.ascontiguousarray(y, dtype=np.float32)
    if sr is not None and native_sr != sr:
        y = resample(y, orig_sr=native_sr, target_sr=sr)
        if y.size == 0:  # a handful of samples can resample to none at all
            raise InvalidAudioError(f"{label}: too short to resample from {native_sr} Hz to {sr} Hz")
    return y, (sr or native_sr)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``y`` (shape ``(samples,)``) with soxr's high-quality filter."""
    import soxr

    if orig_sr == target_sr:
        return y
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


class _Unsupported(Exception):
    pass


#: Signatures of common non-audio files, refused before any decoder sees them.
_NOT_AUDIO = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
              (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"<!DOCTYPE", "an HTML page"),
              (b"<html", "an HTML page"), (b"<?xml", "an XML document"), (b"{", "JSON text"), (b"[", "JSON text"))


def _not_audio_kind(source) -> str | None:
    if isinstance(source, bytes):
        head = source[:64]
    else:
        try:
            with open(source, "rb") as f:
                head = f.read(64)
        except OSError:
            return None
    stripped = head.lstrip()
    for magic, kind in _NOT_AUDIO:
        if stripped[: len(magic)].lower() == magic.lower():
            return kind
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(head) >= 16 and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "plain text"
    return None


@contextlib.contextmanager
def _native_stderr_silenced():
    """Silence C-level writes to fd 2 while a decoder runs.

    libsndfile's MP3 decoder (mpg123) prints notes about damaged streams
    ("Illegal Audio-MPEG-Header", "Xing stream size off") straight to fd 2,
    which would break the one-line error promise of the CLI. Redirecting fd 2
    is process-wide, so it is done only on the main thread (the CLI, dataset
    build workers); a server decodes on worker threads and keeps its stderr.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):
        yield
        return
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _decode_soundfile(source, *, offset, max_duration):
    import soundfile as sf

    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        with _native_stderr_silenced(), sf.SoundFile(handle) as f:
            native_sr = f.samplerate
            if offset:
                f.seek(min(int(offset * native_sr), max(f.frames, 0)))
            frames = -1 if max_duration is None else int(max_duration * native_sr)
            y = f.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OverflowError, MemoryError, EOFError):
        # libsndfile does not know the container (M4A/AAC) or gave up on a damaged
        # stream: FFmpeg is more tolerant and knows more formats.
        raise _Unsupported() from None
    if y.size == 0:
        raise _Unsupported()
    return y, native_sr


def _decode_av(source, *, label, offset, max_duration):
    import av

    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        container = av.open(handle, metadata_errors="ignore")
    except Exception as exc:  # PyAV raises many types for garbage input
        raise AudioDecodeError(f"{label}: not a readable audio file ({_reason(exc)})") from None
    try:
        streams = container.streams.audio
        if not streams:
            raise AudioDecodeError(f"{label}: no audio stream in file")
        stream = streams[0]
        if stream.codec_context is None:  # a damaged header can name no codec FFmpeg can open
            raise AudioDecodeError(f"{label}: the audio stream's codec cannot be decoded")
        native_sr = stream.codec_context.sample_rate or stream.rate
        if not native_sr:
            raise AudioDecodeError(f"{label}: audio stream has no sample rate")
        resampler = av.AudioResampler(format="fltp", layout=None, rate=native_sr)
        start = int(offset * native_sr)
        stop = None if max_duration is None else start + int(max_duration * native_sr)
        chunks, total = [], 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray()  # (channels, n) planar float
                    chunks.append(arr.T if arr.ndim == 2 else arr[:, None])
                    total += arr.shape[-1]
                if stop is not None and total >= stop:
                    break
        except AudioDecodeError:
            raise
        except Exception as exc:
            if total == 0:
                raise AudioDecodeError(f"{label}: audio stream could not be decoded ({_reason(exc)})") from None
            # A truncated file: keep what decoded cleanly.
    finally:
        container.close()
    if not chunks:
        raise AudioDecodeError(f"{label}: no audio could be decoded")
    n_ch = max(c.shape[1] for c in chunks)
    chunks = [c if c.shape[1] == n_ch else np.repeat(c[:, :1], n_ch, axis=1) for c in chunks]
    y = np.concatenate(chunks, axis=0).astype(np.float32, copy=False)
    return y[start:stop], native_sr


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
