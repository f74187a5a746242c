"""Fuzzing: generated files through decode → features → predict, a real server's upload, `genrify tag`,
`genrify library scan` and the /library and /audit pages of a real server.

    python tools/fuzz_pipeline.py --seconds 300            # pipeline + upload, time split between them
    python tools/fuzz_pipeline.py --target pipeline --seconds 60
    python tools/fuzz_pipeline.py --target tag,scan,library,audit --seconds 120
    python tools/fuzz_pipeline.py --target all --seconds 600
    python tools/fuzz_pipeline.py --smoke                  # ~20 s (CI)
    python tools/fuzz_pipeline.py --target library --seed 7  # the inputs of the run that printed "seed: 7"

Inputs are drawn by hypothesis: a seed file generated on the spot (a 2 s synthetic
clip as 16-bit WAV, float WAV, FLAC, Ogg Vorbis or MP3; never real recordings) with
a few mutations applied (bit flips, overwritten header fields with extreme integers,
cuts, inserted or repeated blocks, random bytes); files whose channel count (1, 2,
3, 6, 8), sample rate (8 kHz … 192 kHz) and duration are drawn together, as WAV,
FLAC or AAC in M4A (5.1 and 7.1 included), valid or with a few mutations; plus raw
sample arrays with extreme values at odd sample rates.

* ``pipeline``: each input goes to ``GenreClassifier.analyse`` in a worker
  process. A result or a :class:`genrify.errors.GenrifyError` is fine; any
  other exception, a dead worker (a crash in C) or an input that takes longer
  than ``--hang`` seconds is a finding. So is a decoder worker that crashed
  (genrify's isolation turns it into an ``AudioDecodeError``, but the decoder
  still died in C, and with ``GENRIFY_DECODE_IN_PROCESS=1`` the caller would).
* ``upload``: each mutated file is POSTed to ``/api/predict`` of a real
  ``genrify serve`` on 127.0.0.1 (raw body or multipart). A JSON answer below
  500 is fine; a 5xx, a non-JSON answer, a dropped connection or a dead server
  is a finding.
* ``tag`` and ``scan``: a folder of 1-6 generated files (names drawn with
  terminal escapes, newlines, bidirectional overrides, bytes that are not UTF-8,
  a leading dash, 200-byte names; contents the seeds as written, mutated, carrying
  drawn tags, or random bytes) goes to ``python -m genrify tag DIR`` (a dry run,
  into a private results index) or ``genrify library scan DIR``. An exit status
  other than 0 or 1, a traceback or no exit within ``--hang`` + 60 s is a finding.
* ``library``: one real ``genrify serve --index IDX --library DIR``; each input
  adds 1-3 drawn rows to the results index (hostile file names inside and outside
  the library, analyses with NaN, infinities, ragged windows or JSON of any
  shape, drawn tags) and asks ``/api/library`` with drawn parameters, then each
  row's ``/api/library/{id}``, ``/timeline`` and ``/audio``, and ``/library``.
* ``audit``: each input is a corpus of generated files in 2-3 genre folders
  with drawn names, built with ``genrify dataset build``, whose index rows then
  get drawn artists, titles and durations; a real ``genrify serve --audit`` is
  asked ``/api/audit``, ``/audit``, each finding's audio, and decisions with
  drawn keys and bodies.

For the web targets a 5xx, an API answer that is not JSON, a dropped connection
or a dead server is a finding.

Findings are saved (deduplicated by content) as
``tests/fuzz_regressions/<target>-<sha256[:16]>.bin`` (pipeline, upload: the bytes)
or ``.json`` (tag, scan, library, audit: the files, rows and requests, bytes in
base64), which ``tests/test_reliability.py`` and ``tests/test_fuzz_smoke.py``
replay. Exit status 1 when something was found.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

# The serving harness and machine facts are the benchmarks' (benchmarks/_common.py, bench_serve.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _common import REPO, descendants, machine_header  # noqa: E402

REGRESSIONS = REPO / "tests" / "fuzz_regressions"
SR = 22050


# --------------------------------------------------------------------------- seeds


def make_seeds() -> dict[str, bytes]:
    """Small valid files of a 2 s synthetic clip, one per format genrify reads."""
    import soundfile as sf

    from genrify.sources.synthetic import generate_clip

    y = generate_clip("jazz", seed=3, sr=SR, duration=2.0)
    seeds = {}
    for name, kw in {"wav16": dict(format="WAV", subtype="PCM_16"), "wavfloat": dict(format="WAV", subtype="FLOAT"),
                     "flac": dict(format="FLAC", subtype="PCM_16"), "ogg": dict(format="OGG", subtype="VORBIS"),
                     "mp3": dict(format="MP3", subtype="MPEG_LAYER_III")}.items():
        buf = io.BytesIO()
        sf.write(buf, y, SR, **kw)
        seeds[name] = buf.getvalue()
    return seeds


def _mutations():
    """A hypothesis strategy for one mutation, applied by :func:`_mutate`."""
    from hypothesis import strategies as st

    extreme = st.sampled_from([0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
    return st.one_of(
        st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
        st.tuples(st.just("int"), st.floats(0, 0.05), extreme, st.sampled_from([1, 2, 4])),  # mostly headers
        st.tuples(st.just("cut"), st.floats(0, 1)),
        st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("repeat"), st.floats(0, 1), st.integers(1, 512), st.integers(1, 8)),
        st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 512)),
    )


def _mutate(data: bytes, muts) -> bytes:
    """``data`` with the mutations of :func:`_mutations` applied in order."""
    data = bytearray(data)
    for m in muts:
        n = len(data)
        if n == 0:
            break
        pos = min(n - 1, int(m[1] * n))
        if m[0] == "flip":
            data[pos] ^= 1 << m[2]
        elif m[0] == "int":
            value, width = m[2] % (1 << (8 * m[3])), m[3]
            data[pos:pos + width] = value.to_bytes(width, "little")
        elif m[0] == "cut":
            del data[pos:]
        elif m[0] == "insert":
            data[pos:pos] = m[2]
        elif m[0] == "repeat":
            block = bytes(data[pos:pos + m[2]])
            data[pos:pos] = block * m[3]
        elif m[0] == "delete":
            del data[pos:pos + m[2]]
    return bytes(data)


def mutated_files(seeds: dict[str, bytes]):
    """A hypothesis strategy: a seed with 1-6 mutations."""
    from hypothesis import strategies as st

    return st.tuples(st.sampled_from(sorted(seeds)), st.lists(_mutations(), min_size=1, max_size=6)).map(
        lambda args: _mutate(seeds[args[0]], args[1]))


# --------------------------------------------------------------------------- channels × rate × duration

#: Channel counts drawn together with rate and duration: mono, stereo, an odd count, 5.1, 7.1.
CHANNELS = (1, 2, 3, 6, 8)
#: AAC channel layouts by channel count (7.1 is the layout that once segfaulted PyAV).
AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 6: "5.1", 8: "7.1"}
RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000)
#: FFmpeg's AAC encoder stops at 96 kHz; higher draws are encoded at its highest rate.
AAC_MAX_RATE = 96000
DURATIONS = (0.01, 0.1, 0.5, 1.0, 1.5, 3.0, 10.0, 60.0)
#: Channel-samples per seed (samples x channels): a longer draw is cut to fit, so that the
#: largest rates and channel counts get the shortest files and each seed takes well under a
#: second to write (AAC encodes slowest). Silence compresses to almost nothing in FLAC, so a
#: silent FLAC may be 8 times longer (11 s of 8 channels at 192 kHz: the shape of the "bomb").
MAX_CHANNEL_SAMPLES = {"wav16": 1 << 21, "wav24": 1 << 21, "flac": 1 << 21, "m4a": 1 << 18}
SILENT_FLAC_CHANNEL_SAMPLES = 1 << 24
#: Encoded files kept for reuse across draws.
CACHE_BYTES = 128 * 1024 * 1024


def _scaled_samples(*, channels: int, sr: int, n: int, content: str, seed: int):
    """``(n, channels)`` float32 test signal: each channel its own tone, so a downmix is not a copy."""
    import numpy as np

    if content == "silence":
        return np.zeros((n, channels), np.float32)
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64) / sr
    y = np.empty((n, channels), np.float32)
    for ch in range(channels):
        freq = min(110.0 * (ch + 2), sr / 3)  # below Nyquist at every drawn rate
        y[:, ch] = 0.3 * np.sin(2 * np.pi * freq * t)
    if content == "noise":
        y += 0.2 * rng.standard_normal((n, channels)).astype(np.float32)
    elif content == "antiphase" and channels > 1:  # channels that cancel in the average
        y[:, 1::2] = -y[:, 0::2][:, : y[:, 1::2].shape[1]]
    elif content == "full_scale":
        y = np.sign(y).astype(np.float32)  # clipped square waves at +-1
    return y


def _encode_m4a(y, *, sr: int) -> bytes:
    """AAC in an M4A from ``(n, channels)`` samples, by filling each frame's planes.

    Not ``AudioFrame.from_ndarray``: PyAV miscounts the planes of 8-channel
    frames (tests/helpers/badinput.py::_write_aac_71 does the same)."""
    import av
    import numpy as np

    channels = y.shape[1]
    layout = AAC_LAYOUTS[channels]
    buf = io.BytesIO()
    with av.open(buf, "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr, layout=layout)
        for start in range(0, len(y), 1024):
            block = np.zeros((1024, channels), np.float32)
            chunk = y[start:start + 1024]
            block[: len(chunk)] = chunk
            frame = av.AudioFrame(format="fltp", layout=layout, samples=1024)
            frame.sample_rate, frame.pts = sr, start
            for ch, plane in enumerate(frame.planes[:channels]):
                plane.update(np.ascontiguousarray(block[:, ch]).tobytes())
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def encode_scaled(*, fmt: str, channels: int, sr: int, duration: float, content: str, seed: int) -> bytes:
    """One valid file of the drawn shape (cut to :data:`MAX_CHANNEL_SAMPLES`); see :func:`scaled_files`."""
    import soundfile as sf

    if fmt == "m4a":
        sr = min(sr, AAC_MAX_RATE)
    cap = SILENT_FLAC_CHANNEL_SAMPLES if (fmt == "flac" and content == "silence") else MAX_CHANNEL_SAMPLES[fmt]
    n = max(1, min(int(round(duration * sr)), cap // channels))
    y = _scaled_samples(channels=channels, sr=sr, n=n, content=content, seed=seed)
    if fmt == "m4a":
        return _encode_m4a(y, sr=sr)
    buf = io.BytesIO()
    subtype = {"wav16": "PCM_16", "wav24": "PCM_24", "flac": "PCM_24"}[fmt]
    sf.write(buf, y, sr, format="FLAC" if fmt == "flac" else "WAV", subtype=subtype)
    return buf.getvalue()


def scaled_files(cache: dict | None = None):
    """A hypothesis strategy: ``(shape, description, bytes, valid)``, a file of drawn channels x rate x duration.

    Formats: 16/24-bit WAV, 24-bit FLAC, AAC in M4A. Half the draws are the valid
    file as written (``valid`` true), the others carry 1-3 mutations. Encoded files are
    kept in ``cache`` (keyed by shape, at most :data:`CACHE_BYTES`), so a shape drawn
    again costs no encoding.
    """
    from hypothesis import strategies as st

    cache = {} if cache is None else cache

    def build(args):
        fmt, channels, sr, duration, content, seed, muts = args
        key = (fmt, channels, sr, duration, content, seed)
        if key not in cache:
            cache[key] = encode_scaled(fmt=fmt, channels=channels, sr=sr, duration=duration, content=content,
                                       seed=seed)
            while sum(map(len, cache.values())) > CACHE_BYTES and len(cache) > 1:
                del cache[next(iter(cache))]  # the oldest shape: a long run must not grow without bound
        data = _mutate(cache[key], muts) if muts else cache[key]
        what = f"{fmt} {channels} ch {sr} Hz {duration:g} s {content} seed {seed}" + (
            f", {len(muts)} mutations" if muts else "")
        return key, what, data, not muts

    mutations = st.one_of(st.just([]), st.lists(_mutations(), min_size=1, max_size=3))
    return st.tuples(st.sampled_from(sorted(MAX_CHANNEL_SAMPLES)), st.sampled_from(CHANNELS), st.sampled_from(RATES),
                     st.sampled_from(DURATIONS), st.sampled_from(["tones", "noise", "silence", "antiphase",
                                                                  "full_scale"]),
                     st.integers(0, 3), mutations).map(build)


def sample_arrays():
    """A hypothesis strategy: ``(samples, sr)`` with extreme values, odd shapes and rates."""
    import numpy as np
    from hypothesis import strategies as st

    special = st.sampled_from([0.0, 1.0, -1.0, 1e-45, 1e30, -1e30, 3.4e38, np.nan, np.inf, -np.inf])

    def build(args):
        kind, n, sr, value, channels, seed = args
        rng = np.random.default_rng(seed)
        if kind == "const":
            y = np.full(n, value, np.float32)
        elif kind == "noise":
            y = (rng.standard_normal(n) * (abs(value) if np.isfinite(value) and value else 1.0)).astype(np.float32)
        else:  # noise with one special sample
            y = rng.standard_normal(n).astype(np.float32)
            y[rng.integers(0, n)] = value
        if channels > 1:
            y = np.repeat(y[:, None], channels, axis=1)
        return y, sr

    return st.tuples(st.sampled_from(["const", "noise", "spike"]), st.integers(1, 3 * 48000),
                     st.sampled_from([1, 100, 8000, 22050, 44100, 48000, 192000]), special,
                     st.sampled_from([1, 2, 3, 6, 8]), st.integers(0, 2**32 - 1)).map(build)


# --------------------------------------------------------------------------- the pipeline target (worker process)


def _worker(model: str, conn) -> None:
    import warnings

    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    from genrify.errors import GenrifyError
    from genrify.predict import GenreClassifier

    clf = GenreClassifier.from_file(model)
    conn.send("ready")
    while True:
        item = conn.recv()
        if item is None:
            return
        try:
            if isinstance(item, bytes):
                clf.analyse(item)
            else:
                clf.analyse(item[0], sr=item[1])
            conn.send(("ok", ""))
        except GenrifyError as exc:
            conn.send(("error", str(exc)))
        except BaseException as exc:  # noqa: BLE001 - this is what the fuzzer looks for
            conn.send(("crash", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


class PipelineRunner:
    """Runs inputs in a worker process; restarts it after a crash or a hang."""

    def __init__(self, model: Path, hang_s: float):
        self.model, self.hang_s = str(model), hang_s
        self.ctx = mp.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(self.model, child), daemon=True)
        self.proc.start()
        if not self.conn.poll(120) or self.conn.recv() != "ready":
            raise RuntimeError("the fuzz worker did not start")

    def run(self, item) -> tuple[str, str]:
        self.conn.send(item)
        if self.conn.poll(self.hang_s):
            try:
                return self.conn.recv()
            except EOFError:
                pass
        alive = self.proc.is_alive()
        # The worker's own decoder processes go too: a hung decoder would outlive it and keep a core busy.
        for pid in descendants(self.proc.pid):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        self.proc.kill()
        self.proc.join()
        self._start()
        return ("hang", f"no answer within {self.hang_s:g} s") if alive else ("crash", f"worker died ({self.proc.exitcode})")

    def close(self) -> None:
        try:
            self.conn.send(None)
            self.proc.join(5)
        finally:
            if self.proc.is_alive():
                self.proc.kill()


#: How genrify's decoder isolation words a decoder that died (genrify.audio.isolation.DecoderPool.decode).
DECODER_DIED = "the decoder crashed on this file"
#: How GenreClassifier.analyse refuses a song shorter than the model's minimum: expected for short draws.
TOO_SHORT = "too short"
#: Findings larger than this are reported, not saved: tests/fuzz_regressions holds files of a few KB.
MAX_SAVED_BYTES = 256 * 1024
OVERSIZED = Path(tempfile.gettempdir()) / "genrify-fuzz-findings"


# --------------------------------------------------------------------------- bookkeeping


class Findings:
    def __init__(self, save: bool):
        self.save = save
        self.count: dict[str, int] = {}
        self.saved: list[Path] = []
        self.examples: dict[str, str] = {}
        self.outcomes: dict[str, int] = {}

    def outcome(self, kind: str) -> None:
        self.outcomes[kind] = self.outcomes.get(kind, 0) + 1

    def found(self, target: str, data: bytes, what: str, *, suffix: str = ".bin") -> None:
        key = what.splitlines()[0][:200]
        self.count[key] = self.count.get(key, 0) + 1
        self.examples.setdefault(key, what)
        if len(data) > MAX_SAVED_BYTES:  # too big for tests/: kept outside the repository for a look
            OVERSIZED.mkdir(parents=True, exist_ok=True)
            path = OVERSIZED / f"{target}-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
            path.write_bytes(data)
            if self.count[key] == 1:
                self.examples[key] += f"\n(too big for tests/: {len(data)} bytes, written to {path})"
            return
        if self.save and self.count[key] <= 3:  # a few inputs per distinct failure are enough
            REGRESSIONS.mkdir(parents=True, exist_ok=True)
            path = REGRESSIONS / f"{target}-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
            if not path.exists():
                path.write_bytes(data)
                self.saved.append(path)


def _array_bytes(y, sr) -> bytes:
    """An array finding saved as a float WAV so the replay (bytes in) reaches the same code."""
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(y, np.float32), max(1, int(sr)), format="WAV", subtype="FLOAT")
    return buf.getvalue()


# --------------------------------------------------------------------------- drivers


#: The hypothesis seed of this run (``--seed``): a run given the seed of another draws the same inputs, in the
#: same order, for as long as both last.
SEED = 0


def _time_boxed(strategy, seconds: float, check) -> int:
    """Draw from ``strategy`` with hypothesis (seeded with :data:`SEED`) until ``seconds`` have passed;
    returns the number of inputs."""
    from hypothesis import HealthCheck, Phase, given, seed, settings

    deadline = time.monotonic() + seconds
    n = [0]

    class _Done(Exception):
        pass

    @seed(SEED)
    @settings(max_examples=10**9, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(item):
        if time.monotonic() > deadline:
            raise _Done
        n[0] += 1
        check(item)

    try:
        run()
    except _Done:
        pass
    return n[0]


def fuzz_pipeline(model: Path, seeds: dict[str, bytes], seconds: float, hang_s: float, findings: Findings) -> int:
    runner = PipelineRunner(model, hang_s)

    def judge(kind: str, what: str) -> str:
        # Isolation turns a decoder's death into an AudioDecodeError: fine for the caller, still a crash in C.
        return "decoder-crash" if kind == "error" and DECODER_DIED in what else kind

    def check_bytes(data: bytes, label: str = ""):
        kind, what = runner.run(data)
        kind = judge(kind, what)
        findings.outcome(kind)
        if kind in ("crash", "hang", "decoder-crash"):
            findings.found("pipeline", data, f"{kind}{label}: {what}")

    scaled: dict[str, int] = {}
    shapes: set[tuple] = set()  # (format, channels, rate, duration, content, seed) drawn

    def check_scaled(item):
        shape, what, data, valid = item
        shapes.add(shape)
        kind, answer = runner.run(data)
        kind = judge(kind, answer)
        if valid and kind == "error" and TOO_SHORT not in answer:
            kind = "refused-valid"  # a valid file, long enough, that genrify would not analyse
        findings.outcome(kind)
        scaled[kind] = scaled.get(kind, 0) + 1
        if kind in ("crash", "hang", "decoder-crash", "refused-valid"):
            findings.found("pipeline", data, f"{kind} ({what}): {answer}")

    def check_array(item):
        y, sr = item
        kind, what = runner.run((y, sr))
        findings.outcome(judge(kind, what))
        if kind in ("crash", "hang"):
            findings.found("pipeline", _array_bytes(y, sr), f"{kind} (array, sr={sr}, shape={y.shape}): {what}")

    encoded: dict = {}  # shape → valid file, kept across draws (the oldest dropped past CACHE_BYTES)
    try:
        n = _time_boxed(mutated_files(seeds), seconds * 0.5, check_bytes)
        n += _time_boxed(scaled_files(encoded), seconds * 0.3, check_scaled)
        n += _time_boxed(sample_arrays(), seconds * 0.2, check_array)
    finally:
        runner.close()
    print(f"scaled files: {len(shapes)} shapes (formats {', '.join(sorted({k[0] for k in shapes}))}; channels "
          f"{', '.join(map(str, sorted({k[1] for k in shapes})))}; rates {min((k[2] for k in shapes), default=0)}-"
          f"{max((k[2] for k in shapes), default=0)} Hz); outcomes: "
          + ", ".join(f"{k} {v}" for k, v in sorted(scaled.items())))
    return n


def fuzz_upload(model: Path, seeds: dict[str, bytes], seconds: float, findings: Findings) -> int:
    import httpx
    from hypothesis import strategies as st

    from bench_serve import ServeProcess

    with ServeProcess(model, extra_args=("--analysis-timeout", "30")) as server, \
            httpx.Client(base_url=server.base, timeout=60) as client:

        def check(item):
            data, how = item
            try:
                if how == "multipart":
                    r = client.post("/api/predict?images=false", files={"file": ("fuzz.mp3", data, "audio/mpeg")})
                else:
                    r = client.post("/api/predict?images=false", content=data, headers={"content-type": how})
            except httpx.HTTPError as exc:
                findings.outcome("crash")
                findings.found("upload", data, f"connection: {type(exc).__name__}: {exc}")
                if not server.alive():
                    raise RuntimeError(f"the server died:\n{server.log.read_text()[-3000:]}") from None
                return
            ok_json = r.headers.get("content-type", "").startswith("application/json")
            if r.status_code >= 500 or not ok_json:
                findings.outcome("crash")
                findings.found("upload", data, f"HTTP {r.status_code}: {r.text[:300]}")
            else:
                findings.outcome("ok" if r.status_code == 200 else f"http-{r.status_code}")

        hows = st.sampled_from(["multipart", "application/octet-stream", "audio/mpeg", "audio/wav"])
        n = _time_boxed(st.tuples(mutated_files(seeds), hows), seconds, check)
        assert client.get("/healthz").status_code == 200 and server.alive()
        log = server.log.read_text()
    if "Traceback" in log:
        findings.found("upload", b"", "server log holds a traceback:\n" + log[-3000:])
    return n


# --------------------------------------------------------------------------- generated names, folders and index rows

#: Names a library may hold: what a terminal acts on, what a shell or a parser trips on, what is not
#: UTF-8 (os.fsdecode keeps such bytes as lone surrogates, as genrify meets them).
ODD_NAMES = ("-rf", "--help", "evil\x1b]0;owned\x07", "two\nlines", "\u202eKcor", "spa ce's \"quoted\"",
             os.fsdecode(b"\xff\xfe latin-1 \xe9"), "\u65e5\u672c\u8a9e", "a" * 200, ".hidden", "%s%n{}", "..x")
SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".WAV", ".txt", "")


def _valid_name(name: str) -> str:
    """``name`` as a file name can be: no ``/`` or NUL, at most 200 bytes, not ``.`` or ``..``."""
    name = os.fsdecode(os.fsencode(name.replace("/", "_").replace("\x00", "_"))[:200])
    return f"x{name}" if name in ("", ".", "..") else name


def names():
    """A hypothesis strategy: a text, often one of :data:`ODD_NAMES` (genres, artists, tags)."""
    from hypothesis import strategies as st

    return st.one_of(st.sampled_from(ODD_NAMES), st.text(max_size=30))


def utf8(text: str) -> str:
    """``text`` as UTF-8 can carry it (a URL, an index row): bytes that are not UTF-8 become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def file_names():
    """A hypothesis strategy: a file name (see :func:`_valid_name`), often hostile, with an audio suffix or not."""
    from hypothesis import strategies as st

    return st.tuples(names(), st.sampled_from(SUFFIXES)).map(lambda a: _valid_name(a[0] + a[1]))


