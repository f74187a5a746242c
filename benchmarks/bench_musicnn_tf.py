"""musicnn 0.1.0 under TensorFlow vs genrify's PyTorch port: seconds per 30 s clip, same machine, same run.

    .venv/bin/python benchmarks/bench_musicnn_tf.py            # 5 clips x 3 repetitions, 1 and 2 threads
    .venv/bin/python benchmarks/bench_musicnn_tf.py --smoke    # 1 clip, 1 repetition; no TF venv: TF side skipped

TensorFlow is never imported by this process and is never a genrify
dependency. The TF side runs in a throwaway virtual environment outside the
repository (``--tf-venv``, default /tmp/genrify-musicnn-tf), created on first
use (not in ``--smoke``) with ``tensorflow-cpu==2.15.1``, ``librosa==0.11.0``,
``numpy<2`` and ``musicnn==0.1.0 --no-deps`` (musicnn's own requirements pin
``numpy<1.17``, which does not install on Python 3.11). Its python runs a small
inline worker that answers one timing request per line on stdin, so the TF and
genrify measurements alternate clip by clip under the same machine load.

Inputs: 30 s WAV clips (22.05 kHz, 16 bit), each two real gtzan-mini clips of
one genre joined and cut to 30 s, written to a temporary folder (deleted at the
end). Timed per clip, decode included on both sides, in wall time and in CPU
time of the process that decodes: the TF side decodes with librosa in its own
process, and genrify, which decodes in a disposable worker process by default,
is made to decode in this process (``GENRIFY_DECODE_IN_PROCESS=1``, set by
``_common.decode_in_process``, as ``bench_engines.py`` does), so that both CPU
figures count the decode:

* ``TF extractor() as shipped``: ``musicnn.extractor.extractor(path,
  model='MSD_musicnn', input_length=3, input_overlap=False)``; it rebuilds the
  graph and restores the checkpoint on every call, and runs one patch per
  ``session.run`` (its ``BATCH_SIZE`` is 1);
* ``TF session kept open``: the same graph and checkpoint, built once as
  ``extractor()`` does; per clip, ``musicnn.extractor.batch_data`` (librosa load
  + mel spectrogram + patches) and one ``session.run`` on all patches;
* ``genrify full``: ``genrify.audio.load_audio(path, sr=16000)`` (in this
  process) + ``MusicnnEmbedder().embed`` (every patch, float32);
* ``genrify fast``: the same with ``MusicnnEmbedder(max_patches=3, fast=True)``;
* ``genrify int8``: full mode with the timbral convolutions in int8
  (``model.set_precision("int8")``, forced so it is measured on every machine;
  genrify itself uses int8 only where ``genrify.models.quantize`` measured it
  faster, and the header prints that decision).

Threads: TF intra/inter-op = N (``tf.config.threading`` and the ``ConfigProto``
of every session, including the one ``extractor()`` opens); genrify
``torch.set_num_threads(N)``; BLAS/OpenMP pools limited to N on both sides;
for N in ``--threads`` (default 1 and 2). Wall clock and the CPU time of the
measuring process (all its threads) are both reported: on a shared machine the
CPU time is the steadier figure. On a machine busier than its cores, run with
``OMP_WAIT_POLICY=PASSIVE``: torch's OpenMP threads otherwise spin while waiting
for each other, and 2 threads take several times longer than 1 (measured here).

Sanity check: the largest absolute difference between TF's taggram (session
mode, all patches) and genrify's full-mode taggram on the first clip, both from
genrify's own decode and from the 16 kHz audio librosa gave TF (isolating the
resampler from the network).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

DEFAULT_TF_VENV = Path("/tmp/genrify-musicnn-tf")
TF_REQUIREMENTS = ["tensorflow-cpu==2.15.1", "librosa==0.11.0", "numpy<2"]
MUSICNN_REQUIREMENT = "musicnn==0.1.0"
GENRES = ["blues", "classical", "jazz", "metal", "pop", "country", "disco", "hiphop", "reggae", "rock"]
CLIP_SECONDS = 30.0

# The TF worker: started as `python -c TF_WORKER THREADS` with the TF venv's python.
# Requests (one JSON object per line on stdin) and replies (one per line on the
# original stdout); everything else, musicnn's prints included, goes to stderr.
TF_WORKER = r'''
import contextlib, json, os, sys, time
proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr
n = int(sys.argv[1])
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(n)
tf.config.threading.set_inter_op_parallelism_threads(n)
_Session = tf.compat.v1.Session
def Session(*args, config=None, **kwargs):
    if config is None:
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=n, inter_op_parallelism_threads=n)
    return _Session(*args, config=config, **kwargs)
tf.compat.v1.Session = Session  # extractor() opens its session through this name
import librosa
from importlib.metadata import version
from musicnn import configuration as config, extractor as E, models

t0, c0 = time.perf_counter(), time.process_time()
n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
tf.compat.v1.reset_default_graph()
with tf.name_scope("model"):
    x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
    is_training = tf.compat.v1.placeholder(tf.bool)
    y, _, _, _, _, _, mean_pool, max_pool, _ = models.define_model(x, is_training, "MSD_musicnn", len(config.MSD_LABELS))
    taggram = tf.nn.sigmoid(y)
sess = Session()
sess.run(tf.compat.v1.global_variables_initializer())
tf.compat.v1.train.Saver().restore(sess, os.path.dirname(E.__file__) + "/MSD_musicnn/")
setup_wall, setup_cpu = time.perf_counter() - t0, time.process_time() - c0

def session_mode(path):
    batch, _ = E.batch_data(path, n_frames, n_frames)
    return sess.run([taggram, mean_pool, max_pool], feed_dict={x: batch, is_training: False})[0]

def shipped(path):
    return E.extractor(path, model="MSD_musicnn", input_length=3, input_overlap=False)[0]

proto.write(json.dumps({"ready": True, "setup_wall": setup_wall, "setup_cpu": setup_cpu, "versions": {
    "python": sys.version.split()[0], "tensorflow": tf.__version__, "musicnn": version("musicnn"),
    "librosa": librosa.__version__, "numpy": np.__version__},
    "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
    "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}) + "\n")
for line in sys.stdin:
    req = json.loads(line)
    fn = session_mode if req["op"] == "session" else shipped
    t0, c0 = time.perf_counter(), time.process_time()
    tags = fn(req["path"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if req.get("save"):
        audio, _ = librosa.load(req["path"], sr=config.SR)
        np.savez(req["save"], taggram=np.asarray(tags, np.float32), audio_16k=audio)
    proto.write(json.dumps({"wall": wall, "cpu": cpu, "patches": int(np.asarray(tags).shape[0])}) + "\n")
'''


# ---------------------------------------------------------------- TF environment

def tf_venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def tf_venv_problem(venv: Path) -> str | None:
    """``None`` when ``venv`` can run musicnn under TensorFlow 2.15, else what is missing."""
    py = tf_venv_python(venv)
    if not py.is_file():
        return f"no python at {py}"
    check = ("from importlib.metadata import version as v; import sys\n"
             "need = {'tensorflow-cpu': '2.15.', 'musicnn': '0.1.0', 'librosa': '0.11.', 'numpy': '1.'}\n"
             "bad = []\n"
             "for name, prefix in need.items():\n"
             "    try:\n"
             "        got = v(name)\n"
             "    except Exception:\n"
             "        got = None\n"
             "    if got is None or not got.startswith(prefix):\n"
             "        bad.append(f'{name} {got or \"missing\"} (need {prefix}*)')\n"
             "print('; '.join(bad)); sys.exit(1 if bad else 0)\n")
    r = subprocess.run([str(py), "-c", check], capture_output=True, text=True, timeout=120)
    return None if r.returncode == 0 else (r.stdout.strip() or r.stderr.strip()[-500:])


def ensure_tf_venv(venv: Path) -> None:
    """Create ``venv`` (or complete it) with TF 2.15.1 + musicnn 0.1.0; raises RuntimeError on failure."""
    if tf_venv_problem(venv) is None:
        return
    py = tf_venv_python(venv)
    steps = []
    if not py.is_file():
        steps.append([sys.executable, "-m", "venv", str(venv)])
    steps.append([str(py), "-m", "pip", "install", "--quiet", *TF_REQUIREMENTS])
    steps.append([str(py), "-m", "pip", "install", "--quiet", "--no-deps", MUSICNN_REQUIREMENT])
    for cmd in steps:
        print("setting up the TF venv: " + " ".join(cmd), flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed (exit {r.returncode}):\n{r.stderr.strip()[-2000:]}")
    problem = tf_venv_problem(venv)
    if problem:
        raise RuntimeError(f"TF venv {venv} still unusable after installing: {problem}")


class TFWorker:
    """The TF venv's python running :data:`TF_WORKER` with ``threads`` intra/inter-op threads."""

    def __init__(self, venv: Path, threads: int, log: Path):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                   OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        env.pop("PYTHONPATH", None)
        self.log_path = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen([str(tf_venv_python(venv)), "-c", TF_WORKER, str(threads)], cwd=log.parent,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, bufsize=1)
        self.info = self._reply()

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            self._log.flush()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"TF worker exited (code {self.proc.returncode}); its stderr ends with:\n{tail}")
        return json.loads(line)

    def run(self, op: str, path: Path, save: Path | None = None) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, "path": str(path), "save": str(save) if save else None}) + "\n")
        return self._reply()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ---------------------------------------------------------------- inputs

