"""A corpus of bad, odd and hostile inputs for reliability tests, generated on the spot.

``make_bad_corpus(dirpath)`` writes every case into ``dirpath`` (nothing is
downloaded; the whole corpus takes a few seconds and a few MB) and returns a list
of :class:`BadCase`. ``expect`` says what ``genrify.audio.load_audio`` must do:

* ``"error"``: raise a :class:`genrify.errors.GenrifyError` subclass whose one-line
  message names the file;
* ``"ok"``: return finite float32 mono samples (possibly short, e.g. what remains
  of a truncated file).

``skip`` is set when the platform makes a case meaningless (e.g. ``chmod 000``
does not stop root from reading).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from genrify.sources.synthetic import generate_clip


@dataclass(frozen=True)
class BadCase:
    """One input: ``expect`` is ``"error"`` or ``"ok"``; ``note`` says what it is."""

    name: str
    path: Path
    expect: str
    note: str
    skip: str | None = None


def _tone(sr: int, seconds: float, *, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    y = 0.5 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    return np.repeat(y[:, None], channels, axis=1).astype(np.float32) if channels > 1 else y.astype(np.float32)


def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _png_bytes(width: int = 4, height: int = 4) -> bytes:
    """A tiny valid RGB PNG, written by hand."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes([200, 30, 30]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _write_aac(path: Path, y: np.ndarray, sr: int) -> None:
    import av

    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr, layout="mono")
        for start in range(0, len(y), 1024):
            chunk = y[start : start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts = sr, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _write_aac_71(path: Path, y: np.ndarray, sr: int) -> None:
    """A valid 7.1 (8-channel) AAC in an M4A: the kind of file that crashed PyAV's planar to_ndarray."""
    import av

    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr, layout="7.1")
        for start in range(0, len(y), 1024):
            block = np.zeros(1024, np.float32)
            chunk = y[start : start + 1024]
            block[: len(chunk)] = chunk
            # PyAV's from_ndarray miscounts 8-channel planes; fill the frame's planes directly.
            frame = av.AudioFrame(format="fltp", layout="7.1", samples=1024)
            frame.sample_rate, frame.pts = sr, start
            for plane in frame.planes[:8]:
                plane.update(block.tobytes())
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _flac_8ch_192k(path: Path, *, seconds: int) -> None:
    """``seconds`` of 8-channel, 192 kHz, 24-bit silence as FLAC: tiny on disk, huge once decoded."""
    block = np.zeros((192000, 8), np.float32)
    with sf.SoundFile(path, "w", samplerate=192000, channels=8, format="FLAC", subtype="PCM_24") as f:
        for _ in range(seconds):
            f.write(block)


def _wav_claiming_hours(path: Path, *, sr: int, channels: int, claimed: int) -> None:
    """A 16-bit WAV whose header claims ``claimed`` data bytes but holds 0.5 s."""
    data = (_tone(sr, 0.5, channels=channels) * 32767).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", min(36 + claimed, 0xFFFFFFFF)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * channels * 2, channels * 2, 16)
    header += b"data" + struct.pack("<I", claimed)
    path.write_bytes(header + data)


def _long_flac(path: Path) -> None:
    """Just over an hour of a quiet 8 kHz tone as FLAC: small on disk, quick to write."""
    sr, seconds = 8000, 3700
    block = (_tone(sr, 10.0, freq=250.0) * 0.2).astype(np.float32)  # 250 Hz: a whole number of cycles in 10 s
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds // 10):
            f.write(block)


def _unreadable(path: Path) -> None:
    sf.write(path, _tone(22050, 1.0), 22050)
    os.chmod(path, 0)