def _tagged(data: bytes, suffix: str, tags: dict[str, str]) -> bytes:
    """``data`` (an MP3, FLAC or Ogg seed) carrying ``tags`` written by mutagen; as it was where mutagen cannot."""
    import mutagen

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"seed{suffix}"
        path.write_bytes(data)
        try:
            f = mutagen.File(path, easy=True)
            if f.tags is None:
                f.add_tags()
            for key, value in tags.items():
                f[key] = value
            f.save()
        except Exception:  # noqa: BLE001 - the tag writer's limits, not genrify's
            return data
        return path.read_bytes()


def song_files(seeds: dict[str, bytes]):
    """A hypothesis strategy: 1-6 ``(name, bytes)`` with distinct names: seeds as written, mutated, carrying
    drawn tags (title, artist, album, genre), or random bytes."""
    from hypothesis import strategies as st

    suffix = {"mp3": ".mp3", "flac": ".flac", "ogg": ".ogg"}
    tags = st.dictionaries(st.sampled_from(["title", "artist", "album", "genre"]), names(), min_size=1)
    contents = st.one_of(st.sampled_from(sorted(seeds)).map(seeds.get), mutated_files(seeds),
                         st.tuples(st.sampled_from(sorted(suffix)), tags).map(
                             lambda a: _tagged(seeds[a[0]], suffix[a[0]], a[1])),
                         st.binary(max_size=4096))
    return st.lists(st.tuples(file_names(), contents), min_size=1, max_size=6, unique_by=lambda f: f[0])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def files_record(files) -> dict:
    """``(name, bytes)`` pairs as JSON: both in base64 (a name may hold bytes that are not UTF-8)."""
    return {"files": [{"name": _b64(os.fsencode(n)), "data": _b64(d)} for n, d in files]}


