"""Reduced precision for musicnn's convolutions, used only where this machine runs it faster.

musicnn spends most of its time in matrix products (the timbral and temporal
convolutions, see :mod:`genrify.models.musicnn`). Two cheaper precisions exist:

* **bfloat16**: fast only with native support (AVX512-BF16, AMX). oneDNN's
  capability check also answers yes where it merely *emulates* bfloat16 (Intel
  Xeons with AVX-512 but no AVX512-BF16), and there it is several times slower
  than float32; on CPUs without AVX-512 the emulation is slower still.
* **int8**: weights quantised per output channel, activations per product
  (dynamic quantisation, 7-bit range so AVX2's 16-bit accumulation cannot
  saturate), computed by PyTorch's x86 quantised GEMM (FBGEMM / oneDNN).

So neither is trusted on a flag: :func:`machine_precision` times a chunk of the
timbral convolution in float32 (as the model runs it, through a frequency DFT),
bfloat16 and int8 once per machine
(a fraction of a second) and caches the timings in genrify's cache folder, keyed
by CPU model, CPU flags and torch version. :func:`decide` turns timings into the
decision and takes everything as arguments, so tests can play both kinds of CPU.

The cache file is never trusted for the choice itself: only its timings are read
(a small regular file, each figure a plausible time), the decision and its reason
are derived from them again with this machine's flags, and a reduced precision
they favour is confirmed by one quick measurement before it is used. So a forged
or stale cache can cost a measurement, never a slower path or a line of terminal
escapes.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads in the functions that use it: the NumPy engine reads the CPU flags here
    import torch

#: A reduced precision must take at most this fraction of float32's time to be
#: used: noise on a shared machine must not flip the decision back and forth.
MARGIN = 0.8
#: x86 flags of native bfloat16 arithmetic; ARM lists ``bf16`` under "Features".
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
#: The product one timbral block computes per chunk in a reduced precision: 16
#: frames × 59 frequency positions of the unfolded 7×38 input, times 204 filters.
BENCH_SHAPE = (16 * 59, 7 * 38, 204)
#: Version of the measurement: a change to it invalidates cached decisions.
BENCH_VERSION = 3
CACHE_NAME = "precision.json"
PRECISIONS = ("float32", "bfloat16", "int8")


@dataclass(frozen=True)
class MatmulTimings:
    """Median seconds of one :data:`BENCH_SHAPE` product on one thread; ``None`` where not measured."""

    float32: float
    bfloat16: float | None = None
    int8: float | None = None


@dataclass(frozen=True)
class PrecisionDecision:
    """Which reduced precisions this machine runs faster than float32, and why (``reason``, one line)."""

    bfloat16: bool
    int8: bool
    reason: str
    cpu: str = ""
    timings: MatmulTimings | None = None

    def describe(self) -> str:
        """One line for ``-v`` output: the CPU, the choice and the timings behind it (terminal-safe)."""
        from genrify.fileio import terminal_safe

        return terminal_safe(f"{self.cpu or 'unknown CPU'}: {self.reason}")


def read_cpuinfo(path: str | Path = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """The CPU model name and feature flags of the first processor; ``("", frozenset())`` where unreadable."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "", frozenset()
    return parse_cpuinfo(text)


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """``/proc/cpuinfo`` text → (model name, flags). Understands x86 ("flags") and ARM ("Features")."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def bfloat16_may_be_native(flags: frozenset[str]) -> bool:
    """False when the flags are known and name no native bfloat16 (then it is emulated: never faster).

    Unknown flags (empty set: no /proc/cpuinfo) leave the question to the measurement.
    """
    return not flags or bool(flags & NATIVE_BF16_FLAGS)


def decide(*, flags: frozenset[str], timings: MatmulTimings, cpu: str = "", margin: float = MARGIN) -> PrecisionDecision:
    """The precisions to use, from the CPU's flags and measured product times (pure; see the module docstring).

    bfloat16 needs a native-bfloat16 flag (when flags are known) *and* a measured
    time ≤ ``margin`` × float32; int8 needs a measured time ≤ ``margin`` × float32.
    """
    def ratio(t: float | None) -> float | None:
        return None if t is None else t / timings.float32

    bf16_ratio, int8_ratio = ratio(timings.bfloat16), ratio(timings.int8)
    native = bfloat16_may_be_native(flags)
    use_bf16 = native and bf16_ratio is not None and bf16_ratio <= margin
    use_int8 = int8_ratio is not None and int8_ratio <= margin
    parts = [f"float32 {timings.float32 * 1e3:.2f} ms"]
    if not native:
        parts.append("bfloat16 not native (no avx512_bf16/amx_bf16 flag)")
    elif bf16_ratio is not None:
        parts.append(f"bfloat16 {bf16_ratio:.2f}× float32 time")
    parts.append("int8 unavailable" if int8_ratio is None else f"int8 {int8_ratio:.2f}× float32 time")
    chosen = [name for name, used in (("bfloat16", use_bf16), ("int8", use_int8)) if used]
    faster = f"faster than float32 here: {' and '.join(chosen)}" if chosen else "float32 only"
    reason = f"{', '.join(parts)} → {faster} (threshold {margin:.2f}×)"
    return PrecisionDecision(bfloat16=use_bf16, int8=use_int8, reason=reason, cpu=cpu, timings=timings)


def resolve_precision(requested: str, decision: PrecisionDecision) -> str:
    """The precision to run for a ``requested`` one, given the machine's ``decision``.

    ``"float32"`` always runs; ``"bfloat16"`` and ``"int8"`` run only where the
    decision says they are faster, else float32; ``"fastest"`` takes bfloat16,
    then int8, then float32.

    Raises:
        ValueError: ``requested`` is none of these.
    """
    if requested not in (*PRECISIONS, "fastest"):
        raise ValueError(f"unknown precision {requested!r}: expected one of {', '.join(PRECISIONS)}, fastest")
    if requested in ("bfloat16", "fastest") and decision.bfloat16:
        return "bfloat16"
    if requested in ("int8", "fastest") and decision.int8:
        return "int8"
    return "float32"


def pack_int8(weight: torch.Tensor) -> object:
    """Quantise a ``(K, N)`` float32 weight per output column to int8 and pack it for :func:`int8_matmul`.

    The packed form belongs to the quantised engine active at packing time
    (``torch.backends.quantized.engine``; ``x86`` by default on x86).
    """
    import torch

    w = weight.t().contiguous().float()  # (N, K): one scale per output channel
    scales = (w.abs().amax(dim=1).clamp_min(1e-12) / 127.0).double()
    with warnings.catch_warnings():
        # torch ≥ 2.12 warns that quantised tensor types will be replaced; the
        # packed GEMM below is still the x86 int8 path torch ships in 2.13.
        warnings.simplefilter("ignore", UserWarning)
        qw = torch.quantize_per_channel(w, scales, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(qw, None)


def int8_matmul(x: torch.Tensor, packed: object) -> torch.Tensor:
    """``x (M, K)`` float32 times a weight packed by :func:`pack_int8` → ``(M, N)`` float32.

    ``x`` is quantised to 7-bit unsigned integers over its own range for this
    product (``reduce_range``: AVX2 without VNNI accumulates pairs in 16 bits).
    """
    import torch

    return torch.ops.quantized.linear_dynamic(x, packed, True)


def int8_available() -> bool:
    """Whether this torch build has an x86 quantised engine (FBGEMM/oneDNN) for :func:`int8_matmul`."""
    import torch

    return any(e in torch.backends.quantized.supported_engines for e in ("x86", "fbgemm", "onednn"))


def _median_time(fn, *, reps: int, inner: int) -> float:
    fn()  # warm-up: kernel selection, weight packing caches
    times = []
    for _ in range(reps):
        # CPU time of this thread (torch runs on it with one thread): other
        # processes competing for the core do not inflate it.
        t0 = time.thread_time()
        for _ in range(inner):
            fn()
        times.append((time.thread_time() - t0) / inner)
    return statistics.median(times)


def measure_matmuls(*, bfloat16: bool = True, int8: bool = True, reps: int = 5) -> MatmulTimings:
    """Time one chunk of a timbral block in each precision on one thread (about 0.1–0.2 s of CPU).

    The chunk is 16 frames of a 96-band patch through 204 filters of 7×38, max
    over frequency, computed as the model computes it: float32 through the
    frequency DFT (:mod:`genrify.models.fftconv`), the reduced precisions as the
    :data:`BENCH_SHAPE` product of the unfolded input. bfloat16 is timed with a
    single chunk first and given up when that alone takes over twice float32's
    time (emulated bfloat16 takes 10–30×).
    """
    import torch

    from genrify.models.fftconv import conv_max_min_over_frequency, prepare_weights

    m, k, n = BENCH_SHAPE
    frames, positions = 16, m // 16
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(frames + 6, positions + 37, generator=gen)
    w = torch.randn(n, 1, 7, 38, generator=gen)
    dft = prepare_weights(w, n_freq=x.shape[1])
    w2d = w.reshape(n, k).t().contiguous()

    def unfolded(weight, product):
        def run():
            cols = x.to(weight.dtype if isinstance(weight, torch.Tensor) else x.dtype).unfold(0, 7, 1).unfold(1, 38, 1)
            return product(cols.reshape(m, k), weight).view(frames, positions, n).amax(dim=1)
        return run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per-core throughput: what a worker process or a serving slot gets
    try:
        with torch.inference_mode():
            fp32 = _median_time(lambda: conv_max_min_over_frequency(x, dft, need_min=False), reps=reps, inner=5)
            bf16 = None
            if bfloat16:
                run_bf16 = unfolded(w2d.bfloat16(), torch.matmul)
                bf16 = _median_time(run_bf16, reps=1, inner=1)
                if bf16 <= 2 * fp32:
                    bf16 = _median_time(run_bf16, reps=reps, inner=5)
            q8 = None
            if int8 and int8_available():
                q8 = _median_time(unfolded(pack_int8(w2d), int8_matmul), reps=reps, inner=5)
    finally:
        torch.set_num_threads(threads)
    return MatmulTimings(float32=fp32, bfloat16=bf16, int8=q8)


def machine_key(*, cpu: str, flags: frozenset[str]) -> str:
    """What a cached decision depends on: CPU model and flags, torch version and quantised engine."""
    import torch

    text = json.dumps([cpu, sorted(flags), torch.__version__, torch.backends.quantized.engine, BENCH_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """genrify's cache folder (:func:`genrify.sources.library.cache_dir`), where the decision per machine is kept."""
    from genrify.sources.library import cache_dir

    return cache_dir()


