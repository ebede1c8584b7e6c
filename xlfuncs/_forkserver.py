"""Where local worker processes come from: a fork server, started as early as possible.

Standard library only, so that the ``xlfuncs`` command can start the server before
it imports the numerical stack (:mod:`xlfuncs._launch`): the server's own start (a
fresh interpreter importing numpy, pandas and xlfuncs, then a warm-up backtest)
then runs on another core while this process imports and reads the data.
"""

from __future__ import annotations

__all__ = ["PRELOAD", "start_fork_server", "worker_context"]

#: What the fork server imports before it forks any worker: xlfuncs and a tiny
#: backtest run once (:mod:`xlfuncs.core._warmup`), so that every worker starts warm.
PRELOAD = ["xlfuncs.core._warmup"]


def worker_context():
    """Worker processes that never inherit a thread pool mid-use.

    A plain ``fork`` copies this process with its OpenMP and BLAS thread pools
    (scikit-learn's k-means starts OpenMP's): a worker then waits forever on a
    lock no thread will release. Where it exists (Linux, macOS), a fork server (a
    clean process that has imported xlfuncs once) forks the workers instead;
    Windows starts fresh interpreters (``spawn``). (Imported here, not at the
    top: Pyodide, where xlwings Lite runs, has no processes to start.)
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_fork_server() -> None:
    """Start the fork server now, if workers come from one; returns at once.

    The server gets ready (most of a second) while the caller goes on; the
    first worker is then forked from it without waiting.
    """
    ctx = worker_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
