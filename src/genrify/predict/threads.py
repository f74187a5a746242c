"""Intra-op threads of an analysis process, for whichever engine it loaded (torch or NumPy's BLAS)."""

from __future__ import annotations



def free_cores(*, cores: int, load: float) -> int:
    """How many intra-op threads one analysis process should use: the cores the 1-minute load
    average leaves free (``cores - round(load)``), at least 1.

    torch's OpenMP threads wait for each other by spinning: where another process holds a core,
    every parallel region waits for the descheduled thread: beside one busy process, two threads on
    a 2-core machine took 3.1–4.9× as long as one (``benchmarks/bench_threads.py``), while on the idle
    machine they took 0.7×. One thread per free core avoids the collapse.
    """
    return max(1, min(cores, cores - int(load + 0.5)))


def set_threads(n: int, *, engine: str) -> None:
    """``n`` intra-op threads for ``engine``: torch's ("torch") and, for either engine, the BLAS
    library NumPy calls (the NumPy engine's matrix products)."""
    from threadpoolctl import threadpool_limits

    if engine == "torch":
        import torch

        torch.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")


def thread_count(*, engine: str) -> int:
    """The intra-op threads ``engine`` uses (torch's, else the BLAS library's)."""
    if engine == "torch":
        import torch

        return torch.get_num_threads()
    from threadpoolctl import threadpool_info

    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)
