"""Where a sweep's independent pieces run: in this process, in local processes, or on Dask.

A backtest has two kinds of independent work (:mod:`xlfuncs.core._backtest`):
estimation chunks (runs of rebalance dates) and strategy walks. Both are
handed to an executor as ``fn(shared, item)`` calls over a list of items,
where ``shared`` is the one large object every call reads (the market data,
the settings, the estimates). Each executor sends ``shared`` to a worker once,
never with every item:

* :class:`SerialExecutor` calls ``fn`` here, in order. It imports nothing, so
  it runs where there are no processes or threads (Pyodide, xlwings Lite).
* :class:`ProcessExecutor` runs local worker processes (``--workers N``), kept
  for the session; ``shared`` is pickled once per run and each worker process
  receives it once.
* :class:`DaskExecutor` submits the calls to a ``dask.distributed`` scheduler
  (``--scheduler tcp://HOST:8786``): ``shared`` is scattered to the workers
  once, and a task lost with a worker is run again elsewhere (Dask retries it).

``map`` returns the results in the order of the items, whichever finished
first, so the result of a sweep does not depend on the executor. With a
``tick`` callback, ``fn`` is called as ``fn(shared, item, report)`` and each
``report(n)`` inside it (n units of the item's work done) reaches
``tick(position, n)`` here while the item runs: at once in this process; from a
local worker summed and sent at most every :data:`REPORT_SECONDS` through a pipe
(read between waits of at most :data:`TICK_POLL` seconds), the units not yet sent
when the item ends reaching no tick (``done`` is called for the item: count the
rest there). Dask workers report nothing before the item's end.

With ``split=True`` a local process executor also lets a running item hand part
of its work on: from a worker process to this one when this one has nothing left
to run, from this one to a worker process without an item. ``report.wanted()``
says such a process is waiting (in a worker, it also claims it: ``give`` must
follow), ``report.give(item)`` runs ``item`` there. The given items' results
follow the items' results in ``map``'s list; their reports count for the item
of ``items`` they came from, and ``done`` is called for it once all its parts
have finished. (A backtest's walk hands over half its strategies: a sweep's
groups end together rather than one process waiting for the other.)
"""

from __future__ import annotations

import itertools
import os
import pickle
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from xlfuncs._forkserver import start_fork_server as _start_fork_server
from xlfuncs._forkserver import worker_context as _context
from xlfuncs.errors import InputError, XlfuncsError

__all__ = [
    "DaskExecutor",
    "Executor",
    "ProcessExecutor",
    "SerialExecutor",
    "check_scheduler",
    "make_executor",
    "shutdown_workers",
]

Done = Callable[[int], None]  # called with each item's position as it finishes
Tick = Callable[[int, int], None]  # (item's position, units done) while the item runs
TICK_POLL = 0.2  # seconds between reads of the workers' progress reports
HANDOFF_POLL = 0.005  # seconds between reads while this process waits to be given work
# A worker process sends its units done at most this often, summed: a message per unit
# (a rebalance date) cost a 4-strategy sweep a tenth of its time in thread switches.
REPORT_SECONDS = 0.1
_SCHEDULER = re.compile(r"(tcp|tls|inproc|ucx|ws|wss)://\S+")
CONNECT_TIMEOUT = 10.0  # seconds to reach a Dask scheduler before giving up


class Executor(Protocol):
    """What the backtest needs of an executor.

    ``other_processes``, where an executor has it, is how many processes besides this
    one run its items (0: this one only); an executor without it, or None, says not.
    """

    workers: int

    def map(self, fn: Callable[..., Any], items: Sequence[Any], shared: Any,
            done: Done | None = None, tick: Tick | None = None,
            split: bool = False) -> list[Any]:
        """``[fn(shared, item) for item in items]``, wherever the executor runs them.

        ``split``: items may hand work on, where the executor can (see the module).
        """
        ...

    def close(self) -> None:
        """Release workers or connections."""
        ...


