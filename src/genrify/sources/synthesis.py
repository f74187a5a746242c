"""How the synthetic styles are made: wavetable oscillators, drum one-shots, rhythm grids, one renderer per style.

Used by :func:`~genrify.sources.synthetic.generate_clip`, which validates its
arguments, seeds the generator and normalises the result. Everything here is
vectorised numpy: oscillators are indexed by a cumulative phase, and one-shot
drum templates are added per hit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

_TABLE_BITS = 11
_TABLE_SIZE = 1 << _TABLE_BITS


# --------------------------------------------------------------------------- synthesis helpers


def noise(rng, n: int) -> np.ndarray:
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


def render(style: str, rng: np.random.Generator, *, sr: int, n: int) -> np.ndarray:
    """``n`` samples at ``sr`` Hz of ``style`` (a key of :data:`~genrify.sources.synthetic.STYLES`), drawing
    every random choice from ``rng``; float32, shape ``(n,)``, not yet normalised."""
    return _RENDERERS[style](rng, sr, n)
