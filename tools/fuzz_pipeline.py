"""Fuzzing: mutated audio files through decode → features → predict, and through a real server's upload.

    python tools/fuzz_pipeline.py --seconds 300            # both targets, time split between them
    python tools/fuzz_pipeline.py --target pipeline --seconds 60
    python tools/fuzz_pipeline.py --smoke                  # ~20 s (CI)

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

Findings are saved (deduplicated by content) as
``tests/fuzz_regressions/<target>-<sha256[:16]>.bin``, which
``tests/test_reliability.py`` replays. Exit status 1 when something was found.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing as mp
import os
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

    def found(self, target: str, data: bytes, what: str) -> None:
        key = what.splitlines()[0][:200]
        self.count[key] = self.count.get(key, 0) + 1
        self.examples.setdefault(key, what)
        if len(data) > MAX_SAVED_BYTES:  # too big for tests/: kept outside the repository for a look
            OVERSIZED.mkdir(parents=True, exist_ok=True)
            path = OVERSIZED / f"{target}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
            path.write_bytes(data)
            if self.count[key] == 1:
                self.examples[key] += f"\n(too big for tests/: {len(data)} bytes, written to {path})"
            return
        if self.save and self.count[key] <= 3:  # a few inputs per distinct failure are enough
            REGRESSIONS.mkdir(parents=True, exist_ok=True)
            path = REGRESSIONS / f"{target}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
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


def _time_boxed(strategy, seconds: float, check) -> int:
    """Draw from ``strategy`` with hypothesis until ``seconds`` have passed; returns the number of inputs."""
    from hypothesis import HealthCheck, Phase, given, settings

    deadline = time.monotonic() + seconds
    n = [0]

    class _Done(Exception):
        pass

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="total time budget (default 300)")
    ap.add_argument("--target", choices=("pipeline", "upload", "both"), default="both")
    ap.add_argument("--hang", type=float, default=30.0, help="seconds before an input counts as a hang")
    ap.add_argument("--model", help="model file (default: as bench_serve.py)")
    ap.add_argument("--no-save", action="store_true", help="report findings without writing them to tests/")
    ap.add_argument("--smoke", action="store_true", help="about 20 s (CI)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seconds = 20.0
    import warnings

    warnings.filterwarnings("ignore", message="Generating overly large repr")
    from bench_serve import pick_model

    model, which = pick_model(args.model)
    machine_header("fuzzing decode → features → predict and the upload endpoint", librosa=False,
                   extra={"model": which, "seconds": args.seconds, "target": args.target,
                          "load": f"{os.getloadavg()[0]:.2f} (1-min load average before the run)"})
    seeds = make_seeds()
    print("seeds: " + ", ".join(f"{k} {len(v)} B" for k, v in seeds.items()))
    findings = Findings(save=not args.no_save)
    share = 0.5 if args.target == "both" else 1.0
    t0 = time.monotonic()
    if args.target in ("pipeline", "both"):
        n = fuzz_pipeline(model, seeds, args.seconds * share, args.hang, findings)
        print(f"pipeline: {n} inputs in {time.monotonic() - t0:.0f} s")
    if args.target in ("upload", "both"):
        t1 = time.monotonic()
        n = fuzz_upload(model, seeds, args.seconds * share, findings)
        print(f"upload: {n} inputs in {time.monotonic() - t1:.0f} s")
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