def files_from_record(record: dict) -> list[tuple[str, bytes]]:
    """The inverse of :func:`files_record`."""
    return [(os.fsdecode(base64.b64decode(f["name"])), base64.b64decode(f["data"])) for f in record["files"]]


def write_files(folder: Path, files) -> Path:
    """Write ``(name, bytes)`` pairs into ``folder`` (made); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        (folder / name).write_bytes(data)
    return folder


def private_env(home: Path) -> dict[str, str]:
    """The environment of a genrify command that must not touch the user's cache, data or index."""
    src = str(REPO / "src")
    return {**os.environ, "GENRIFY_CACHE_DIR": str(home / "cache"), "GENRIFY_DATA_DIR": str(home / "data"),
            "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])), "PYTHONUNBUFFERED": "1"}


def run_command(args, *, env: dict, timeout: float) -> tuple[str, str]:
    """``python -m genrify ARGS``: ``("ok" | "error", "")`` for exit status 0 | 1 without a traceback;
    ``("crash", why)`` otherwise; ``("hang", why)`` when it has not ended within ``timeout`` s (it and its
    children are killed)."""
    label = "genrify " + " ".join(a for a in args[:2] if isinstance(a, str))  # the command, not its paths
    proc = subprocess.Popen([sys.executable, "-m", "genrify", *map(os.fspath, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "hang", f"{label}: no exit within {timeout:g} s"
    text = (out + err).decode("utf-8", "replace")
    if "Traceback" in text or proc.returncode not in (0, 1):
        return "crash", f"{label}: exit {proc.returncode}:\n{text[-2000:]}"
    return ("ok" if proc.returncode == 0 else "error"), ""


def command_for(target: str, case: Path, model: Path) -> list:
    """The command line of ``tag`` (a dry run into a private index) or ``scan`` over ``case/music``."""
    if target == "tag":
        return ["tag", case / "music", "--index", case / "results.sqlite", "--model", model, "--workers", "1"]
    return ["library", "scan", case / "music", "--db", case / "library.sqlite"]


def run_folder(target: str, files, *, model: Path, work: Path, hang_s: float) -> tuple[str, str]:
    """Write ``files`` into a fresh folder under ``work`` and run the ``tag`` or ``scan`` command over it
    (see :func:`run_command`); the folder is removed after."""
    case = Path(tempfile.mkdtemp(dir=work))
    try:
        write_files(case / "music", files)
        return run_command(command_for(target, case, model), env=private_env(case), timeout=hang_s + 60)
    finally:
        shutil.rmtree(case, ignore_errors=True)


def fuzz_command(target: str, model: Path, seeds: dict[str, bytes], seconds: float, hang_s: float,
                 findings: Findings, *, work: Path) -> int:
    """The ``tag`` or ``scan`` target: each drawn folder through the command, in a process of its own."""

    def check(files):
        kind, why = run_folder(target, files, model=model, work=work, hang_s=hang_s)
        findings.outcome(f"{target}-{kind}")
        if kind in ("crash", "hang"):
            findings.found(target, json.dumps(files_record(files)).encode(), f"{kind}: {why}", suffix=".json")

    return _time_boxed(song_files(seeds), seconds, check)


def serve(*args) -> object:
    """A real ``genrify serve ARGS`` on 127.0.0.1 (``--scan off``, private cache and data folders, errors
    logged): the benchmarks' server (benchmarks/bench_web_abuse.py), as a context manager."""
    from bench_web_abuse import Server

    return Server(*map(os.fspath, args), "--log-level", "warning")


def server_log(server) -> str:
    """What the server :func:`serve` started has printed so far."""
    return (server.dir / "server.log").read_text(errors="replace")


def judge_answer(r, *, api: bool, expect: str | None = "application/json") -> str | None:
    """Why the answer ``r`` is a finding (a 5xx; from an API, an error that is not JSON, or a 200 whose
    content type does not start with ``expect``, when given), or ``None``."""
    kind = r.headers.get("content-type", "")
    if r.status_code >= 500:
        return f"HTTP {r.status_code}: {r.text[:300]}"
    if api and r.status_code >= 400 and not kind.startswith("application/json"):
        return f"HTTP {r.status_code} answered {kind or 'no content type'}: {r.text[:200]}"
    if api and expect and r.status_code == 200 and not kind.startswith(expect):
        return f"HTTP 200 answered {kind or 'no content type'} where {expect} was due"
    return None


def _json_values():
    from hypothesis import strategies as st

    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), names())
    return st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(names(), inner, max_size=4)), max_leaves=16)