def _read_cache(path: Path) -> dict:
    from genrify.fileio import read_small_text

    try:
        data = json.loads(read_small_text(path))
    except (OSError, ValueError, RecursionError):
        return {}  # missing, not a regular file, too large, damaged or nested too deep: measure again
    return data if isinstance(data, dict) else {}


#: The range a cached time (seconds per product) must fall in to be taken as a measurement.
PLAUSIBLE_S = (1e-6, 10.0)


def _cached_timings(entry) -> MatmulTimings | None:
    """The timings of a cached entry, or ``None`` where any figure is not a plausible time."""
    timings = entry.get("timings") if isinstance(entry, dict) else None
    if not isinstance(timings, dict) or timings.get("float32") is None:
        return None
    values = {name: timings.get(name) for name in PRECISIONS}
    for value in values.values():
        if value is not None and (type(value) not in (int, float) or not PLAUSIBLE_S[0] <= value <= PLAUSIBLE_S[1]):
            return None  # also NaN, which no comparison admits
    return MatmulTimings(**values)


def _confirmed(decision: PrecisionDecision) -> bool:
    """Whether one quick measurement agrees that the reduced precisions ``decision`` picks beat float32.

    Run only when cached figures pick one: a cache written elsewhere, or by hand, must not choose
    a slower path (emulated bfloat16 takes 10-30x float32's time, so one product tells).
    """
    if not (decision.bfloat16 or decision.int8):
        return True
    quick = measure_matmuls(bfloat16=decision.bfloat16, int8=decision.int8, reps=1)
    return all(t is not None and t < quick.float32 for t, used in
               ((quick.bfloat16, decision.bfloat16), (quick.int8, decision.int8)) if used)


