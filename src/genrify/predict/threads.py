"""Intra-op threads of an analysis process, for whichever engine it loaded (torch or NumPy's BLAS)."""

from __future__ import annotations

import os
import sys


def free_cores(*, cores: int, load: float) -> int:
    """How many intra-op threads one analysis process should use: the cores the 1-minute load
    average leaves free (``cores - round(load)``), at least 1.

    torch's OpenMP threads wait for each other by spinning: where another process holds a core,
    every parallel region waits for the descheduled thread: beside one busy process, two threads on
    a 2-core machine took 3.1–4.9× as long as one (``benchmarks/bench_threads.py``), while on the idle
    machine they took 0.7×. One thread per free core avoids the collapse.
    """
    return max(1, min(cores, cores - int(load + 0.5)))


def use_free_cores() -> None:
    """Use :func:`free_cores` threads (:func:`set_threads`) unless the user chose (``OMP_NUM_THREADS``)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform: keep the libraries' defaults
        return
    set_threads(free_cores(cores=os.cpu_count() or 1, load=load))


def set_threads(n: int) -> None:
    """``n`` intra-op threads for both engines: torch's (when loaded; never imported for this) and the
    BLAS library NumPy calls (the NumPy engine's matrix products)."""
    from threadpoolctl import threadpool_limits

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")


def thread_count() -> int:
    """The intra-op threads the loaded engine uses (torch's when loaded, else the BLAS library's)."""
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    from threadpoolctl import threadpool_info

    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)