def index_rows(seeds: dict[str, bytes]):
    """A hypothesis strategy: 1-3 rows for the results index of ``genrify tag``: ``(file name, inside the
    library, file bytes or None, analysis, tags)``. An analysis is shaped as genrify writes one, with
    drawn genres, probabilities (NaN, infinities, huge), verdicts, styles and ragged windows, or is any JSON."""
    from hypothesis import strategies as st

    floats = st.one_of(st.floats(), st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e308]))
    styles = st.lists(st.one_of(st.tuples(names(), names(), floats).map(list), st.lists(names(), max_size=4)),
                      max_size=5)
    windows = st.fixed_dictionaries({"starts": st.lists(floats, max_size=8),
                                     "probabilities": st.lists(st.one_of(floats, st.lists(floats, max_size=6)),
                                                               max_size=8),
                                     "labels": st.lists(names(), max_size=6)})
    shaped = st.fixed_dictionaries(
        {"genres": st.dictionaries(names(), floats, max_size=6),
         "verdict": st.one_of(st.sampled_from(["genre", "unsure", "not_music"]), names()),
         "duration": floats, "details": st.fixed_dictionaries({"styles": styles}), "windows": windows})
    analysis = st.one_of(shaped, shaped, _json_values())
    tags = st.dictionaries(names(), st.one_of(names(), st.lists(names(), max_size=3)), max_size=5)
    contents = st.one_of(st.none(), st.sampled_from(sorted(seeds)).map(seeds.get), st.binary(max_size=2048))
    return st.lists(st.tuples(file_names(), st.booleans(), contents, analysis, tags), min_size=1, max_size=3)


