"""How this process runs a model — engine, mode, precision, threads — decided once, when it loads.

:func:`plan_runtime` is the one place these choices are made; the classifier
holds the answer as a read-only :class:`Runtime` (``clf.runtime``) and hands it
to its backend, which builds what it says. Nothing further down re-derives a
choice from flags, environment variables or which modules happen to be loaded.

Two engines compute the backbones' outputs (:mod:`genrify.models.embedder`):
torch (every backbone and precision) and NumPy (MSD_musicnn and mn04 in
float32, no torch import). A process that analyses a few songs prefers NumPy: importing
torch costs seconds, more than the analysis of a song. A long-running one
(a server, a worker pool, a Ray actor, a library run) prefers torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from genrify.config import AUDIOSET_BACKBONE, MUSICNN_BACKBONE
from genrify.errors import ConfigError

#: Up to this many songs, a process predicts on the NumPy engine where it can: importing torch costs
#: 2.4–3.5 s, while the NumPy engine takes 0.9–1.35× the torch engine's CPU per song (0.2–0.5 s)
#: on one thread (benchmarks/bench_startup.py, bench_engines.py on a 2-core AMD EPYC). Past a few
#: dozen songs torch's lead per song may repay its import; 20 stays on the safe side.
FEW_SONGS = 20

#: ``GENRIFY_ENGINE``: "auto" (default), "numpy" or "torch"; see :func:`choose_engine`.
ENGINES = ("auto", "numpy", "torch")


@dataclass(frozen=True)
class Runtime:
    """How a classifier runs on this machine, decided by :func:`plan_runtime`.

    ``engine``: "numpy" or "torch" (window networks always run on torch);
    ``fast``: musicnn models' fast mode (``max_windows`` spread windows);
    ``precision``: the arithmetic of musicnn's timbral convolutions ("float32",
    "bfloat16", "int8"; "float32" for window networks); ``threads``: intra-op
    threads of the engine (``None``: the libraries' own default, left alone);
    ``backbones``: the pretrained networks the model listens through.
    """

    engine: str
    fast: bool
    precision: str
    max_windows: int | None
    threads: int | None
    backbones: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        return "fast" if self.fast else "full"

    def describe(self) -> str:
        """One line for ``genrify predict -v``: engine, threads, mode, windows and arithmetic, with the
        machine's measured reason for the arithmetic."""
        threads = self.threads if self.threads is not None else current_threads(engine=self.engine)
        parts = [f"{self.engine} engine, {threads} thread{'' if threads == 1 else 's'}"]
        if not self.backbones:
            return " · ".join(parts + ["float32"])
        windows = "all windows" if self.max_windows is None else f"at most {self.max_windows} windows"
        parts.append(f"{self.mode} mode, {windows}, listening through {' + '.join(self.backbones)}")
        if MUSICNN_BACKBONE not in self.backbones:  # no musicnn: nothing runs in reduced precision
            return " · ".join(parts + ["float32"])
        if self.engine == "numpy":
            from genrify.models.quantize import bfloat16_may_be_native, read_cpuinfo

            cpu, flags = read_cpuinfo()
            why = ("bfloat16 not native (no avx512_bf16/amx_bf16 flag) → float32" if not bfloat16_may_be_native(flags)
                   else "reduced precisions run on the torch engine only")
            return " · ".join(parts + ["musicnn timbral convs in float32 (frequency DFT), without torch",
                                       f"machine check: {cpu or 'unknown CPU'}: {why}"])
        from genrify.models.quantize import machine_precision

        how = "frequency DFT" if self.precision == "float32" else "unfolded matrix product"
        return " · ".join(parts + [f"musicnn timbral convs in {self.precision} ({how})",
                                   f"machine check: {machine_precision().describe()}"])


def plan_runtime(*, backbones: tuple[str, ...], fast: bool, max_windows: int | None, songs: int | None = None,
                 threads: int | None = None, requested: str | None = None) -> Runtime:
    """The :class:`Runtime` of a model that listens through ``backbones`` (``()``: a window network).

    ``songs``: how many songs this process will analyse (``None``: unknown or many —
    a server, a worker, an actor, a program using the library); ``threads``: the
    intra-op threads the caller grants. Without a grant, a run of ``songs`` songs
    takes the cores the load average leaves free (``OMP_NUM_THREADS`` when set),
    and otherwise the process's threads are left as they are (``threads=None``
    in the plan); ``requested``: the user's engine
    (default: ``GENRIFY_ENGINE``). The fast mode asks for bfloat16, used only where
    this machine measured it faster (:func:`genrify.models.quantize.machine_precision`).
    """
    threads = _grant(threads, songs=songs)
    if not backbones:
        return Runtime(engine="torch", fast=False, precision="float32", max_windows=None, threads=threads,
                       backbones=())
    engine = choose_engine(fast=fast, backbones=backbones, requested=requested,
                           prefer="numpy" if songs is not None and songs <= FEW_SONGS else "torch")
    precision = "float32"
    if fast and engine == "torch":
        from genrify.models.quantize import machine_precision, resolve_precision

        precision = resolve_precision("bfloat16", machine_precision())
    return Runtime(engine=engine, fast=fast, precision=precision, max_windows=max_windows, threads=threads,
                   backbones=tuple(backbones))


def choose_engine(*, fast: bool, backbones: tuple[str, ...], requested: str | None = None, prefer: str = "torch",
                  cpu_flags: frozenset[str] | None = None) -> str:
    """"numpy" or "torch" for a musicnn model listening through ``backbones``.

    ``requested`` is the user's choice and defaults to the ``GENRIFY_ENGINE``
    environment variable ("auto" when unset). "auto" takes ``prefer`` where NumPy
    computes exactly what torch would: float32 and no backbone but MSD_musicnn and
    mn04; torch otherwise. The fast mode asks torch for bfloat16, which it uses only
    where a measurement finds it faster and never where the CPU's flags
    (``cpu_flags``, default: ``/proc/cpuinfo``) name no native bfloat16: there the
    fast mode is float32 too and NumPy computes it (no flags known: torch).
    "numpy" asks for NumPy (refused where it cannot compute the model); "torch"
    always uses torch.

    Raises:
        ConfigError: an unknown engine, or "numpy" for a model it cannot compute.
    """
    requested = (requested or os.environ.get("GENRIFY_ENGINE") or "auto").strip().lower()
    if requested not in ENGINES:
        raise ConfigError(f"GENRIFY_ENGINE={requested!r}: expected one of {', '.join(ENGINES)}")
    numpy_ok = set(backbones) <= {MUSICNN_BACKBONE, AUDIOSET_BACKBONE}
    if fast and requested != "numpy" and MUSICNN_BACKBONE in backbones:  # mn04 has no reduced precision
        from genrify.models.quantize import bfloat16_may_be_native, read_cpuinfo

        numpy_ok = numpy_ok and not bfloat16_may_be_native(read_cpuinfo()[1] if cpu_flags is None else cpu_flags)
    if requested == "numpy" and not numpy_ok:
        raise ConfigError("the numpy engine computes MSD_musicnn and mn04 in float32 only; "
                          "use GENRIFY_ENGINE=torch for other backbones or precisions")
    if requested == "auto":
        return "numpy" if numpy_ok and prefer == "numpy" else "torch"
    return requested


def _grant(threads: int | None, *, songs: int | None) -> int | None:
    """The threads a process uses: the caller's grant; for a run of ``songs`` songs ``OMP_NUM_THREADS``
    or the free cores; else ``None`` (leave the process's threads as they are)."""
    if threads is not None:
        return max(1, int(threads))
    if songs is None:
        return None
    from genrify.predict.threads import free_cores

    chosen = os.environ.get("OMP_NUM_THREADS", "").strip()
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform: every core
        load = 0.0
    return free_cores(cores=os.cpu_count() or 1, load=load)


def current_threads(*, engine: str) -> int:
    """The intra-op threads ``engine`` uses now (torch's, else the BLAS library's)."""
    from genrify.predict.threads import thread_count

    return thread_count(engine=engine)