class _Closing:
    """``with executor:`` closes it at the end (a no-op where there is nothing to release)."""

    def close(self) -> None:
        """Release workers or connections."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialExecutor(_Closing):
    """Everything in this process, one item after another."""

    workers = 1
    other_processes = 0

    def map(self, fn, items, shared, done=None, tick=None, split=False):
        out = []
        for k, item in enumerate(items):
            if tick is None:
                out.append(fn(shared, item))
            else:
                out.append(fn(shared, item, lambda n, k=k: tick(k, n)))
            if done is not None:
                done(k)
        return out


# ------------------------------------------------------------------ local worker processes
#
# Worker processes are kept for the session (like joblib's reusable executor): a
# second sweep in the same Python session (a notebook, a script, a long-lived Excel
# server) finds them started and warm. A worker holds one ``shared`` object at a time,
# named by a token: the first item a worker runs for a new token brings the object
# (pickled once here), later items bring only the token.

IDLE_SECONDS = 300.0  # kept workers stop after this long without work

_WORKER: dict[str, Any] = {"token": None, "value": None, "reports": None, "want": None}
_SESSION: dict[str, Any] = {"pool": None, "processes": 0, "reports": None, "want": None,
                            "timer": None}
_COUNTER = itertools.count()
_LOCK = threading.RLock()  # the session's pool: made, used and stopped one at a time


def _init_worker(reports: Any, want: Any) -> None:
    _WORKER["reports"] = reports  # where report(n) writes (map, position, n)
    _WORKER["want"] = want  # how many processes would take work handed on (split maps)
    # One BLAS/OpenMP thread per worker: the workers already use every core, and more
    # threads than cores only wait on each other.
    from xlfuncs.core._lstsq import threadpools

    pools = threadpools()  # None where threadpoolctl is missing
    if pools is not None:
        _WORKER["limits"] = pools.limit(limits=1)


def _in_worker(token: str, payload: bytes | None, fn: Callable[..., Any], item: Any,
               tag: tuple[int, int] | None) -> tuple[int, bool, Any]:
    """``fn(shared, item)`` in a worker process: ``(pid, True, result)``.

    ``(pid, False, None)`` when this process does not hold ``token``'s object and
    ``payload`` (the object, pickled) did not bring it: the caller sends it again.
    """
    if _WORKER["token"] != token:
        if payload is None:
            return os.getpid(), False, None
        _WORKER["value"] = None  # the last run's object goes before the next is read
        _WORKER["value"] = pickle.loads(payload)
        _WORKER["token"] = token
    shared, reports = _WORKER["value"], _WORKER["reports"]
    if tag is None or reports is None:
        return os.getpid(), True, fn(shared, item)
    return os.getpid(), True, fn(shared, item, _Reporter(reports, tag, _WORKER["want"]))


class _Reporter:
    """``report(n)`` in a worker: the units summed, sent every :data:`REPORT_SECONDS`.

    Units not yet sent when the item ends are not sent: its end counts them.
    ``wanted()`` claims the process that called the map while it waits for work (a
    split map's); ``give(item)`` sends that process the item, with the units not sent.
    """

    def __init__(self, reports: Any, tag: tuple[int, int], want: Any = None):
        self.reports, self.tag, self.want = reports, tag, want
        self.pending, self.last = 0, time.monotonic()

    def wanted(self) -> bool:
        want = self.want
        if want is None or want.get_obj().value <= 0:  # the usual answer: no lock taken
            return False
        with want.get_lock():
            if want.value <= 0:
                return False
            want.value -= 1
            return True

    def give(self, item: Any) -> None:
        self.reports.put((*self.tag, self.pending, item))
        self.pending, self.last = 0, time.monotonic()

    def __call__(self, n: int) -> None:
        self.pending += n
        now = time.monotonic()
        if now - self.last >= REPORT_SECONDS:
            self.reports.put((*self.tag, self.pending))
            self.pending, self.last = 0, now


class _Here:
    """``report(n)`` for an item run in this process: at once, as ``tick(k, n)``.

    ``wanted()`` and ``give(item)`` hand work to an idle worker process (split maps).
    """

    def __init__(self, k: int, tick: Tick, idle: Callable[[], bool],
                 add: Callable[[int, Any, bool], None]):
        self.k, self.tick, self.idle, self.add = k, tick, idle, add

    def __call__(self, n: int) -> None:
        self.tick(self.k, n)

    def wanted(self) -> bool:
        return self.idle()

    def give(self, item: Any) -> None:
        self.add(self.k, item, False)


def _relay(reports: Any, tick: Tick | None, map_id: int) -> list[tuple[int, Any]]:
    """Pass on every report the workers have written so far (an earlier map's are dropped).

    Returns the items they gave, as ``(position of the giver, item)``.
    """
    given = []
    while reports is not None and not reports.empty():
        got, k, n, *item = reports.get()
        if got != map_id:
            continue
        if tick is not None and n:
            tick(k, n)
        if item:
            given.append((k, item[0]))
    return given


def _session_pool(processes: int) -> tuple[Any, Any]:
    """The session's pool of ``processes`` workers and their report pipe, made if needed."""
    from concurrent.futures import ProcessPoolExecutor

    with _LOCK:
        timer = _SESSION["timer"]
        if timer is not None:  # a map: the idle stop is off (a firing one sees it is stale)
            timer.cancel()
            _SESSION["timer"] = None
        pool = _SESSION["pool"]
        if pool is not None and (_SESSION["processes"] != processes
                                 or getattr(pool, "_broken", False)):
            _stop()
            pool = None
        if pool is None:
            ctx = _context()
            # A pipe written at once by report(n) (no feeder thread): a worker's reports
            # are all in it before its result arrives, so an item's reports precede its done.
            reports = ctx.SimpleQueue()
            want = ctx.Value("i", 0)
            pool = ProcessPoolExecutor(max_workers=processes, mp_context=ctx,
                                       initializer=_init_worker, initargs=(reports, want))
            _SESSION.update(pool=pool, processes=processes, reports=reports, want=want)
            if not _SESSION.get("atexit"):  # stopped while the interpreter still runs
                import atexit

                atexit.register(shutdown_workers)
                _SESSION["atexit"] = True
        return pool, _SESSION["reports"]


def _idle_later() -> None:
    """Stop the session's workers after :data:`IDLE_SECONDS` without a map."""
    def idle_stop() -> None:
        with _LOCK:
            if _SESSION["timer"] is timer:  # no map has started since
                _stop()

    with _LOCK:
        if _SESSION["pool"] is None or _SESSION["timer"] is not None:
            return
        timer = threading.Timer(IDLE_SECONDS, idle_stop)
        timer.daemon = True
        _SESSION["timer"] = timer
        timer.start()


def _stop() -> None:
    timer, pool = _SESSION["timer"], _SESSION["pool"]
    if timer is not None:
        timer.cancel()
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
    _SESSION.update(pool=None, processes=0, reports=None, want=None, timer=None)


def shutdown_workers() -> None:
    """Stop the worker processes kept for the session (the next map starts new ones)."""
    with _LOCK:
        _stop()


class ProcessExecutor(_Closing):
    """Local worker processes and this one: ``workers`` items run at a time.

    This process is one of the ``workers``: it runs the last item itself and
    then takes the items no worker has started yet, from the end, while
    ``workers - 1`` processes take them from the front. So a small map does
    not wait for processes to start (a fork server's first start imports the
    numerical stack, about a second), and this process's warm state is used.
    ``shared`` is pickled once and reaches each worker process once; the
    estimation and the decisions of one backtest share it. The worker processes
    outlive the executor: the next one in this session uses them (they stop
    after :data:`IDLE_SECONDS` idle, at exit, or at :func:`shutdown_workers`).
    """

    def __init__(self, workers: int):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers must be a whole number of at least 1 (got {workers!r})",
                             "workers")
        self.workers = workers
        self._shared: Any = None
        self._token = ""
        self._payload: bytes | None = None
        self._holders: set[int] = set()  # worker processes that hold this token's object
        if workers > 1:
            _start_fork_server()

    @property
    def other_processes(self) -> int:
        """The session's kept worker processes this executor uses."""
        return self.workers - 1

    def _token_for(self, shared: Any) -> str:
        if self._shared is not shared or not self._token:
            self._shared, self._payload, self._holders = shared, None, set()
            self._token = f"{os.getpid()}-{next(_COUNTER)}"
        return self._token

    def _payload_bytes(self) -> bytes:
        if self._payload is None:
            self._payload = pickle.dumps(self._shared, protocol=pickle.HIGHEST_PROTOCOL)
        return self._payload

    def map(self, fn, items, shared, done=None, tick=None, split=False):
        from collections import deque
        from concurrent.futures import FIRST_COMPLETED, wait

        from xlfuncs.core._lstsq import one_thread

        if not items:
            return []
        items = list(items)  # and the items given while the map runs (split)
        out: list[Any] = [None] * len(items)
        root = list(range(len(items)))  # the item a given one counts for (reports, done)
        parts = [1] * len(items)  # an item's parts not finished: itself and those it gave
        todo = deque(range(len(items)))  # the workers take from the front, this process the back
        lock = threading.Lock()
        remote: dict[Any, int] = {}
        pool = reports = want = None
        processes = self.other_processes
        map_id = next(_COUNTER)
        token = self._token_for(shared)
        if processes > 0 and len(items) > 1:
            pool, reports = _session_pool(processes)
            if split and tick is not None:
                want = _SESSION["want"]

        reserved = 0  # items taken for a worker process, not yet submitted
        failed: list[BaseException] = []  # a submit that raised (no worker can start)
        resend: set[int] = set()  # items a worker returned for want of the object
        wanting = False  # this process has nothing to run: a worker may give it work

        def arrived(fut: Any) -> None:
            # in the pool's thread: a worker that has the object needs no copy of it
            if not fut.cancelled() and fut.exception() is None:
                pid, held, _ = fut.result()
                if held:
                    with lock:
                        self._holders.add(pid)
            feed()

        def feed() -> None:
            # an item to each idle worker process, one at a time, and one queued ahead
            # while more than two items per worker are left (the last ones wait for
            # whichever process is free first); runs in the pool's thread too. The
            # first submit can wait a second for the fork server to start: it runs in a
            # thread of its own, and the lock is not held while it waits.
            nonlocal reserved
            while True:
                with lock:
                    busy = sum(not f.done() for f in remote) + reserved
                    # while many items are left, each worker process that holds the object
                    # has one more queued, so it starts the next as it sends a result back
                    ahead = len(todo) > 2 * self.workers and len(self._holders) >= processes
                    if failed or not todo or busy >= processes * (2 if ahead else 1):
                        return
                    k = todo.popleft()
                    reserved += 1
                    bring = k in resend or len(self._holders) < processes
                try:
                    payload = self._payload_bytes() if bring else None
                    fut = pool.submit(_in_worker, token, payload, fn, items[k],
                                      None if tick is None else (map_id, root[k]))
                except BaseException as exc:  # raised in the caller's thread, below
                    with lock:
                        failed.append(exc)
                        reserved -= 1
                    return
                with lock:
                    remote[fut] = k
                    reserved -= 1
                fut.add_done_callback(arrived)

        def add(k: int, item: Any, here: bool) -> None:
            # a part of item k's work, given by it while it runs: to run here, or in a worker
            with lock:
                j = len(items)
                items.append(item)
                out.append(None)
                root.append(root[k])
                parts[root[k]] += 1
                if here:
                    todo.append(j)
                else:
                    todo.appendleft(j)
            if not here:
                feed()

        def idle_worker() -> bool:
            # report.wanted() here: every item started and a worker process without one
            if want is None:
                return False
            with lock:
                return (not failed and not todo
                        and sum(not f.done() for f in remote) + reserved < processes)

        def finish(k: int, value: Any) -> None:
            out[k] = value
            parts[root[k]] -= 1
            if not parts[root[k]] and done is not None:
                done(root[k])

        def pull() -> None:
            # the workers' reports so far, and the work one of them gave this process
            nonlocal wanting
            for k, item in _relay(reports, tick, map_id):
                wanting = False  # the worker took the claim
                add(k, item, here=True)

        def collect(timeout: float | None) -> None:
            with lock:
                pending = [f for f in remote if f not in seen]
            if not pending:
                if timeout:  # an item is being submitted: wait for it
                    time.sleep(0.005)
                return
            finished, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            for fut in finished:  # a worker lost (perhaps mid-message): before reading
                if fut.exception() is not None:
                    raise fut.exception()
            pull()
            for fut in sorted(finished, key=remote.__getitem__):
                seen.add(fut)
                k = remote[fut]
                pid, held, value = fut.result()
                if not held:  # a new worker process: again, with the object
                    with lock:
                        resend.add(k)
                        self._holders.discard(pid)
                        todo.appendleft(k)
                    feed()
                    continue
                finish(k, value)

        seen: set[Any] = set()
        feeder = None
        if pool is not None:
            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
        try:
            while True:
                while True:
                    with lock:
                        k = todo.pop() if todo and not failed else None
                    if k is None:
                        break
                    if wanting:  # busy again (an item sent back for the object)
                        want.value = 0
                        wanting = False
                    with one_thread():
                        value = (fn(shared, items[k]) if tick is None else
                                 fn(shared, items[k], _Here(root[k], tick, idle_worker, add)))
                    finish(k, value)
                    if pool is not None:
                        collect(0)
                if feeder is not None:
                    feeder.join()
                    feeder = None
                with lock:
                    left = len(remote) - len(seen) + reserved
                if failed:
                    break
                if not left:
                    pull()  # the last reports (and a part given as the last item ended)
                    if todo:
                        continue
                    break
                if want is not None and not wanting:  # nothing to run here: say so
                    want.value = 1
                    wanting = True
                collect(HANDOFF_POLL if wanting else TICK_POLL)  # an item sent back for
                # the object returns to todo, a part given to this process joins it
            if failed:
                raise failed[0]
        except BaseException:
            if pool is not None:  # any failure (a worker's, an item's, Ctrl-C): start the
                # workers afresh next time rather than guess what state they are in
                shutdown_workers()
            raise
        finally:
            if want is not None:
                want.value = 0
        return out

    def close(self) -> None:
        """Let go of ``shared`` (the session's worker processes stay, for the next run)."""
        self._shared = self._payload = None
        self._token = ""
        self._holders = set()
        _idle_later()


def check_scheduler(address: object) -> str:
    """A Dask scheduler address as the user typed it, checked for form (not reached yet)."""
    text = str(address).strip() if address is not None else ""
    if not _SCHEDULER.fullmatch(text):
        raise InputError(f"scheduler must be a Dask scheduler address such as "
                         f"tcp://10.0.0.5:8786 (got {address!r})", "scheduler")
    return text


class DaskExecutor(_Closing):
    """Tasks on a ``dask.distributed`` cluster: the scheduler at ``address``.

    Connecting happens here, before any work: a scheduler that cannot be
    reached, or a missing ``dask.distributed`` package, is one clear error.
    """

    def __init__(self, address: str, timeout: float | None = None, retries: int = 2):
        self.address = check_scheduler(address)
        timeout = CONNECT_TIMEOUT if timeout is None else timeout
        try:
            from distributed import Client
        except ImportError:
            raise InputError("a Dask scheduler needs the cluster extra: pip install "
                             '"xlfuncs[cluster]"', "scheduler") from None
        try:
            self.client = Client(self.address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise XlfuncsError(f"cannot reach the Dask scheduler at {self.address} within "
                               f"{timeout:g} s ({type(exc).__name__}); start it with "
                               "`dask scheduler` and workers with `dask worker "
                               f"{self.address}`", "scheduler") from None
        self.retries = retries
        self._shared: Any = None
        self._handle: Any = None
        workers = self.client.scheduler_info().get("workers", {})
        self.workers = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def map(self, fn, items, shared, done=None, tick=None, split=False):
        from distributed import as_completed

        if not items:
            return []
        if self._shared is not shared:
            # once per shared object: scattering the same data again while the last
            # copy is being released loses it on the workers
            self._handle = self.client.scatter(shared, broadcast=True)
            self._shared = shared
        handle = self._handle
        futures = [self.client.submit(fn, handle, item, pure=False, retries=self.retries)
                   for item in items]
        index = {f.key: k for k, f in enumerate(futures)}
        out: list[Any] = [None] * len(items)
        for fut in as_completed(futures, loop=self.client.loop):
            k = index[fut.key]
            out[k] = fut.result()
            if done is not None:
                done(k)
        return out

    def close(self) -> None:
        """Disconnect (the cluster itself keeps running)."""
        self._handle = self._shared = None
        self.client.close()


def make_executor(workers: int | None = None, scheduler: str | None = None,
                  tasks: int | None = None) -> SerialExecutor | ProcessExecutor | DaskExecutor:
    """The executor a user's settings ask for.

    Parameters
    ----------
    workers : int, optional
        Local processes; None: one per CPU. 1 is serial (no processes at all).
    scheduler : str, optional
        A Dask scheduler address; when given, ``workers`` is ignored.
    tasks : int, optional
        How many pieces of work there will be at most: no more processes than that.

    Returns
    -------
    SerialExecutor, ProcessExecutor or DaskExecutor

    """
    if scheduler:
        return DaskExecutor(scheduler)
    n = workers if workers is not None else (os.cpu_count() or 1)
    if tasks is not None:
        n = min(n, max(1, tasks))
    return SerialExecutor() if n <= 1 else ProcessExecutor(int(n))
