"""Helpers shared by the benchmark scripts: machine facts, thread limits, timing, memory, corpora.

Not part of the package. Every script prints the machine it ran on so that a
figure in docs/performance.md can be traced to the command that produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GTZAN_MINI = REPO.parent / "shared" / "data" / "gtzan-mini"
CACHE = Path(os.environ.get("GENRIFY_BENCH_CACHE", "/tmp/genrify-bench"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "benchmarks"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_header(title: str, *, extra: dict | None = None, librosa: bool = True) -> None:
    """Print what the figures below were measured on."""
    import numpy as np
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    if librosa:  # importing librosa costs memory: benchmarks that measure RSS skip it
        try:
            import librosa as lr

            versions["librosa"] = lr.__version__
        except ImportError:
            pass
    print(f"== {title}")
    print(f"machine: {os.cpu_count()} cores (nproc), {cpu_model()}; commit {git_commit()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    blas = os.environ.get("OPENBLAS_CORETYPE")
    print(f"OPENBLAS_CORETYPE={blas or '(unset)'}; command: {' '.join([Path(sys.executable).name] + sys.argv)}")
    for k, v in (extra or {}).items():
        print(f"{k}: {v}")


def limit_threads(n: int):
    """One (or ``n``) compute thread(s) for torch and for every BLAS/OpenMP pool numpy and librosa use.

    Returns the threadpoolctl limiter; keep a reference for as long as the limit should hold.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    return threadpool_limits(limits=n)


def blas_kernels() -> str:
    from threadpoolctl import threadpool_info

    return "; ".join(f"{i.get('internal_api')} {i.get('architecture', '')} threads={i.get('num_threads')}"
                     for i in threadpool_info())


def decode_in_process(env: dict | os._Environ | None = None):
    """``env`` (default: this process's ``os.environ``), set so that genrify decodes in the calling process.

    genrify decodes in a disposable worker process by default; the CPU time of the
    process that measures (``time.process_time``) then leaves the decode out,
    while a reference that decodes in its own process (librosa) counts it. With
    ``GENRIFY_DECODE_IN_PROCESS=1`` (read by ``load_audio`` on each call) both
    sides count their decode. Pass a child's environment dict to set it for a
    subprocess, or nothing to set it for this process; returns ``env``.
    """
    env = os.environ if env is None else env
    env["GENRIFY_DECODE_IN_PROCESS"] = "1"
    return env


def clock() -> float:
    return time.perf_counter()


def summary_ms(samples: list[float]) -> str:
    """``median (min–max) ms`` of durations given in seconds."""
    ms = [s * 1e3 for s in samples]
    return f"{statistics.median(ms):.1f} ms (min {min(ms):.1f}, max {max(ms):.1f}, n={len(ms)})"


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, …), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def tree_memory(pid: int | None = None) -> tuple[int, int]:
    """(RSS, PSS) in bytes of ``pid`` (default: this process) plus all its descendants, from /proc.

    RSS counts shared library pages once per process (an upper bound); PSS shares
    them out between the processes that map them.
    """
    pid = pid or os.getpid()
    rss = pss = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


class PeakSampler:
    """Calls ``sample()`` (a tuple of numbers) on entry, every ``interval`` s in a background thread, and
    on exit; ``.peaks`` holds the element-wise largest values seen."""

    def __init__(self, sample, *, interval: float = 0.5):
        import threading

        self.sample, self.interval, self.peaks = sample, interval, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _take(self):
        now = tuple(self.sample())
        self.peaks = now if self.peaks is None else tuple(map(max, self.peaks, now))

    def _run(self):
        while not self._stop.wait(self.interval):
            self._take()

    def __enter__(self):
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._take()


class PeakRSS(PeakSampler):
    """Peak :func:`tree_memory` of this process and its descendants; ``.peak`` (RSS) / ``.peak_pss``.

    Reading ``smaps_rollup`` takes each sampled process's memory-map lock, which
    stalls its allocations: sampled every 50 ms it cost the measured workers up to
    a quarter of their throughput, so the default is every 0.5 s.
    """

    def __init__(self, interval: float = 0.5):
        super().__init__(tree_memory, interval=interval)

    @property
    def peak(self) -> int:
        return self.peaks[0] if self.peaks else 0

    @property
    def peak_pss(self) -> int:
        return self.peaks[1] if self.peaks else 0


def synthetic_song(path: Path, *, style: str, seed: int, sr: int = 44100, duration: float = 30.0) -> Path:
    """Write one synthetic clip to ``path`` (format from the suffix: .mp3, .m4a, .wav) unless it exists."""
    if path.is_file():
        return path
    import soundfile as sf

    from genrify.sources.synthetic import _encode_aac, generate_clip

    path.parent.mkdir(parents=True, exist_ok=True)
    y = generate_clip(style, seed=seed, sr=sr, duration=duration)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    if path.suffix == ".m4a":
        _encode_aac(tmp, y, sr=sr)
    elif path.suffix == ".mp3":
        sf.write(tmp, y, sr, format="MP3", subtype="MPEG_LAYER_III")
    else:
        sf.write(tmp, y, sr, format="WAV", subtype="PCM_16")
    os.replace(tmp, path)
    return path


def train_demo_model(out: Path, *, name: str = "cnn", per_genre: int = 6, epochs: int = 2, sr: int = 44100) -> Path:
    """A small model trained on synthetic clips (speed does not depend on accuracy); cached at ``out``."""
    if out.is_file():
        return out
    import numpy as np

    from genrify.config import FeatureConfig, ModelConfig, RunConfig, TrainConfig
    from genrify.features import FeatureExtractor
    from genrify.models.modelfile import save_model_file
    from genrify.sources.synthetic import STYLES, generate_clip
    from genrify.train.nets import train_tracks

    fc = FeatureConfig(sr=sr)
    fe = FeatureExtractor(fc)
    images, y, groups = [], [], []
    for gi, style in enumerate(STYLES):
        for i in range(per_genre):
            images.append(fe.transform(generate_clip(style, seed=1000 * gi + i, sr=sr, duration=30.0)))
            y.append(gi)
            groups.append(f"{style}-{i}")
    config = RunConfig(features=fc, model=ModelConfig(name=name), train=TrainConfig(epochs=epochs, patience=epochs))
    mf, _, _ = train_tracks(images, np.array(y), groups, config=config, labels=list(STYLES))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model_file(out, mf)
    return out