def library_queries():
    """A hypothesis strategy: query parameters of ``/api/library``, valid and not."""
    from hypothesis import strategies as st

    sorts = ("song", "name", "artist", "title", "album", "genre", "style", "certainty", "verdict", "nope")
    return st.fixed_dictionaries({}, optional={
        "q": st.text(max_size=220), "genre": st.one_of(names().map(utf8), st.text(max_size=120)),
        "verdict": st.sampled_from(["", "genre", "unsure", "not_music", "x"]), "sort": st.sampled_from(sorts),
        "order": st.sampled_from(["asc", "desc", "up"]), "offset": st.integers(-5, 10**8),
        "limit": st.integers(-1, 300)})


def add_rows(index_path: Path, root: Path, outside: Path, rows, *, salt: str) -> list[int]:
    """Add drawn rows to the results index at ``index_path`` (their files written where they have bytes);
    returns their ids."""
    from genrify.tagging.index import ResultsIndex

    ids = []
    with ResultsIndex(index_path) as index:
        for i, (name, inside, data, analysis, tags) in enumerate(rows):
            # The index keeps paths as UTF-8 text (the tag and scan targets give names that are not UTF-8
            # to the commands themselves).
            name = utf8(name)
            path = (root if inside else outside) / name
            if data is not None:
                path.write_bytes(data)
            digest = hashlib.sha256(f"{salt}/{i}/{name}".encode("utf-8", "surrogateescape")).hexdigest()
            ids.append(index.add_song(path=str(path), digest=digest, size=len(data or b""), mtime_ns=0,
                                      model="fuzz", analysis=analysis, tags=tags))
    return ids


