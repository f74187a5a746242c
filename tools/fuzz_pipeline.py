"""Fuzzing: mutated audio files through decode → features → predict, and through a real server's upload.

    python tools/fuzz_pipeline.py --seconds 300            # both targets, time split between them
    python tools/fuzz_pipeline.py --target pipeline --seconds 60
    python tools/fuzz_pipeline.py --smoke                  # ~20 s (CI)

Inputs are drawn by hypothesis: a seed file generated on the spot (a 2 s synthetic
clip as 16-bit WAV, float WAV, FLAC, Ogg Vorbis or MP3; never real recordings) with
a few mutations applied (bit flips, overwritten header fields with extreme integers,
cuts, inserted or repeated blocks, random bytes), plus raw sample arrays with
extreme values at odd sample rates.

* ``pipeline``: each input goes to ``GenreClassifier.analyse`` in a worker
  process. A result or a :class:`genrify.errors.GenrifyError` is fine; any
  other exception, a dead worker (a crash in C) or an input that takes longer
  than ``--hang`` seconds is a finding.
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
import time
import traceback
from pathlib import Path

# The serving harness and machine facts are the benchmarks' (benchmarks/_common.py, bench_serve.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _common import REPO, machine_header  # noqa: E402

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


def mutated_files(seeds: dict[str, bytes]):
    """A hypothesis strategy: a seed with 1-6 mutations."""
    from hypothesis import strategies as st

    extreme = st.sampled_from([0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
    mutation = st.one_of(
        st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
        st.tuples(st.just("int"), st.floats(0, 0.05), extreme, st.sampled_from([1, 2, 4])),  # mostly headers
        st.tuples(st.just("cut"), st.floats(0, 1)),
        st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("repeat"), st.floats(0, 1), st.integers(1, 512), st.integers(1, 8)),
        st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 512)),
    )

    def apply(args):
        name, muts = args
        data = bytearray(seeds[name])
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

    return st.tuples(st.sampled_from(sorted(seeds)), st.lists(mutation, min_size=1, max_size=6)).map(apply)


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
                     st.sampled_from([1, 2, 8]), st.integers(0, 2**32 - 1)).map(build)


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

    def check_bytes(data: bytes):
        kind, what = runner.run(data)
        findings.outcome(kind)
        if kind in ("crash", "hang"):
            findings.found("pipeline", data, f"{kind}: {what}")

    def check_array(item):
        y, sr = item
        kind, what = runner.run((y, sr))
        findings.outcome(kind)
        if kind in ("crash", "hang"):
            findings.found("pipeline", _array_bytes(y, sr), f"{kind} (array, sr={sr}, shape={y.shape}): {what}")

    try:
        n = _time_boxed(mutated_files(seeds), seconds * 0.8, check_bytes)
        n += _time_boxed(sample_arrays(), seconds * 0.2, check_array)
    finally:
        runner.close()
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