def make_clips(n: int, out: Path) -> list[Path]:
    """``n`` 30 s WAVs, each real gtzan-mini clips of one genre joined (then cut to 30 s)."""
    import numpy as np
    import soundfile as sf

    paths = []
    for genre in GENRES[:n]:
        parts, total, sr = [], 0, None
        for src in sorted((C.GTZAN_MINI / genre).glob("*.wav")):
            y, file_sr = sf.read(src, dtype="int16", always_2d=True)
            if sr not in (None, file_sr):
                continue
            sr = file_sr
            parts.append(y.mean(axis=1).astype(np.int16))
            total += len(parts[-1])
            if total >= CLIP_SECONDS * sr:
                break
        if not parts or total < CLIP_SECONDS * sr:
            raise SystemExit(f"not enough audio for a 30 s clip under {C.GTZAN_MINI / genre}")
        path = out / f"{genre}-30s.wav"
        sf.write(path, np.concatenate(parts)[: int(CLIP_SECONDS * sr)], sr, subtype="PCM_16")
        paths.append(path)
    return paths


# ---------------------------------------------------------------- report

def med(xs: list[float]) -> float:
    return statistics.median(xs)


def loadavg() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tf-venv", type=Path, default=DEFAULT_TF_VENV,
                    help=f"virtual environment for the TF side (default {DEFAULT_TF_VENV}; created if missing)")
    ap.add_argument("--clips", type=int, default=5, help="30 s clips (default 5)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per clip (default 3)")
    ap.add_argument("--threads", default="1,2", help="thread counts to measure, comma-separated (default 1,2)")
    ap.add_argument("--no-tf", action="store_true", help="genrify side only")
    ap.add_argument("--smoke", action="store_true",
                    help="1 clip, 1 repetition, 1 thread; TF side only if its venv is already there")
    args = ap.parse_args(argv)
    if args.smoke:
        args.clips, args.reps, args.threads = 1, 1, "1"
    threads = [int(t) for t in args.threads.split(",")]
    if not 1 <= args.clips <= len(GENRES) or args.reps < 1:
        ap.error(f"--clips must be 1..{len(GENRES)} and --reps >= 1")

    import numpy as np
    import torch

    C.decode_in_process()  # genrify's decode in this process, so its CPU time counts (librosa's does for TF)
    from genrify.audio import load_audio
    from genrify.models.embedder import MusicnnEmbedder
    from genrify.models.musicnn import bfloat16_is_fast
    from genrify.models.quantize import machine_precision

    tf_skip = "--no-tf" if args.no_tf else None
    if not tf_skip:
        problem = tf_venv_problem(args.tf_venv)
        if problem and args.smoke:
            tf_skip = (f"TF venv {args.tf_venv} not usable ({problem}); --smoke does not install TensorFlow. "
                       f"Run without --smoke (or pass --tf-venv) to measure musicnn under TensorFlow")
        elif problem:
            try:
                ensure_tf_venv(args.tf_venv)
            except (RuntimeError, OSError) as e:
                tf_skip = f"TensorFlow side could not be set up: {e}"

    C.machine_header("musicnn 0.1.0 (TensorFlow) vs genrify (PyTorch), MSD_musicnn, seconds per 30 s clip",
                     extra={"bfloat16 native (genrify fast)": bfloat16_is_fast(),
                            "precision decision (measured, cached)": machine_precision().describe(),
                            "genrify's decode": "in this process (GENRIFY_DECODE_IN_PROCESS=1): its CPU time "
                                                "counts, as librosa's does in the TF worker's",
                            "load average at start (1/5/15 min)": loadavg()})
    if tf_skip:
        print(f"SKIPPING the TensorFlow side: {tf_skip}")

    tmp = Path(tempfile.mkdtemp(prefix="genrify-musicnn-tf-"))
    try:
        clips = make_clips(args.clips, tmp)
        print(f"{len(clips)} clip(s) of 30 s (two gtzan-mini clips of one genre joined) in {tmp}; "
              f"{args.reps} repetition(s) each; threads {threads}")
        t0 = C.clock()
        full, fast = MusicnnEmbedder(), MusicnnEmbedder(max_patches=3, fast=True)
        int8 = MusicnnEmbedder()
        int8.model.set_precision("int8")
        genrify_setup = C.clock() - t0

        def genrify_run(emb, path):
            y, _ = load_audio(path, sr=16000)
            return emb.embed(y)

        wall: dict[tuple[int, str], list[float]] = {}
        cpu: dict[tuple[int, str], list[float]] = {}
        info: dict[int, dict] = {}
        loads: dict[int, tuple[str, str]] = {}
        sanity: dict[str, float] = {}
        for n in threads:
            limiter = C.limit_threads(n)  # noqa: F841 (held for this thread count)
            worker = None
            if not tf_skip:
                try:
                    worker = TFWorker(args.tf_venv, n, tmp / f"tf-worker-{n}.log")
                    info[n] = worker.info
                except (RuntimeError, OSError) as e:
                    tf_skip = f"TF worker failed: {e}"
                    print(f"SKIPPING the TensorFlow side: {tf_skip}")
            runs = {"genrify full": lambda p: genrify_run(full, p), "genrify fast": lambda p: genrify_run(fast, p),
                    "genrify int8": lambda p: genrify_run(int8, p)}
            if worker:
                runs["TF session kept open"] = lambda p: worker.run("session", p)
                runs["TF extractor() as shipped"] = lambda p: worker.run("shipped", p)
            try:
                for fn in runs.values():  # warm-up (first-call kernel creation), not timed
                    fn(clips[0])
                load_before = loadavg()
                for rep in range(args.reps):
                    for path in clips:
                        for name, fn in runs.items():
                            t0, c0 = C.clock(), time.process_time()
                            out = fn(path)
                            if isinstance(out, dict):  # TF: its own process's times
                                w, c = out["wall"], out["cpu"]
                                assert out["patches"] == 10, out
                            else:
                                w, c = C.clock() - t0, time.process_time() - c0
                            wall.setdefault((n, name), []).append(w)
                            cpu.setdefault((n, name), []).append(c)
                loads[n] = (load_before, loadavg())
                if worker and n == threads[0]:
                    ref = tmp / "tf-taggram.npz"
                    worker.run("session", clips[0], save=ref)
                    d = np.load(ref)
                    shipped_ref = tmp / "tf-taggram-shipped.npz"
                    worker.run("shipped", clips[0], save=shipped_ref)
                    ours = genrify_run(full, clips[0]).taggram
                    sanity["genrify int8 vs genrify full"] = float(np.abs(genrify_run(int8, clips[0]).taggram
                                                                          - ours).max())
                    ours_same_audio = full.embed(d["audio_16k"].astype(np.float32)).taggram
                    sanity |= {
                        "genrify full (its own decode) vs TF session": float(np.abs(ours - d["taggram"]).max()),
                        "genrify full on librosa's 16 kHz audio vs TF session":
                            float(np.abs(ours_same_audio - d["taggram"]).max()),
                        "TF extractor() vs TF session": float(np.abs(np.load(shipped_ref)["taggram"]
                                                                      - d["taggram"]).max()),
                    }
            finally:
                if worker:
                    worker.close()

        # ---- report
        print(f"\ngenrify: both embedders built in {genrify_setup:.2f} s (once per process)")
        for n, i in info.items():
            print(f"TF worker, {n} thread(s): intra_op={i['intra_op']} inter_op={i['inter_op']}; graph + checkpoint "
                  f"once: {i['setup_wall']:.2f} s wall; versions " +
                  ", ".join(f"{k} {v}" for k, v in i["versions"].items()))
        names = list(dict.fromkeys(name for _, name in wall))
        print("\nseconds per 30 s clip (decode included); median over clips x repetitions, (min–max), "
              "and CPU time of the measuring process, decode included on both sides (median, min–max):")
        print("| threads | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for n in threads:
            cells = []
            for name in names:
                w, c = wall.get((n, name)), cpu.get((n, name))
                cells.append(f"{med(w):.3f} ({min(w):.3f}–{max(w):.3f}; cpu {med(c):.3f}, "
                             f"{min(c):.3f}–{max(c):.3f})" if w else "—")
            print(f"| {n} | " + " | ".join(cells) + " |")
            print(f"  load average (1/5/15 min) before / after the timed loop: {loads[n][0]} / {loads[n][1]}")
        pairs = [("TF session kept open", "genrify full"), ("TF extractor() as shipped", "genrify full"),
                 ("TF session kept open", "genrify fast"), ("TF extractor() as shipped", "genrify fast"),
                 ("TF session kept open", "genrify int8"), ("genrify full", "genrify int8")]
        if not tf_skip:
            print("\nratios (TF time / genrify time; > 1: genrify faster), median wall | median CPU:")
            for n in threads:
                for a, b in pairs:
                    print(f"  {n} thread(s): {a} / {b}: {med(wall[n, a]) / med(wall[n, b]):6.1f}x | "
                          f"{med(cpu[n, a]) / med(cpu[n, b]):6.1f}x")
            print(f"\nsanity, max |taggram difference| on {clips[0].name} (all 10 patches, full mode):")
            for k, v in sanity.items():
                print(f"  {k}: {v:.2e}")
        print(f"\nload average at end (1/5/15 min): {loadavg()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