def library_record(rows, query) -> dict:
    """A ``library`` input as JSON (bytes and names in base64; NaN and infinities as JSON's extensions)."""
    return {"rows": [{"name": _b64(os.fsencode(n)), "inside": inside, "data": None if d is None else _b64(d),
                      "analysis": analysis, "tags": tags} for n, inside, d, analysis, tags in rows], "query": query}


def rows_from_record(record: dict) -> list:
    """The inverse of :func:`library_record`'s rows."""
    return [(os.fsdecode(base64.b64decode(r["name"])), r["inside"],
             None if r["data"] is None else base64.b64decode(r["data"]), r["analysis"], r["tags"])
            for r in record["rows"]]


def ask_library(client, ids: list[int], query: dict) -> list[str]:
    """Ask the /library routes about ``ids`` with ``query``; returns the findings (one line each)."""
    import httpx

    # A file's audio is served as its name says (or as bytes): any 200 is fine there. Findings name the
    # route, not the row's id, so that the same failure on other rows counts as one.
    asks = [("/api/library", None, query, True, "application/json"), ("/library", None, None, False, None)]
    asks += [(f"/api/library/{{id}}{part}", i, None, True, expect) for i in ids
             for part, expect in (("", "application/json"), ("/timeline", "image/png"), ("/audio", None))]
    found = []
    for route, song, params, api, expect in asks:
        try:
            why = judge_answer(client.get(route.format(id=song), params=params), api=api, expect=expect)
        except httpx.HTTPError as exc:  # a dropped connection: the server itself is checked by the caller
            why = f"connection: {type(exc).__name__}: {exc}"
        if why:
            found.append(f"GET {route}: {why}" + (f"\n  (query {params})" if params else ""))
    return found


