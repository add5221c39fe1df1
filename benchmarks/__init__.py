"""modelc benchmark suite (run with ``python -m benchmarks``; see ``benchmarks/__main__.py``).

Importing this package pins every BLAS / OpenMP pool to ONE thread before NumPy (or torch) is
imported, so every contender -- modelc, the hand-written loops and the peers -- runs under the
same single-threaded BLAS.  Subprocesses started by the suite inherit the same environment.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"


def limit_threads():
    """Also clamp pools that were created before this package was imported (threadpoolctl, torch)."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass
    import sys
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
