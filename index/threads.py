"""One FAISS and BLAS thread per query: serving gets its parallelism from
concurrent requests, and a second thread per query measured 2-10x slower
under concurrent load (see docs/index.md)."""

import threading

import faiss
from threadpoolctl import threadpool_limits

_local = threading.local()
_blas_limited = False
_blas_lock = threading.Lock()


def single_threaded() -> None:
    """Make FAISS and BLAS calls from the calling thread use one thread.

    OpenMP keeps its thread count per calling thread: a limit set while
    loading on the main thread does not reach the server's worker threads,
    which start with one OpenMP thread per core. So every query calls this;
    after the first call in a thread it is an attribute lookup. The BLAS
    limit (numpy's OpenBLAS, for full score vectors) is process-wide.
    """
    global _blas_limited
    if getattr(_local, "pinned", False):
        return
    faiss.omp_set_num_threads(1)
    _local.pinned = True
    if not _blas_limited:
        with _blas_lock:
            if not _blas_limited:
                threadpool_limits(limits=1, user_api="blas")
                _blas_limited = True