class LibrarySite:
    """A library folder, a results index and a real ``genrify serve --index --library`` showing them, in a
    fresh folder under ``work``: :meth:`ask` adds rows and asks about them."""

    def __init__(self, *, model: Path, work: Path, song: bytes):
        self.home = Path(tempfile.mkdtemp(dir=work))
        self.root, self.outside = self.home / "library", self.home / "elsewhere"
        self.index = self.home / "results.sqlite"
        write_files(self.root, [("song.wav", song)])
        self.outside.mkdir()
        add_rows(self.index, self.root, self.outside, [("first.wav", True, song, {}, {})], salt="first")
        self.server = serve("--model", model, "--library", self.root, "--index", self.index)
        self.added = self.logged = 0

    def __enter__(self) -> LibrarySite:
        import httpx

        self.server.__enter__()
        self.client = httpx.Client(base_url=self.server.base, timeout=60)
        return self

    def ask(self, rows, query) -> list[str]:
        """Add ``rows`` to the index and ask the routes about them; the findings, one line each (a traceback
        the server logged meanwhile is one)."""
        import httpx

        self.added += 1
        try:
            found = ask_library(self.client, add_rows(self.index, self.root, self.outside, rows,
                                                      salt=str(self.added)), query)
        except httpx.HTTPError as exc:
            if self.server.proc.poll() is not None:
                raise RuntimeError(f"the server died:\n{server_log(self.server)[-3000:]}") from None
            found = [f"connection: {type(exc).__name__}: {exc}"]
        log = server_log(self.server)
        new, self.logged = log[self.logged:], len(log)
        return found + (["server log holds a traceback, ending:\n" + new[-1200:]] if "Traceback" in new else [])

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.__exit__()
        shutil.rmtree(self.home, ignore_errors=True)


def fuzz_library(model: Path, seeds: dict[str, bytes], seconds: float, findings: Findings, *, work: Path) -> int:
    """The ``library`` target: one real server; each input adds drawn index rows and asks about them."""
    from hypothesis import strategies as st

    with LibrarySite(model=model, work=work, song=seeds["wav16"]) as site:

        def check(item):
            rows, query = item
            found = site.ask(rows, query)
            findings.outcome("library-finding" if found else "library-ok")
            if found:
                findings.found("library", json.dumps(library_record(rows, query)).encode(), "\n".join(found),
                               suffix=".json")

        return _time_boxed(st.tuples(index_rows(seeds), library_queries()), seconds, check)


def audit_corpora(seeds: dict[str, bytes]):
    """A hypothesis strategy: ``(folders, edits)``: 2-3 genre folders (drawn names) of 1-3 generated files
    each (the clip in its five formats, so duplicates across genres, mutated or random bytes), and edits
    of the built index's rows ``(row, artist, title, duration)``."""
    from hypothesis import strategies as st

    contents = st.one_of(st.sampled_from(sorted(seeds)).map(seeds.get), st.sampled_from(sorted(seeds)).map(seeds.get),
                         mutated_files(seeds), st.binary(max_size=2048))
    folder = st.lists(st.tuples(file_names(), contents), min_size=1, max_size=3, unique_by=lambda f: f[0])
    genres = st.dictionaries(file_names(), folder, min_size=2, max_size=3)
    edits = st.lists(st.tuples(st.integers(0, 20), st.one_of(st.none(), names()), st.one_of(st.none(), names()),
                               st.one_of(st.none(), st.floats())), max_size=6)
    return st.tuples(genres, edits)


def edit_rows(index_path: Path, edits) -> None:
    """Apply drawn ``(row, artist, title, duration)`` edits to a dataset's track rows."""
    with sqlite3.connect(index_path) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM tracks ORDER BY id")]
        for row, artist, title, duration in edits:
            if ids:
                conn.execute("UPDATE tracks SET artist = ?, title = ?, duration = ? WHERE id = ?",
                             (artist and utf8(artist), title and utf8(title), duration, ids[row % len(ids)]))


def audit_record(folders, edits, decisions) -> dict:
    """An ``audit`` input as JSON: each genre folder's files (see :func:`files_record`), the row edits and
    the decisions posted."""
    return {"folders": {_b64(os.fsencode(g)): files_record(files) for g, files in folders.items()},
            "edits": [list(e) for e in edits], "decisions": list(decisions)}


def ask_audit(client, decisions: list[str]) -> list[str]:
    """Ask the /audit routes: the audit, the page, each finding's audio, and ``decisions`` on each finding
    and on keys that are not findings; returns the findings (one line each)."""
    found = []
    r = client.get("/api/audit", timeout=600)
    if why := judge_answer(r, api=True):
        return [f"GET /api/audit: {why}"]
    findings = r.json().get("findings", []) if r.status_code == 200 else []
    asks = [("GET", "/audit", None, False), ("GET", "/api/audit/audio/99/0", None, True)]
    for i, f in enumerate(findings):
        asks += [("GET", f"/api/audit/audio/{i}/{j}", None, True) for j in range(len(f.get("tracks", [])) + 1)]
        asks += [("POST", f"/api/audit/{f['key']}", {"decision": d}, True) for d in decisions]
    asks += [("POST", "/api/audit/not-a-finding", {"decision": d}, True) for d in decisions]
    for method, url, body, api in asks:
        answer = client.request(method, url, json=body)
        if why := judge_answer(answer, api=api, expect=None if "/audio/" in url else "application/json"):
            found.append(f"{method} {url}: {why}")
    return found


def run_audit(folders, edits, decisions, *, model: Path, work: Path, hang_s: float) -> list[str]:
    """Build ``folders`` into a dataset, apply ``edits`` to its rows, and ask a real ``genrify serve --audit``
    about it (:func:`ask_audit`); the findings, one line each. Everything lives in a fresh folder under
    ``work``, removed after."""
    import httpx

    case = Path(tempfile.mkdtemp(dir=work))
    try:
        for genre, files in folders.items():
            write_files(case / "corpus" / genre, files)
        kind, why = run_command(["dataset", "build", case / "corpus", "--out", case / "ds", "--workers", "1"],
                                env=private_env(case), timeout=hang_s + 120)
        if kind in ("crash", "hang"):
            return [why]
        if not (case / "ds" / "index.sqlite").is_file():
            return []  # nothing was built (a one-line error): nothing to audit
        edit_rows(case / "ds" / "index.sqlite", edits)
        (case / "empty").mkdir()
        found = []
        with serve("--model", model, "--library", case / "empty", "--audit", case / "ds") as server, \
                httpx.Client(base_url=server.base, timeout=120) as client:
            try:
                found += ask_audit(client, decisions)
            except httpx.HTTPError as exc:
                found.append(f"connection: {type(exc).__name__}: {exc}")
            log = server_log(server)
        if "Traceback" in log:
            found.append("server log holds a traceback:\n" + log[-3000:])
        return found
    finally:
        shutil.rmtree(case, ignore_errors=True)