_DECISIONS: dict[str, PrecisionDecision] = {}  # per process: read the cache file once


def machine_precision(*, cache_dir: str | Path | None = None, refresh: bool = False,
                      cpuinfo: str | Path = "/proc/cpuinfo") -> PrecisionDecision:
    """This machine's :class:`PrecisionDecision`: from the cache, or measured once and cached.

    ``cache_dir`` defaults to :func:`default_cache_dir`; ``refresh`` measures
    again. A cache that cannot be written (read-only home) only costs measuring
    again in the next process.
    """
    from genrify.errors import WriteError
    from genrify.fileio import write_text_atomic

    cpu, flags = read_cpuinfo(cpuinfo)
    key = machine_key(cpu=cpu, flags=flags)
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = path / CACHE_NAME
    memo = f"{path}:{key}"
    if not refresh and memo in _DECISIONS:
        return _DECISIONS[memo]
    cache = _read_cache(path)
    timings = None if refresh else _cached_timings(cache.get(key))
    decision = None if timings is None else decide(flags=flags, timings=timings, cpu=cpu)
    if decision is not None and not _confirmed(decision):
        decision = None
    if decision is None:
        timings = measure_matmuls(bfloat16=bfloat16_may_be_native(flags))
        decision = decide(flags=flags, timings=timings, cpu=cpu)
        cache[key] = asdict(decision)
        try:
            write_text_atomic(path, json.dumps(cache, indent=1) + "\n")
        except WriteError:
            pass
    _DECISIONS[memo] = decision
    return decision
