"""The one way to pin the CPU threads of a process (grid workers, benchmarks, notebooks).

:func:`pin_threads` sets torch's intra-op pool and, as asked, the thread variables of the
environment (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``: read by a library
when it loads and inherited by child processes, such as notebook kernels) and the BLAS / OpenMP
pools already loaded (through threadpoolctl). Fewer threads than cores keeps parallel runs from
oversubscribing the machine, and a fixed count fixes the order of float sums.
"""

from __future__ import annotations

import os

from .checks import check_int

#: Environment variables that cap the OpenMP / MKL / OpenBLAS thread pools of libraries loaded
#: after they are set (and of child processes).
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pin_threads(n: int, *, environment: bool = True, blas_pools: bool = False) -> str:
    """Pin this process to ``n`` CPU threads.

    Args:
        n: threads (>= 1) of torch's intra-op pool (``torch.set_num_threads``).
        environment: also set :data:`THREAD_ENV_VARS` to ``n`` (libraries loaded later and child
            processes read them; set them before torch is first imported to cap its OpenMP pool
            too).
        blas_pools: also cap every BLAS / OpenMP pool already loaded in this process
            (threadpoolctl's ``threadpool_limits``; the cap lasts for the process).

    Returns:
        One line describing the pools, e.g. ``"torch intra-op=1, openblas=1"``.

    Raises:
        ValueError: ``n`` is not an integer >= 1.
    """
    n = check_int("threads", n, lo=1)
    if environment:
        for var in THREAD_ENV_VARS:
            os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)
    pools = ""
    if blas_pools:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(limits=n)
        pools = ", " + (", ".join(sorted({f"{p['internal_api']}={p['num_threads']}"
                                          for p in threadpool_info()})) or "no BLAS pools found")
    return f"torch intra-op={torch.get_num_threads()}{pools}"


__all__ = ["THREAD_ENV_VARS", "pin_threads"]