def fuzz_audit(seeds: dict[str, bytes], seconds: float, hang_s: float, findings: Findings, *, work: Path,
               model: Path) -> int:
    """The ``audit`` target: each drawn corpus built into a dataset, its rows edited, audited by a real server."""
    from hypothesis import strategies as st

    def check(item):
        (folders, edits), decisions = item
        found = run_audit(folders, edits, decisions, model=model, work=work, hang_s=hang_s)
        findings.outcome("audit-finding" if found else "audit-ok")
        if found:
            findings.found("audit", json.dumps(audit_record(folders, edits, decisions)).encode(), "\n".join(found),
                           suffix=".json")

    decisions = st.lists(st.one_of(st.sampled_from(["accept", "dismiss", "undecided"]), names()), min_size=1,
                         max_size=3)
    return _time_boxed(st.tuples(audit_corpora(seeds), decisions), seconds, check)


def replay(path: Path, *, model: Path, work: Path, hang_s: float = 30.0) -> list[str]:
    """Run a saved ``tag``, ``scan``, ``library`` or ``audit`` finding (``<target>-<sha>.json``) again;
    returns what is still wrong (empty: it now passes)."""
    target = path.name.split("-", 1)[0]
    record = json.loads(path.read_text())
    if target in ("tag", "scan"):
        kind, why = run_folder(target, files_from_record(record), model=model, work=work, hang_s=hang_s)
        return [why] if kind in ("crash", "hang") else []
    if target == "library":
        with LibrarySite(model=model, work=work, song=make_seeds()["wav16"]) as site:
            return site.ask(rows_from_record(record), record["query"])
    if target == "audit":
        folders = {os.fsdecode(base64.b64decode(g)): files_from_record(f) for g, f in record["folders"].items()}
        return run_audit(folders, [tuple(e) for e in record["edits"]], record["decisions"], model=model, work=work,
                         hang_s=hang_s)
    raise ValueError(f"{path.name}: not a finding of the tag, scan, library or audit target")


#: The targets, in the order they run; ``both`` (pipeline and upload) and ``all`` name several.
TARGETS = ("pipeline", "upload", "tag", "scan", "library", "audit")
GROUPS = {"both": ("pipeline", "upload"), "all": TARGETS}


def parse_targets(text: str) -> tuple[str, ...]:
    """``--target``'s value (comma-separated targets or groups) → targets in :data:`TARGETS` order."""
    chosen = set()
    for word in filter(None, (w.strip() for w in text.split(","))):
        if word not in TARGETS and word not in GROUPS:
            raise argparse.ArgumentTypeError(f"unknown target {word!r}: expected {', '.join(TARGETS + tuple(GROUPS))}")
        chosen.update(GROUPS.get(word, (word,)))
    if not chosen:
        raise argparse.ArgumentTypeError("no target given")
    return tuple(t for t in TARGETS if t in chosen)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="total time budget (default 300)")
    ap.add_argument("--target", type=parse_targets, default=GROUPS["both"], metavar="LIST",
                    help=f"comma-separated: {', '.join(TARGETS)}, both (pipeline,upload: the default) or all")
    ap.add_argument("--hang", type=float, default=30.0, help="seconds before an input counts as a hang")
    ap.add_argument("--model", help="model file (default: as bench_serve.py)")
    ap.add_argument("--no-save", action="store_true", help="report findings without writing them to tests/")
    ap.add_argument("--smoke", action="store_true", help="about 20 s (CI)")
    ap.add_argument("--seed", type=int, help="draw the inputs of the run printed with this seed (default: a new one)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seconds = 20.0
    global SEED
    SEED = args.seed if args.seed is not None else secrets.randbelow(2**32)
    import warnings

    warnings.filterwarnings("ignore", message="Generating overly large repr")
    from bench_serve import pick_model

    model, which = pick_model(args.model)
    machine_header("fuzzing decode → features → predict, the upload endpoint, tag, library scan, /library, /audit",
                   librosa=False, extra={"model": which, "seconds": args.seconds, "target": ",".join(args.target),
                                         "seed": f"{SEED} (--seed {SEED} draws these inputs again)",
                                         "load": f"{os.getloadavg()[0]:.2f} (1-min load average before the run)"})
    seeds = make_seeds()
    print("seeds: " + ", ".join(f"{k} {len(v)} B" for k, v in seeds.items()))
    findings = Findings(save=not args.no_save)
    share = args.seconds / len(args.target)
    with tempfile.TemporaryDirectory(prefix="genrify-fuzz-") as tmp:
        work = Path(tmp)
        runs = {"pipeline": lambda: fuzz_pipeline(model, seeds, share, args.hang, findings),
                "upload": lambda: fuzz_upload(model, seeds, share, findings),
                "tag": lambda: fuzz_command("tag", model, seeds, share, args.hang, findings, work=work),
                "scan": lambda: fuzz_command("scan", model, seeds, share, args.hang, findings, work=work),
                "library": lambda: fuzz_library(model, seeds, share, findings, work=work),
                "audit": lambda: fuzz_audit(seeds, share, args.hang, findings, work=work, model=model)}
        for target in args.target:
            t0 = time.monotonic()
            n = runs[target]()
            print(f"{target}: {n} inputs in {time.monotonic() - t0:.0f} s")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(findings.outcomes.items())))
    if not findings.count:
        print("findings: none (no crash, hang or 5xx)")
        return 0
    print(f"findings: {sum(findings.count.values())} inputs, {len(findings.count)} distinct failures")
    for key, n in findings.count.items():
        print(f"--- x{n}: {findings.examples[key][:1500]}")
    for p in findings.saved:
        print(f"saved {p.relative_to(REPO)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
