"""In-process decoding: a file (or its bytes) → mono float32 samples at a chosen rate, in bounded memory.

WAV, FLAC, Ogg/Vorbis, Opus and MP3 go through soundfile (libsndfile); AAC/M4A
and anything libsndfile refuses go through PyAV (FFmpeg). Both are read in
blocks: each block is downmixed (average of channels) and fed to a streaming
soxr resampler (high quality; the same samples as a one-shot resample), so the
memory a file takes is its *output* (mono, at the target rate) plus one block,
whatever its channel count, rate or sample size. The output's size is checked
against :data:`DECODE_BUDGET_BYTES` from the header before decoding and again
while decoding (a header can lie).

The time a file takes follows the samples decoded (channels × rate × seconds),
not its size: a few hundred KB of FLAC can hold ten minutes of 8-channel
384 kHz silence, a minute of work. At most :data:`DECODE_WORK_SAMPLES` are
decoded per file; a file with more is cut there, and the cut is stated (a
warning on the ``genrify.audio`` logger naming the file and the seconds kept).

Decoders parse untrusted bytes in C; :func:`genrify.audio.load_audio` runs this
module in a disposable worker process (:mod:`genrify.audio.isolation`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading

import numpy as np

from genrify.errors import AudioDecodeError, InvalidAudioError

#: The most memory a decoded file may take (mono float32 at the target rate):
#: 600 s at 44.1 kHz takes 106 MB.
DECODE_BUDGET_BYTES = 256 * 1024 * 1024

#: The most samples (channels × frames, before downmixing) decoded from one file: 600 s of
#: stereo at 96 kHz fit; 8 channels at 384 kHz are cut after 44 s. The cost of decoding,
#: downmixing and resampling follows this count (docs/reliability.md gives the time it bounds).
DECODE_WORK_SAMPLES = 128 * 2**20

#: The largest sample magnitude taken as it is (12 dB over full scale). Float files can hold any value;
#: one far beyond full scale (integer sample values written as floats, garbage) is scaled to a peak of 1
#: (:func:`to_full_scale`), where a player would clip it, so the analysis hears the music, never overflows.
MAX_PEAK = 4.0

#: Bytes of interleaved float32 input decoded per block (before downmixing).
BLOCK_BYTES = 16 * 1024 * 1024

log = logging.getLogger("genrify.audio")


def decode_audio(source: str | os.PathLike | bytes, *, sr: int | None, max_duration: float | None,
                 offset: float = 0.0, label: str) -> tuple[np.ndarray, int]:
    """Decode ``source`` to mono float32 at ``sr`` (``None``: the file's own rate), in this process.

    The caller has checked that ``source`` exists and is a regular file; see
    :func:`genrify.audio.load_audio` for the arguments.
    """
    chunks, out_sr, cut = decode_chunks(source, sr=sr, max_duration=max_duration, offset=offset, label=label)
    if cut:
        log.warning("%s", cut)
    return (chunks[0] if len(chunks) == 1 else np.concatenate(chunks)), out_sr


def decode_chunks(source: str | os.PathLike | bytes, *, sr: int | None, max_duration: float | None,
                  offset: float = 0.0, label: str) -> tuple[list[np.ndarray], int, str | None]:
    """:func:`decode_audio`'s samples as the consecutive blocks they were decoded in (never empty),
    so that a caller streaming them on needs no second copy of the whole song; the rate; and, when
    :data:`DECODE_WORK_SAMPLES` cut the file short, a sentence saying so (else ``None``)."""
    try:
        sink = _decode_soundfile(source, sr=sr, offset=offset, max_duration=max_duration, label=label)
    except _Unsupported:
        sink = _decode_av(source, sr=sr, offset=offset, max_duration=max_duration, label=label)
    return sink.result(), sink.out_sr, sink.cut_note()


def to_full_scale(chunks: list[np.ndarray]) -> list[np.ndarray]:
    """One signal's blocks ``chunks``, as they are when its peak is within :data:`MAX_PEAK`, else scaled
    down to a peak of 1 (a level changes a genre less than the clipping a player would apply)."""
    peak = max((float(np.abs(c).max()) for c in chunks if c.size), default=0.0)
    if peak <= MAX_PEAK:
        return chunks
    return [(c * np.float32(1.0 / peak)).astype(np.float32, copy=False) for c in chunks]


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``y`` (shape ``(samples,)``) with soxr's high-quality filter."""
    import soxr

    if orig_sr == target_sr:
        return y
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


class _Unsupported(Exception):
    pass


class _MonoSink:
    """Collects blocks of ``(n, channels)`` samples as mono at the target rate, within the budget."""

    def __init__(self, *, native_sr: int, sr: int | None, label: str, expected_seconds: float | None):
        import soxr

        self.label, self.native_sr, self.out_sr = label, native_sr, sr or native_sr
        self.stream = None if self.out_sr == native_sr else soxr.ResampleStream(
            native_sr, self.out_sr, 1, dtype="float32", quality="HQ")
        self.chunks: list[np.ndarray] = []
        self.in_samples = self.out_samples = 0
        self.work_left = DECODE_WORK_SAMPLES
        self.cut_after: int | None = None  # input frames after which the work budget cut the file
        self.cut_channels = 0
        if expected_seconds is not None:
            self._check_budget(int(expected_seconds * self.out_sr))

    def admit(self, frames: int, *, channels: int) -> int:
        """How many of the next ``frames`` (of ``channels`` samples each) the work budget lets through."""
        allowed = min(frames, self.work_left // max(channels, 1))
        self.work_left -= allowed * channels
        if allowed < frames and self.cut_after is None:
            self.cut_after, self.cut_channels = self.in_samples + allowed, channels
        return allowed

    def cut_note(self) -> str | None:
        """Why the file was decoded only in part, when the work budget cut it (and it really went on)."""
        if self.cut_after is None or self.in_samples < self.cut_after:
            return None
        return (f"{self.label}: decoded only the first {self.in_samples / self.native_sr:.1f} s: "
                f"{self.cut_channels} channels at {self.native_sr} Hz cost more to decode than the "
                f"{DECODE_WORK_SAMPLES / 1e6:.0f} million samples decoded per file")

    def _check_budget(self, samples: int) -> None:
        need = 4 * samples
        if need > DECODE_BUDGET_BYTES:
            raise InvalidAudioError(
                f"{self.label}: too large to decode: {samples / self.out_sr:.0f} s at {self.out_sr} Hz would take "
                f"{need // 2**20} MB, over the {DECODE_BUDGET_BYTES // 2**20} MB limit")

    def add(self, block: np.ndarray, *, last: bool = False) -> None:
        if block.size and not np.isfinite(block).all():
            raise InvalidAudioError(f"{self.label}: audio contains NaN or infinite samples")
        mono = block.mean(axis=1) if block.ndim == 2 else block
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        self.in_samples += mono.size
        if self.stream is not None:
            mono = self.stream.resample_chunk(mono, last=last)
        if mono.size:
            self.out_samples += mono.size
            self._check_budget(self.out_samples)
            self.chunks.append(mono)

    def result(self) -> list[np.ndarray]:
        """The mono samples, in blocks; an error when input came but resampled to nothing."""
        self.add(np.zeros(0, np.float32), last=True)
        if not self.chunks:  # a handful of samples can resample to none at all
            raise InvalidAudioError(
                f"{self.label}: too short to resample from {self.native_sr} Hz to {self.out_sr} Hz")
        return to_full_scale(self.chunks)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Silence C-level writes to fd 2 while a decoder runs.

    libsndfile's MP3 decoder (mpg123) prints notes about damaged streams
    ("Illegal Audio-MPEG-Header", "Xing stream size off") straight to fd 2,
    which would break the one-line error promise of the CLI. Redirecting fd 2
    is process-wide, so it is done only on the main thread (a decoder worker,
    the CLI); threads of a server keep their stderr.
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


def _decode_soundfile(source, *, sr, offset, max_duration, label):
    import soundfile as sf

    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        with _native_stderr_silenced(), sf.SoundFile(handle) as f:
            native_sr, channels = f.samplerate, max(f.channels, 1)
            start = min(int(offset * native_sr), max(f.frames, 0)) if offset else 0
            if start:
                f.seek(start)
            todo = max(f.frames - start, 0)
            if max_duration is not None:
                todo = min(todo, int(max_duration * native_sr))
            sink = _MonoSink(native_sr=native_sr, sr=sr, label=label,
                             expected_seconds=min(todo, DECODE_WORK_SAMPLES // channels) / native_sr)
            block = max(1024, BLOCK_BYTES // (4 * channels))
            while todo > 0 and (want := sink.admit(min(block, todo), channels=channels)):
                y = f.read(frames=want, dtype="float32", always_2d=True)
                if y.shape[0] == 0:
                    break
                todo -= y.shape[0]
                sink.add(y)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OverflowError, MemoryError, EOFError):
        # libsndfile does not know the container (M4A/AAC) or gave up on a damaged
        # stream: FFmpeg is more tolerant and knows more formats.
        raise _Unsupported() from None
    if sink.in_samples == 0:
        raise _Unsupported()
    return sink


def _decode_av(source, *, sr, offset, max_duration, label):
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
        sink = _MonoSink(native_sr=native_sr, sr=sr, label=label,
                         expected_seconds=_av_expected_seconds(container, stream, offset, max_duration))
        _feed_av(container, stream, sink, native_sr=native_sr, offset=offset, max_duration=max_duration,
                 label=label)
    finally:
        container.close()
    if sink.in_samples == 0:
        raise AudioDecodeError(f"{label}: no audio could be decoded")
    return sink


def _av_expected_seconds(container, stream, offset, max_duration) -> float | None:
    seconds = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000
    if seconds is not None:
        seconds = max(seconds - offset, 0.0)
    if max_duration is not None:
        seconds = max_duration if seconds is None else min(seconds, max_duration)
    return seconds


def _feed_av(container, stream, sink: _MonoSink, *, native_sr, offset, max_duration, label) -> None:
    import av

    # Planar float is what AAC and MP3 decoders produce, so this is a pass-through
    # for them; packed output would cost a conversion as long as the decoding itself.
    resampler = av.AudioResampler(format="fltp", layout=None, rate=native_sr)
    skip = int(offset * native_sr)
    left = None if max_duration is None else int(max_duration * native_sr)
    # FFmpeg hands out ~1024-sample frames; gathering them into bigger blocks keeps
    # the per-block costs (finite check, downmix, resampler call) negligible.
    pending: list[np.ndarray] = []
    pending_rows = 0
    fed = False
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                block = _planes(out)
                if skip:
                    drop = min(skip, block.shape[0])
                    block, skip = block[drop:], skip - drop
                if left is not None:
                    block = block[:left]
                    left -= block.shape[0]
                kept = sink.admit(block.shape[0], channels=block.shape[1])
                if kept < block.shape[0]:
                    block, left = block[:kept], 0  # the work budget is spent: stop after this block
                if block.shape[0]:
                    if pending and pending[0].shape[1] != block.shape[1]:  # the layout changed mid-stream
                        sink.add(np.concatenate(pending))
                        pending, pending_rows = [], 0
                    pending.append(block)
                    pending_rows += block.shape[0]
                    fed = True
                if pending_rows * block.shape[1] * 4 >= BLOCK_BYTES:
                    sink.add(np.concatenate(pending))
                    pending, pending_rows = [], 0
            if left is not None and left <= 0:
                break
    except (AudioDecodeError, InvalidAudioError):
        raise
    except Exception as exc:
        if not fed:
            raise AudioDecodeError(f"{label}: audio stream could not be decoded ({_reason(exc)})") from None
        # A truncated file: keep what decoded cleanly.
    if pending:
        sink.add(np.concatenate(pending))


def _planes(frame) -> np.ndarray:
    """A planar float frame as ``(samples, channels)``.

    Not ``frame.to_ndarray()``: PyAV 18 counts one plane too many for 8-channel
    frames and reads past the last one (a segfault on 7.1 AAC)."""
    channels = frame.layout.nb_channels
    return np.stack([np.frombuffer(plane, np.float32, count=frame.samples) for plane in frame.planes[:channels]],
                    axis=1)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
