"""A deterministic procedural corpus of genre-like *test data* (never real music).

Five styles are labelled with the five genres of the 2017 system so that tests,
benchmarks and the web demo can run end to end without any downloaded audio:

========== ==============================================================
style      what is synthesised
========== ==============================================================
hiphop     slow swung boom-bap drums (kick, snare on 2 and 4, swung hats)
           and a long-decaying sub bass
edm        four-on-the-floor kick at about 125 BPM, off-beat open hats,
           16th closed hats, clap, filtered sawtooth bass on the off-beats
classical  sustained string-like additive triads with vibrato and slow
           swells, no drums
metal      distorted power-chord chugs, fast 16th double kick, snare,
           crash cymbals
jazz       swung ride cymbal, hi-hat on 2 and 4, walking bass, sparse
           syncopated 7th-chord comping
========== ==============================================================

Every random choice (key, tempo jitter, pattern variation, levels, a little
noise) comes from ``seed``, so the same ``(style, seed)`` always gives the same
samples. Synthesis is vectorised numpy (wavetable oscillators indexed by a
cumulative phase, one-shot drum templates added per hit): a 30 s clip at
22.05 kHz takes a few tens of milliseconds on one core.
"""

from __future__ import annotations

import csv
import os
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from genrify.errors import ConfigError

#: The styles, named after the genres they imitate.
STYLES: tuple[str, ...] = ("hiphop", "edm", "classical", "metal", "jazz")

#: Output formats :func:`write_demo_corpus` can write.
FORMATS: tuple[str, ...] = ("wav", "flac", "ogg", "mp3", "m4a")

_STYLE_NAMES = {"hiphop": "Hip-Hop", "edm": "EDM", "classical": "Classical", "metal": "Metal", "jazz": "Jazz"}
_TITLE_FORMS = {"hiphop": "Beat Study", "edm": "Loop Study", "classical": "Study", "metal": "Riff Study", "jazz": "Swing Study"}
_TRACKS_PER_ARTIST = 4
_TABLE_BITS = 11
_TABLE_SIZE = 1 << _TABLE_BITS


# --------------------------------------------------------------------------- public API


def generate_clip(style: str, *, seed: int, sr: int = 22050, duration: float = 30.0) -> np.ndarray:
    """Synthesise one clip of ``style``.

    Args:
        style: one of :data:`STYLES`.
        seed: non-negative integer; the same ``(style, seed, sr, duration)`` gives
            identical samples.
        sr: sample rate in Hz (8000 or more).
        duration: length in seconds (> 0).

    Returns:
        float32 mono samples in [-1, 1], shape ``(round(duration * sr),)``.
    """
    if style not in STYLES:
        raise ConfigError(f"unknown synthetic style {style!r} (expected one of: {', '.join(STYLES)})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(sr, (int, np.integer)) or sr < 8000:
        raise ConfigError(f"sr must be an integer of at least 8000 Hz, got {sr!r}")
    n = int(round(float(duration) * sr))
    if not np.isfinite(duration) or n < 1:
        raise ConfigError(f"duration must be positive and at least one sample long, got {duration!r}")

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(style.encode())]))
    y = _RENDERERS[style](rng, int(sr), n)
    # A little broadband noise, as any recording has.
    y += _noise(rng, n) * np.float32(10 ** (rng.uniform(-58, -46) / 20))
    peak = float(np.max(np.abs(y)))
    if peak > 0:
        y *= np.float32(rng.uniform(0.6, 0.95) / peak)
    return np.clip(y, -1.0, 1.0).astype(np.float32, copy=False)