def _still_readable(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError:
        return None
    return "chmod 000 does not stop this user (e.g. root) from reading"


def _symlink_loop(a: Path) -> None:
    b = a.with_name("loop_b.mp3")
    os.symlink(b.name, a)
    os.symlink(a.name, b)


def make_bad_corpus(dirpath: str | os.PathLike, *, write: bool = True) -> list[BadCase]:
    """Write every bad-input case under ``dirpath`` (created) and describe it.

    With ``write=False`` nothing is written: the cases are only listed (for test ids)."""
    d = Path(dirpath)
    if write:
        d.mkdir(parents=True, exist_ok=True)
    cases: list[BadCase] = []

    def add(name: str, expect: str, note: str, make: Callable[[Path], object], filename: str) -> None:
        path = d / filename
        skip = None
        if write:
            make(path)
            skip = _still_readable(path) if name == "no_read_permission" else None
        cases.append(BadCase(name=name, path=path, expect=expect, note=note, skip=skip))

    def sfw(y, sr, **kw):
        return lambda p: sf.write(p, y, sr, **kw)

    # ---- not audio at all
    add("zero_bytes", "error", "an empty file", lambda p: p.write_bytes(b""), "empty.mp3")
    add("text_as_mp3", "error", "plain text named .mp3", lambda p: p.write_text("This is not a song.\n" * 50), "notes.mp3")
    add("png_as_mp3", "error", "a valid PNG image named .mp3", lambda p: p.write_bytes(_png_bytes()), "cover.mp3")
    add("random_bytes_wav", "error", "64 KiB of random bytes named .wav",
        lambda p: p.write_bytes(np.random.default_rng(1234).bytes(65536)), "noise.wav")
    add("header_only_wav", "error", "a WAV header with no data chunk contents",
        lambda p: p.write_bytes(_wav_header_only()), "header_only.wav")
    add("wav_cut_in_header", "error", "a WAV cut inside its 44-byte header",
        lambda p: (sf.write(p, _tone(22050, 1.0), 22050), _truncate(p, 20 / p.stat().st_size)), "cut_header.wav")
    add("directory_named_mp3", "error", "a directory named x.mp3", lambda p: p.mkdir(), "x.mp3")
    add("missing_file", "error", "a path that does not exist", lambda p: None, "missing.mp3")
    add("symlink_loop", "error", "loop_a.mp3 -> loop_b.mp3 -> loop_a.mp3", _symlink_loop, "loop_a.mp3")
    add("no_read_permission", "error", "a WAV with mode 000", _unreadable, "locked.wav")
    add("m4a_header_cut", "error", "an M4A with its first 200 bytes (ftyp and more) removed",
        lambda p: (_write_aac(p, _tone(22050, 2.0), 22050), p.write_bytes(p.read_bytes()[200:])), "cut_head.m4a")

    # ---- decodes, but the content is unusable
    nan = _tone(22050, 1.0)
    nan[1000:1010] = np.nan
    add("nan_samples", "error", "32-bit float WAV with NaN samples", sfw(nan, 22050, subtype="FLOAT"), "nan.wav")
    inf = _tone(22050, 1.0)
    inf[500] = np.inf
    inf[501] = -np.inf
    add("inf_samples", "error", "32-bit float WAV with ±inf samples", sfw(inf, 22050, subtype="FLOAT"), "inf.wav")

    # ---- damaged but partly decodable: keep what is there
    music = generate_clip("jazz", seed=1, duration=10.0 if write else 0.01)  # rich enough that 30 % holds audio pages
    add("truncated_mp3", "ok", "a 10 s MP3 cut to 30 %",
        lambda p: (sf.write(p, music, 22050, format="MP3", subtype="MPEG_LAYER_III"), _truncate(p, 0.3)), "cut.mp3")
    add("truncated_flac", "ok", "a 10 s FLAC cut to 30 %",
        lambda p: (sf.write(p, music, 22050, format="FLAC"), _truncate(p, 0.3)), "cut.flac")
    add("truncated_ogg", "ok", "a 10 s Ogg Vorbis cut to 30 %",
        lambda p: (sf.write(p, music, 22050, format="OGG", subtype="VORBIS"), _truncate(p, 0.3)), "cut.ogg")
    add("ogg_cut_in_headers", "error", "a tiny Ogg Vorbis cut inside its codebook headers",
        lambda p: (sf.write(p, _tone(22050, 1.0), 22050, format="OGG", subtype="VORBIS"), _truncate(p, 0.2)),
        "cut_headers.ogg")
    add("wav_claims_hours", "ok", "a WAV header claiming 3 h with 0.5 s of data behind it",
        lambda p: _wav_claiming_hours(p, sr=44100, channels=1, claimed=3 * 3600 * 44100 * 2), "liar.wav")
    add("wav_claims_4gb_8ch_192k", "ok", "an 8-channel 192 kHz WAV header claiming 4 GiB with 0.5 s behind it",
        lambda p: _wav_claiming_hours(p, sr=192000, channels=8, claimed=0xFFFFFF00), "liar_8ch.wav")

    # ---- odd but valid
    add("silence", "ok", "10 s of digital silence", sfw(np.zeros(220500, np.float32), 22050), "silence.wav")
    add("one_sample", "ok", "a WAV holding a single sample", sfw(np.array([0.25], np.float32), 22050), "one_sample.wav")
    add("one_sample_48k", "error", "a single sample at 48 kHz: nothing left after resampling to 22.05 kHz",
        sfw(np.array([0.25], np.float32), 48000), "one_sample_48k.wav")
    add("eight_channels", "ok", "an 8-channel WAV", sfw(_tone(22050, 1.0, channels=8), 22050), "surround.wav")
    add("aac_7_1", "ok", "a valid 7.1 (8-channel) AAC M4A, 2 s at 48 kHz",
        lambda p: _write_aac_71(p, _tone(48000, 2.0), 48000), "surround_71.m4a")
    add("flac_8ch_192k", "ok", "60 s of 8-channel 192 kHz 24-bit FLAC silence (tiny on disk, 368 MB as float32)",
        lambda p: _flac_8ch_192k(p, seconds=60), "hires_8ch.flac")
    add("sr_8k", "ok", "an 8 kHz WAV", sfw(_tone(8000, 1.0), 8000), "phone.wav")
    add("sr_192k", "ok", "a 192 kHz WAV", sfw(_tone(192000, 1.0), 192000, subtype="PCM_24"), "hires.wav")
    add("pcm_24", "ok", "24-bit PCM WAV", sfw(_tone(44100, 1.0), 44100, subtype="PCM_24"), "pcm24.wav")
    add("float_32", "ok", "32-bit float WAV", sfw(_tone(44100, 1.0), 44100, subtype="FLOAT"), "float32.wav")
    add("pcm_u8", "ok", "8-bit unsigned PCM WAV", sfw(_tone(11025, 1.0), 11025, subtype="PCM_U8"), "pcm_u8.wav")
    add("wav_named_mp3", "ok", "a WAV file with an .mp3 extension", sfw(_tone(22050, 1.0), 22050, format="WAV"), "actually_wav.mp3")
    add("long_over_an_hour", "ok", "61 min 40 s of an 8 kHz tone (FLAC)", _long_flac, "long.flac")
    add("unicode_spaces_quotes", "ok", "a file name with unicode, spaces and quotes",
        sfw(_tone(22050, 1.0), 22050), "Ünïcødé 曲 \"double\" 'single' name.wav")
    add("leading_dash_name", "ok", "a file name starting with a dash", sfw(_tone(22050, 1.0), 22050), "-rf.wav")
    stereo = _tone(22050, 1.0, channels=2)
    stereo[:, 1] *= -1
    add("antiphase_stereo", "ok", "stereo whose channels cancel when averaged", sfw(stereo, 22050), "antiphase.wav")
    return cases


def _wav_header_only() -> bytes:
    sr = 22050
    return (
        b"RIFF" + struct.pack("<I", 36) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
        + b"data" + struct.pack("<I", 0)
    )