def write_demo_corpus(
    out: str | os.PathLike,
    *,
    per_genre: int,
    seed: int = 0,
    sr: int = 22050,
    duration: float = 30.0,
    fmt: str = "wav",
    styles: Iterable[str] = STYLES,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Write ``per_genre`` synthetic clips of each style, tagged, plus a manifest.

    Files go to ``out/<style>/<Artist> - <Title>.<fmt>`` with artist, title and
    genre tags (ID3 for WAV and MP3, Vorbis comments for FLAC and Ogg, MP4 atoms
    for M4A), and ``out/manifest.csv`` lists ``path,genre,artist,title`` with
    ``path`` relative to ``out`` (POSIX separators). Names are invented and
    obviously synthetic, e.g. ``Synthetic Jazz Ensemble 2 - Swing Study No. 7``;
    four consecutive clips share an artist. Clip ``i`` of a style is
    :func:`generate_clip` with a seed derived from ``(seed, style, i)``. Every file
    is written to a temporary name in its folder and then renamed into place.

    Args:
        out: the corpus folder (created if missing).
        per_genre: clips per style (>= 1).
        seed: corpus seed.
        sr: sample rate in Hz.
        duration: clip length in seconds.
        fmt: ``"wav"`` (16-bit PCM), ``"flac"``, ``"ogg"`` (Vorbis), ``"mp3"`` or
            ``"m4a"`` (AAC, encoded with PyAV).
        styles: which styles to write (default: all of :data:`STYLES`).
        progress: called as ``progress(done, total)`` after each file.

    Returns:
        The manifest rows, as dicts with keys ``path``, ``genre``, ``artist``, ``title``.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown corpus format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    styles = tuple(styles)
    for style in styles:
        if style not in STYLES:
            raise ConfigError(f"unknown synthetic style {style!r} (expected one of: {', '.join(STYLES)})")
    if isinstance(per_genre, bool) or not isinstance(per_genre, (int, np.integer)) or per_genre < 1:
        raise ConfigError(f"per_genre must be a positive integer, got {per_genre!r}")

    root = Path(out)
    rows: list[dict] = []
    total, done = len(styles) * int(per_genre), 0
    for style in styles:
        folder = root / style
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(int(per_genre)):
            artist, title = track_name(style, i)
            clip_seed = int(np.random.SeedSequence([int(seed), zlib.crc32(style.encode()), i]).generate_state(1)[0])
            y = generate_clip(style, seed=clip_seed, sr=sr, duration=duration)
            path = folder / f"{artist} - {title}.{fmt}"
            _write_atomic(path, lambda tmp: _encode(tmp, y, sr=sr, fmt=fmt, artist=artist, title=title, genre=style))
            rows.append({"path": f"{style}/{path.name}", "genre": style, "artist": artist, "title": title})
            done += 1
            if progress is not None:
                progress(done, total)

    def write_manifest(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["path", "genre", "artist", "title"])
            writer.writeheader()
            writer.writerows(rows)

    root.mkdir(parents=True, exist_ok=True)
    _write_atomic(root / "manifest.csv", write_manifest)
    return rows


def track_name(style: str, index: int) -> tuple[str, str]:
    """The invented ``(artist, title)`` of clip ``index`` (0-based) of ``style``."""
    artist = f"Synthetic {_STYLE_NAMES[style]} Ensemble {index // _TRACKS_PER_ARTIST + 1}"
    return artist, f"{_TITLE_FORMS[style]} No. {index + 1}"


# --------------------------------------------------------------------------- writing


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary name next to ``path``, then rename it into place."""
    from genrify.fileio import atomic_path

    with atomic_path(path) as tmp:
        write(tmp)


def _encode(path: Path, y: np.ndarray, *, sr: int, fmt: str, artist: str, title: str, genre: str) -> None:
    import soundfile as sf

    if fmt == "m4a":
        _encode_aac(path, y, sr=sr)
        from mutagen.mp4 import MP4

        tags = MP4(path)
        tags["\xa9ART"], tags["\xa9nam"], tags["\xa9gen"] = [artist], [title], [genre]
        tags.save()
        return

    if fmt == "wav":
        sf.write(path, y, sr, format="WAV", subtype="PCM_16")
    elif fmt == "flac":
        sf.write(path, y, sr, format="FLAC", subtype="PCM_16")
    elif fmt == "ogg":
        sf.write(path, y, sr, format="OGG", subtype="VORBIS")
    else:  # mp3
        sf.write(path, y, sr, format="MP3", subtype="MPEG_LAYER_III")

    if fmt in ("flac", "ogg"):
        from mutagen.flac import FLAC
        from mutagen.oggvorbis import OggVorbis

        tags = (FLAC if fmt == "flac" else OggVorbis)(path)
        tags["artist"], tags["title"], tags["genre"] = artist, title, genre
        tags.save()
    else:
        from mutagen.id3 import ID3, TCON, TIT2, TPE1
        from mutagen.mp3 import MP3
        from mutagen.wave import WAVE

        audio = (WAVE if fmt == "wav" else MP3)(path)
        if audio.tags is None:
            audio.add_tags()
        assert isinstance(audio.tags, ID3)
        audio.tags.add(TPE1(encoding=3, text=artist))
        audio.tags.add(TIT2(encoding=3, text=title))
        audio.tags.add(TCON(encoding=3, text=genre))
        audio.save()


def _encode_aac(path: Path, y: np.ndarray, *, sr: int) -> None:
    import av

    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr, layout="mono")
        stream.bit_rate = 96_000
        frame_size = 1024
        pts = 0
        for start in range(0, len(y), frame_size):
            chunk = y[start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts = sr, pts
            pts += len(chunk)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


# --------------------------------------------------------------------------- synthesis helpers


def _noise(rng, n: int) -> np.ndarray:
    """White noise, shape ``(n,)``: one second of Gaussian noise repeated (cheap, and
    inaudible as a loop at the levels it is used at)."""
    block = rng.standard_normal(min(n, 22050), dtype=np.float32)
    return np.resize(block, n)


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _wavetable(amps: Iterable[float]) -> np.ndarray:
    """One period of ``sum_k amps[k] * sin(2π (k+1) x)``, peak-normalised, float32."""
    x = np.arange(_TABLE_SIZE) / _TABLE_SIZE
    table = sum(a * np.sin(2 * np.pi * (k + 1) * x) for k, a in enumerate(amps))
    return (table / np.max(np.abs(table))).astype(np.float32)


#: One period of a naive sawtooth.
_SAW = (2.0 * np.arange(_TABLE_SIZE) / _TABLE_SIZE - 1.0).astype(np.float32)


def _increments(freq, sr: int) -> np.ndarray:
    """Phase increments per sample as 32-bit fixed point (a full cycle is 2**32)."""
    return np.round(np.asarray(freq, dtype=np.float64) / sr * 2.0**32).astype(np.int64).astype(np.uint32)


def _osc(inc: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Wavetable oscillator driven by per-sample uint32 increments (continuous phase).

    The phase accumulates in uint32, which wraps exactly once per cycle, so the
    table index is simply its top bits."""
    phase = np.cumsum(inc, dtype=np.uint32)
    return np.take(table, phase >> np.uint32(32 - _TABLE_BITS))


def _note_track(onsets, freqs, gains, *, n: int, sr: int, tables, envelope: Callable[[np.ndarray], np.ndarray],
                voice_gains=None, detune=None) -> np.ndarray:
    """Notes starting at sample ``onsets`` (sorted), each sounding until the next.

    ``freqs`` is ``(notes,)`` or ``(notes, voices)`` in Hz (voices share onsets and
    envelope), ``gains`` one per note, ``tables`` one wavetable per voice (or one for
    all), ``voice_gains`` one per voice, ``envelope`` a function of the time since
    the note began (seconds, array) → amplitude, and ``detune`` (optional, shape
    ``(n,)``) multiplies every voice's frequency sample by sample (vibrato).
    Onsets past the end are dropped; before the first onset there is silence."""
    onsets = np.asarray(onsets, dtype=np.int64)
    freqs = np.asarray(freqs, dtype=np.float64)
    freqs = freqs[:, None] if freqs.ndim == 1 else freqs
    gains = np.asarray(gains, dtype=np.float32)
    keep = onsets < n
    onsets, freqs, gains = onsets[keep], freqs[keep], gains[keep]
    if len(onsets) == 0 or onsets[0] != 0:  # silence until the first note
        onsets = np.concatenate([[0], onsets])
        freqs = np.concatenate([freqs[:1] if len(freqs) else np.full((1, freqs.shape[1]), 440.0), freqs])
        gains = np.concatenate([np.zeros(1, np.float32), gains])
    lengths = np.diff(np.append(onsets, n))
    env = np.asarray(envelope(np.arange(int(lengths.max())) / sr), dtype=np.float32)
    # The amplitude curve is built note by note (a few hundred short slices).
    amp = np.concatenate([env[:length] * g for length, g in zip(lengths.tolist(), gains.tolist())])
    inc = _increments(freqs, sr)
    if isinstance(tables, np.ndarray):
        tables = [tables] * inc.shape[1]
    voice_gains = np.ones(inc.shape[1]) if voice_gains is None else voice_gains
    y = np.zeros(n, np.float32)
    for v, table in enumerate(tables):
        inc_v = np.repeat(inc[:, v], lengths)
        if detune is not None:
            inc_v = (inc_v.astype(np.float32) * detune).astype(np.uint32)
        y += _osc(inc_v, table) * np.float32(voice_gains[v])
    return y * amp


def _pluck(*, attack: float, decay: float, gate: float | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A linear attack, exponential decay and (optionally) a 10 ms release at ``gate`` s."""

    def envelope(t: np.ndarray) -> np.ndarray:
        env = np.minimum(1.0, t / attack) * np.exp(-t / decay)
        if gate is not None:
            env *= np.clip((gate - t) / 0.01, 0.0, 1.0)
        return env

    return envelope


def _lowpass(x: np.ndarray, width: int) -> np.ndarray:
    """A moving average of ``width`` samples (a cheap, crude low-pass)."""
    if width <= 1:
        return x
    c = np.cumsum(np.concatenate([np.zeros(width, np.float32), x]), dtype=np.float64)
    return ((c[width:] - c[:-width]) / width).astype(np.float32)


def _place(out: np.ndarray, template: np.ndarray, onsets: np.ndarray, gains: np.ndarray) -> None:
    """Add ``template * gain`` at each onset (one-shot samples such as drum hits)."""
    n, m = len(out), len(template)
    for start, g in zip(np.asarray(onsets, dtype=np.int64), gains):
        if 0 <= start < n:
            stop = min(n, start + m)
            out[start:stop] += template[: stop - start] * np.float32(g)


def _kick(rng, sr, *, f_hi=150.0, f_lo=48.0, length=0.35, decay=0.12, click=0.3) -> np.ndarray:
    t = np.arange(int(length * sr)) / sr
    f = f_lo + (f_hi - f_lo) * np.exp(-t / 0.03)
    body = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / decay)
    body[: int(0.004 * sr)] += click * rng.standard_normal(int(0.004 * sr))
    return body.astype(np.float32)


def _snare(rng, sr, *, length=0.2, tone=190.0, decay=0.06, brightness=2) -> np.ndarray:
    t = np.arange(int(length * sr)) / sr
    noise = rng.standard_normal(len(t))
    for _ in range(brightness):  # differencing tilts the noise towards the highs
        noise = np.diff(noise, prepend=0.0) * 0.7
    body = 0.5 * np.sin(2 * np.pi * tone * t) * np.exp(-t / 0.04) + noise * np.exp(-t / decay)
    return body.astype(np.float32)


def _hat(rng, sr, *, length=0.05, decay=0.015) -> np.ndarray:
    t = np.arange(int(length * sr)) / sr
    noise = np.diff(rng.standard_normal(len(t) + 1))
    noise = np.diff(noise, prepend=0.0)
    return (0.5 * noise * np.exp(-t / decay)).astype(np.float32)


def _cymbal(rng, sr, *, length=0.8, decay=0.35, partials=(3150, 4230, 5370, 6820, 7940), noise=0.6) -> np.ndarray:
    t = np.arange(int(length * sr)) / sr
    fs = np.asarray(partials, dtype=np.float64) * rng.uniform(0.97, 1.03)
    fs = fs[fs < 0.45 * sr]
    tone = np.sin(2 * np.pi * fs[:, None] * t[None, :] + rng.uniform(0, 2 * np.pi, (len(fs), 1))).sum(axis=0)
    hiss = np.diff(rng.standard_normal(len(t) + 1))
    body = (tone / max(len(fs), 1) + noise * hiss) * np.exp(-t / decay)
    return (0.4 * body).astype(np.float32)


def _beats(bpm: float, sr: int, n: int, beats_per_bar: int = 4) -> tuple[float, int]:
    """Samples per beat and the number of bars that cover ``n`` samples."""
    spb = 60.0 * sr / bpm
    return spb, int(np.ceil(n / (spb * beats_per_bar))) + 1


def _grid(spb: float, n_bars: int, positions: Iterable[float], beats_per_bar: int = 4) -> np.ndarray:
    """Sample onsets of beat ``positions`` (in beats, within a bar) repeated for every bar."""
    pos = np.asarray(list(positions), dtype=np.float64)
    bars = np.arange(n_bars)[:, None] * beats_per_bar
    return np.round((bars + pos[None, :]).ravel() * spb).astype(np.int64)


def _velocities(rng, count: int, base: float, spread: float = 0.15) -> np.ndarray:
    return base * rng.uniform(1 - spread, 1 + spread, count)


def _level(rng) -> float:
    """A random per-part level within about ±3 dB."""
    return float(10 ** (rng.uniform(-3, 3) / 20))


# --------------------------------------------------------------------------- the styles


def _hiphop(rng, sr: int, n: int) -> np.ndarray:
    bpm = rng.uniform(82, 96)
    swing = rng.uniform(0.58, 0.66)  # where the off-beat 8th falls within the beat
    spb, n_bars = _beats(bpm, sr, n)
    y = np.zeros(n, np.float32)

    kick_patterns = [(0, 1 + swing, 2.5), (0, 0 + swing, 2, 2 + swing), (0, 1.75, 2 + swing, 3 + swing)]
    kick_pos = kick_patterns[rng.integers(len(kick_patterns))]
    kicks = _grid(spb, n_bars, kick_pos)
    _place(y, _kick(rng, sr, f_hi=rng.uniform(110, 140), f_lo=rng.uniform(42, 52), decay=0.16), kicks,
           _velocities(rng, len(kicks), 0.9 * _level(rng)))
    snares = _grid(spb, n_bars, (1, 3))
    _place(y, _snare(rng, sr, tone=rng.uniform(170, 220), decay=0.09, brightness=1), snares,
           _velocities(rng, len(snares), 0.55 * _level(rng)))
    hats = _grid(spb, n_bars, [b + s for b in range(4) for s in (0.0, swing)])
    hat_gain = _velocities(rng, len(hats), 0.18 * _level(rng), 0.35)
    hat_gain[1::2] *= 0.6  # softer swung off-beats
    _place(y, _hat(rng, sr, decay=0.02), hats, hat_gain)

    # Sub bass: one long note per kick, following a minor-key root line that moves every two bars.
    root = 28 + rng.integers(0, 12)  # E1..D#2
    line = root + np.array([0, 0, 3, -2, 5, 3, 0, -4])[rng.permutation(8)[:4]]
    bar_of_kick = np.repeat(np.arange(n_bars), len(kick_pos))
    y += _note_track(kicks, _midi_hz(line[(bar_of_kick // 2) % len(line)]), np.full(len(kicks), 0.8 * _level(rng)),
                     n=n, sr=sr, tables=_wavetable([1.0, 0.08]), envelope=_pluck(attack=0.01, decay=rng.uniform(0.5, 0.9)))

    # A soft, dull minor-seventh keyboard motif keeps it musical.
    keys_on = _grid(spb, n_bars, (0, 2 + swing))
    keys = _midi_hz(root + 24 + np.array([3, 7, 10, 7])[np.arange(len(keys_on)) % 4])
    y += _note_track(keys_on, keys, np.full(len(keys_on), 0.12 * _level(rng)), n=n, sr=sr,
                     tables=_wavetable([1.0, 0.3, 0.1]), envelope=_pluck(attack=0.005, decay=0.4))
    return y


def _edm(rng, sr: int, n: int) -> np.ndarray:
    bpm = 125.0 + rng.uniform(-3, 3)
    spb, n_bars = _beats(bpm, sr, n)
    y = np.zeros(n, np.float32)

    kicks = _grid(spb, n_bars, (0, 1, 2, 3))
    _place(y, _kick(rng, sr, f_hi=rng.uniform(140, 180), f_lo=rng.uniform(45, 55), decay=0.11, click=0.5), kicks,
           _velocities(rng, len(kicks), 1.0 * _level(rng), 0.03))
    claps = _grid(spb, n_bars, (1, 3))
    _place(y, _snare(rng, sr, tone=rng.uniform(900, 1300), decay=0.05, brightness=2), claps,
           _velocities(rng, len(claps), 0.35 * _level(rng), 0.05))
    hats = _grid(spb, n_bars, np.arange(16) / 4)
    _place(y, _hat(rng, sr, decay=0.012), hats, _velocities(rng, len(hats), 0.22 * _level(rng), 0.2))
    opens = _grid(spb, n_bars, (0.5, 1.5, 2.5, 3.5))
    _place(y, _hat(rng, sr, length=0.2, decay=0.07), opens, _velocities(rng, len(opens), 0.3 * _level(rng), 0.05))

    # Off-beat bass of two detuned sawtooths, gated to a short pluck, crudely low-passed.
    root = 33 + rng.integers(0, 12)  # A1..G#2
    prog = root + (np.array([0, -4, -2, 0]) if rng.random() < 0.5 else np.array([0, 3, -4, -5]))
    bass_on = _grid(spb, n_bars, (0.5, 1.5, 2.5, 3.5))
    f = _midi_hz(prog[np.repeat(np.arange(n_bars), 4) % len(prog)])
    gate = 0.45 * spb / sr
    saw = _note_track(bass_on, np.stack([f, f * 1.007], axis=1), np.full(len(bass_on), 0.5 * _level(rng)), n=n, sr=sr,
                      tables=_SAW, envelope=lambda t: np.minimum(1.0, t / 0.003) * np.clip((gate - t) / 0.005, 0, 1))
    y += _lowpass(saw, max(2, int(sr / rng.uniform(1500, 2500))))

    # A stab chord every bar keeps some mid-range content.
    stabs = _grid(spb, n_bars, (0.75,) if rng.random() < 0.5 else (1.75,))
    ts = np.arange(int(0.25 * sr)) / sr
    stab = sum(2 * ((fc * ts) % 1.0) - 1 for fc in _midi_hz(root + 24 + np.array([0, 3, 7])))
    stab = _lowpass((stab * np.exp(-ts / 0.08)).astype(np.float32), 4)
    _place(y, stab, stabs, _velocities(rng, len(stabs), 0.12 * _level(rng), 0.05))
    return y


def _classical(rng, sr: int, n: int) -> np.ndarray:
    # Chords held for a couple of seconds each, four string-like voices with vibrato.
    chord_len = rng.uniform(1.8, 3.2)
    seg = int(chord_len * sr)
    n_chords = n // seg + 1
    key = 48 + rng.integers(0, 12)
    degrees = np.array([[0, 4, 7, 12], [5, 9, 12, 17], [7, 11, 14, 19], [-3, 0, 4, 9], [2, 5, 9, 14], [-1, 2, 7, 11]])
    order = np.concatenate([[0], rng.integers(0, len(degrees), n_chords - 1)])
    chords = _midi_hz(key + degrees[order])  # (n_chords, 4)
    levels = np.array([0.35, 0.22, 0.2, 0.18]) * np.array([_level(rng) for _ in range(4)])
    time = np.arange(n, dtype=np.float32) / np.float32(sr)
    vibrato = 1.0 + 0.004 * np.sin(np.float32(2 * np.pi * rng.uniform(4.8, 6.2)) * time)
    string = _wavetable([1.0, 0.5, 0.33, 0.25, 0.2, 0.16, 0.12, 0.1, 0.08, 0.06])  # bowed: ~1/k partials
    mellow = _wavetable([1.0, 0.35, 0.15, 0.08])
    hold = seg / sr

    def bowed(t):  # slow bow attack, release into the next chord
        return np.clip(np.minimum(t / 0.35, (hold - t) / 0.25 + 0.15), 0.0, 1.0)

    y = _note_track(np.arange(n_chords) * seg, chords, np.ones(n_chords), n=n, sr=sr,
                    tables=[mellow, string, string, string], voice_gains=levels, envelope=bowed, detune=vibrato)
    y *= 0.75 + 0.25 * np.sin(np.float32(2 * np.pi / rng.uniform(6, 12)) * time + np.float32(rng.uniform(0, 6.28)))
    # A little room: a few early reflections smear the attacks.
    for delay, g in ((0.023, 0.3), (0.041, 0.2), (0.067, 0.12)):
        d = int(delay * sr)
        if d < n:
            y[d:] += np.float32(g) * y[:-d]
    return y


def _metal(rng, sr: int, n: int) -> np.ndarray:
    bpm = rng.uniform(165, 200)
    spb, n_bars = _beats(bpm, sr, n)
    y = np.zeros(n, np.float32)

    # Fast double kick on every 16th, backbeat snare, crash every bar or two.
    kicks = _grid(spb, n_bars, np.arange(16) / 4)
    _place(y, _kick(rng, sr, f_hi=rng.uniform(170, 220), f_lo=60, length=0.12, decay=0.03, click=0.8), kicks,
           _velocities(rng, len(kicks), 0.55 * _level(rng), 0.1))
    snares = _grid(spb, n_bars, (1, 3))
    _place(y, _snare(rng, sr, tone=rng.uniform(200, 250), decay=0.08, brightness=1), snares,
           _velocities(rng, len(snares), 0.7 * _level(rng), 0.05))
    crashes = _grid(spb, n_bars, (0,))[:: int(rng.integers(1, 3))]
    _place(y, _cymbal(rng, sr, length=1.2, decay=0.6, noise=1.0), crashes,
           _velocities(rng, len(crashes), 0.5 * _level(rng), 0.05))

    # Power chords (root, fifth, octave) chugged in 8ths: sawtooths, palm-mute envelope, hard clipping.
    root = 40 + rng.integers(-4, 3)  # low E, give or take a drop tuning
    riff = np.roll(root + np.array([0, 0, 0, 3, 0, 0, 5, 6, 0, 0, 7, 5, 0, 3, 1, 0]), int(rng.integers(0, 16)))
    chug_on = _grid(spb, n_bars, np.arange(8) / 2)
    f = _midi_hz(riff[np.arange(len(chug_on)) % len(riff)])
    mute = rng.uniform(0.07, 0.15)
    raw = _note_track(chug_on, np.stack([f, f * 1.4983, f * 2.0], axis=1), np.ones(len(chug_on)), n=n, sr=sr,
                      tables=_SAW, envelope=lambda t: 0.8 * np.exp(-t / mute) + 0.2)
    y += _lowpass(np.tanh(np.float32(rng.uniform(6, 12)) * raw) * np.float32(0.5 * _level(rng)), 2)
    return y


def _jazz(rng, sr: int, n: int) -> np.ndarray:
    bpm = rng.uniform(130, 190)
    swing = rng.uniform(0.62, 0.7)
    spb, n_bars = _beats(bpm, sr, n)
    y = np.zeros(n, np.float32)

    # Ride: "ding, ding-a ding, ding-a"; foot hi-hat on 2 and 4; no backbeat snare.
    rides = _grid(spb, n_bars, (0, 1, 1 + swing, 2, 3, 3 + swing))
    ride_gain = _velocities(rng, len(rides), 0.35 * _level(rng), 0.2)
    ride_gain[2::6] *= 0.6
    ride_gain[5::6] *= 0.6
    _place(y, _cymbal(rng, sr, length=0.9, decay=0.45, partials=(2800, 3690, 4930, 5870, 7210), noise=0.25), rides,
           ride_gain)
    chicks = _grid(spb, n_bars, (1, 3))
    _place(y, _hat(rng, sr, length=0.06, decay=0.02), chicks, _velocities(rng, len(chicks), 0.15 * _level(rng)))

    # ii-V-I-VI in a random key, one chord per bar; walking bass in quarters.
    key = int(rng.integers(0, 12))
    roots = key + np.array([2, 7, 0, 9])  # Dm7 G7 Cmaj7 A7 in C
    qualities = np.array([[0, 3, 7, 10], [0, 4, 7, 10], [0, 4, 7, 11], [0, 4, 7, 10]])
    bar = np.arange(n_bars)
    chord_roots = roots[bar % 4]
    walk = np.stack(
        [
            chord_roots,
            chord_roots + qualities[bar % 4, rng.integers(1, 3, n_bars)],
            chord_roots + qualities[bar % 4, 2],
            np.roll(chord_roots, -1) + rng.choice([-1, 1, 2, -2], n_bars),  # approach the next root
        ],
        axis=1,
    ).ravel()
    walk = 36 + (walk % 12) + 12 * (rng.random(len(walk)) < 0.3)
    bass_on = _grid(spb, n_bars, (0, 1, 2, 3))
    y += _note_track(bass_on, _midi_hz(walk), _velocities(rng, len(bass_on), 0.55 * _level(rng), 0.1), n=n, sr=sr,
                     tables=_wavetable([1.0, 0.45, 0.2, 0.08]),
                     envelope=_pluck(attack=0.004, decay=rng.uniform(0.35, 0.6), gate=0.9 * spb / sr))

    # Comping: rootless 7th-chord voicings (3rd, 5th, 7th, 10th) on syncopated off-beats.
    comp_pos = [(1 + swing,), (0 + swing, 2 + swing), (1.0, 3 + swing), (2 + swing,)]
    voicing = qualities[bar % 4][:, [1, 2, 3, 1]] + np.array([0, 0, 0, 12])
    comp_on, comp_bar = [], []
    for b in range(n_bars):
        for p in comp_pos[(b + key) % len(comp_pos)]:
            comp_on.append(int(round((4 * b + p) * spb)))
            comp_bar.append(b)
    comp_bar = np.asarray(comp_bar)
    notes = 48 + (chord_roots[comp_bar] % 12)[:, None] + voicing[comp_bar]
    y += _note_track(np.asarray(comp_on), _midi_hz(notes), _velocities(rng, len(comp_on), 0.09, 0.2), n=n, sr=sr,
                     tables=_wavetable([1.0, 0.25, 0.12, 0.05, 0.03]), envelope=_pluck(attack=0.003, decay=0.5))
    return y


_RENDERERS = {"hiphop": _hiphop, "edm": _edm, "classical": _classical, "metal": _metal, "jazz": _jazz}
