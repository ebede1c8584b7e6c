"""The backtest's executors: every error a user can cause, by its text and argument."""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest
from errors_check import raises_exactly

from xlfuncs.core._executor import (
    REPORT_SECONDS,
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    check_scheduler,
)
from xlfuncs.errors import InputError, XlfuncsError


def test_workers_and_scheduler_address_by_their_text():
    for bad in (0, True, 1.5):
        raises_exactly(f"workers must be a whole number of at least 1 (got {bad!r})", "workers",
                       ProcessExecutor, bad)
    for bad in ("10.0.0.5", "http://x:8786", None):
        raises_exactly("scheduler must be a Dask scheduler address such as tcp://10.0.0.5:8786 "
                       f"(got {bad!r})", "scheduler", check_scheduler, bad)
    assert check_scheduler(" tcp://10.0.0.5:8786 ") == "tcp://10.0.0.5:8786"


def test_a_missing_dask_is_named_with_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    raises_exactly('a Dask scheduler needs the cluster extra: pip install "xlfuncs[cluster]"',
                   "scheduler", DaskExecutor, "tcp://127.0.0.1:8786")


def test_a_scheduler_nobody_listens_on_is_one_error():
    pytest.importorskip("distributed")
    with socket.socket() as s:  # a loopback port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(XlfuncsError) as info:
        DaskExecutor(address, timeout=0.5, retries=0)
    assert not isinstance(info.value, InputError)
    assert str(info.value).startswith(f"cannot reach the Dask scheduler at {address} within "
                                      "0.5 s (")
    assert str(info.value).endswith("); start it with `dask scheduler` and workers with "
                                    f"`dask worker {address}`")
    assert info.value.argument == "scheduler"


def _count_up(shared: int, item: int, report) -> int:
    """``item`` units of work (0.04 s each when ``shared`` is negative), each reported."""
    for _ in range(item):
        if shared < 0:
            time.sleep(0.04)
        report(1)
    return shared * item


@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "processes"])
def test_reports_of_a_running_item_reach_the_caller_before_its_end(workers):
    executor = SerialExecutor() if workers == 1 else ProcessExecutor(workers)
    items = [3, 5, 2, 4]
    events: list[tuple] = []
    out = executor.map(_count_up, items, 10, done=lambda k: events.append(("done", k)),
                       tick=lambda k, n: events.append(("tick", k, n)))
    assert out == [30, 50, 20, 40]
    if workers == 1:  # here: every report as it is made
        for k, units in enumerate(items):
            at = [j for j, e in enumerate(events) if e[0] == "tick" and e[1] == k]
            assert [events[j][2] for j in at] == [1] * units
            assert max(at) < events.index(("done", k))
    # a slow item in a worker process: its units summed, sent every REPORT_SECONDS
    events.clear()
    slow = [12, 3]  # the worker process takes the first item, this process the last
    assert executor.map(_count_up, slow, -1, done=lambda k: events.append(("done", k)),
                        tick=lambda k, n: events.append(("tick", k, n))) == [-12, -3]
    sent = [e[2] for e in events[:events.index(("done", 0))] if e[:2] == ("tick", 0)]
    assert sum(sent) <= 12 and len(sent) >= 2  # 0.48 s of work: reports while it runs
    if workers > 1:
        assert REPORT_SECONDS == 0.1 and len(sent) < 12  # fewer messages than units
    # without a tick the function is called with (shared, item) only, as before
    assert executor.map(int.__mul__, items, 2) == [6, 10, 4, 8]
    executor.close()


def _times(shared: int, item: int) -> int:
    return shared * item


def test_a_worker_that_cannot_start_is_the_callers_error_not_a_hang(monkeypatch):
    """The first submit runs in a thread of its own: what it raises reaches map's caller."""
    import threading
    from concurrent.futures import ProcessPoolExecutor

    def refuse(self, *args, **kwargs):
        raise RuntimeError("no process may start here")

    monkeypatch.setattr(ProcessPoolExecutor, "submit", refuse)
    executor = ProcessExecutor(2)
    got: list = []

    def run():
        try:
            got.append(executor.map(_times, [1, 2, 3, 4, 5, 6], 7))
        except RuntimeError as exc:
            got.append(exc)

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    caller.join(timeout=30)
    assert not caller.is_alive(), "map waited forever for an item no worker took"
    assert isinstance(got[0], RuntimeError) and str(got[0]) == "no process may start here"
    monkeypatch.undo()
    with executor:  # the executor still works once processes can start
        assert executor.map(_times, [1, 2, 3, 4], 7) == [7, 14, 21, 28]


PROBE_SERVER = """
from multiprocessing import forkserver
from xlfuncs.core import ProcessExecutor, SerialExecutor

server = forkserver._forkserver
before = server._forkserver_pid
SerialExecutor()
serial = server._forkserver_pid
executor = ProcessExecutor(2)  # made, no map yet
print(before is None, serial is None, server._forkserver_pid is not None,
      server._preload_modules)
executor.close()
"""


def test_a_process_executor_starts_the_fork_server_when_it_is_made():
    """Workers come from a fork server that is started, warm, before the first map.

    In a new interpreter: this test process has long started its own server.
    """
    import multiprocessing
    import subprocess

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform (workers are spawned)")
    got = subprocess.run([sys.executable, "-c", PROBE_SERVER], capture_output=True, text=True,
                         timeout=120)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "True True True ['xlfuncs.core._warmup']"


# --------------------------------------------------------------------------- kept workers


def _read_shared(shared: dict, item: int) -> tuple[str, int]:
    return shared["name"], item * shared["scale"]


def _forget_shared(shared: dict, item: int) -> int:
    """Drop this worker's copy of the shared object (as a newly started worker has none)."""
    from xlfuncs.core import _executor

    time.sleep(0.05)  # long enough that the worker process takes some items
    _executor._WORKER.update(token=None, value=None)
    return os.getpid()


def _pid(shared: object, item: int) -> int:
    import os
    import time

    time.sleep(0.05)  # long enough that the worker process takes some items
    return os.getpid()


def test_kept_workers_read_each_runs_own_shared_object():
    """A second executor reuses the worker processes, and they read its object, not the last."""
    from xlfuncs.core import _executor

    items = list(range(12))
    with ProcessExecutor(2) as first:
        pids_first = set(first.map(_pid, items, None))
        assert first.map(_read_shared, items, {"name": "a", "scale": 2}) == [
            ("a", 2 * i) for i in items]
    kept = _executor._SESSION["pool"]
    assert kept is not None
    with ProcessExecutor(2) as second:
        assert second.map(_read_shared, items, {"name": "b", "scale": 3}) == [
            ("b", 3 * i) for i in items]
        pids_second = set(second.map(_pid, items, None))
    assert _executor._SESSION["pool"] is kept  # the same processes served both
    assert len(pids_first) == len(pids_second) == 2 and pids_first == pids_second


def test_a_worker_without_the_object_is_sent_it_again():
    shared = {"name": "c", "scale": 5}
    items = list(range(10))
    with ProcessExecutor(2) as executor:
        assert executor.map(_read_shared, items, shared) == [("c", 5 * i) for i in items]
        forgot = executor.map(_forget_shared, items, shared)  # the worker now lacks it
        assert set(forgot) - {os.getpid()}  # a worker process ran some of them
        assert executor.map(_read_shared, items, shared) == [("c", 5 * i) for i in items]


def test_kept_workers_stop_when_idle(monkeypatch):
    import time

    from xlfuncs.core import _executor

    monkeypatch.setattr(_executor, "IDLE_SECONDS", 0.2)
    with ProcessExecutor(2) as executor:
        assert executor.map(_read_shared, [1, 2, 3], {"name": "d", "scale": 1}) == [
            ("d", 1), ("d", 2), ("d", 3)]
    processes = list(_executor._SESSION["pool"]._processes.values())
    assert processes and all(p.is_alive() for p in processes)
    deadline = time.monotonic() + 30
    while _executor._SESSION["pool"] is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _executor._SESSION["pool"] is None
    assert not any(p.is_alive() for p in processes)


def test_after_a_worker_is_killed_the_next_maps_work():
    """A map may fail when it finds a worker dead (which one does depends on when the pool
    notices); the one after it runs on new processes."""
    import os
    import signal

    from xlfuncs.core import _executor

    with ProcessExecutor(2) as executor:
        pids = set(executor.map(_pid, list(range(8)), None)) - {os.getpid()}
    (worker,) = pids
    os.kill(worker, signal.SIGKILL)
    with ProcessExecutor(2) as executor:
        try:
            executor.map(_read_shared, list(range(8)), {"name": "e", "scale": 1})
        except Exception as exc:  # the pool noticed the death during this map
            assert type(exc).__name__ == "BrokenProcessPool"
        assert executor.map(_read_shared, list(range(8)), {"name": "e", "scale": 1}) == [
            ("e", i) for i in range(8)]
    assert worker not in set(_executor._SESSION["pool"]._processes)


def test_a_program_that_used_workers_exits_quietly(tmp_path):
    """Worker processes kept for the session do not hold the program up or print at its exit."""
    import subprocess

    script = tmp_path / "uses_workers.py"
    script.write_text(
        "from xlfuncs.core import ProcessExecutor\n"
        "def f(shared, item):\n"
        "    return item * shared\n"
        "if __name__ == '__main__':\n"
        "    with ProcessExecutor(2) as ex:\n"
        "        print(ex.map(f, [1, 2, 3, 4], 3))\n", encoding="utf-8")
    got = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert (got.returncode, got.stdout, got.stderr) == (0, "[3, 6, 9, 12]\n", "")


def _slow(shared: int, item: int) -> int:
    import time

    time.sleep(0.1)
    return shared + item


def test_a_map_started_before_the_idle_stop_keeps_the_workers(monkeypatch):
    """The idle timer of the last run is off once the next run maps: its workers serve it."""
    from xlfuncs.core import _executor

    monkeypatch.setattr(_executor, "IDLE_SECONDS", 0.3)
    with ProcessExecutor(2) as executor:
        assert executor.map(_slow, [1, 2], 10) == [11, 12]
    kept = _executor._SESSION["pool"]
    with ProcessExecutor(2) as executor:  # runs about 0.6 s, past the first run's 0.3 s
        assert executor.map(_slow, list(range(12)), 100) == [100 + i for i in range(12)]
        assert _executor._SESSION["pool"] is kept
    _executor.shutdown_workers()
    assert _executor._SESSION["pool"] is None and _executor._SESSION["timer"] is None


def _nap(shared: float, item: int) -> int:
    time.sleep(shared)
    return item


def test_a_worker_process_has_its_next_item_queued_until_the_last_few(monkeypatch):
    """While many items are left, a worker's next item waits at it (no round trip idle);
    the last ones go one at a time to whichever process is free first."""
    from xlfuncs.core import _executor

    outstanding: list[int] = []  # the worker process's futures not done, at each submit
    real = _executor._session_pool

    class Counting:
        def __init__(self, pool):
            self.pool, self.futures = pool, []

        def submit(self, *args):
            fut = self.pool.submit(*args)
            self.futures.append(fut)
            outstanding.append(sum(not f.done() for f in self.futures))
            return fut

    def counted(processes):
        pool, reports = real(processes)
        return Counting(pool), reports

    items = list(range(16))
    with ProcessExecutor(2) as executor:
        executor.map(_nap, [0, 1, 2], 0.0)  # the worker process started and warm
        monkeypatch.setattr(_executor, "_session_pool", counted)
        assert executor.map(_nap, items, 0.03) == items
    assert max(outstanding) == 2  # one running, one queued
    assert min(outstanding) == 1  # and one at a time: the first, and the last few


def _halving(shared: float, item: tuple[int, bool], report=None) -> tuple[int, int]:
    """``units`` of ``shared`` seconds each; half of those left handed on when asked.

    With ``wait``, it first waits (up to 10 s) for a process to ask. Returns the
    process that ran it and the units it ran.
    """
    units, wait = item
    wanted = getattr(report, "wanted", None)
    given = False
    if wait:  # so a hand-over happens whatever the machine's delays
        stop = time.monotonic() + 10.0
        while not given and time.monotonic() < stop:
            given = wanted()
            time.sleep(0.005)
    left, ran = units, 0
    while left:
        if given or (wanted is not None and left >= 4 and wanted()):
            report.give((left // 2, False))
            left -= left // 2
            given = False
        time.sleep(shared)
        left -= 1
        ran += 1
        report(1)
    return os.getpid(), ran


@pytest.mark.parametrize("giver", ["a worker process", "this process"])
def test_an_item_hands_half_its_work_to_a_process_left_idle(giver):
    """A split map: the long item gives work to the process that ran out of it, the
    given parts' results follow the items', and each item is done once, after its parts."""
    long = 0 if giver == "a worker process" else 1  # this process runs the last item
    items = [(2, False), (2, False)]
    items[long] = (40, True)
    events: list[tuple] = []
    with ProcessExecutor(2) as executor:
        executor.map(_nap, [0, 1, 2], 0.0)  # the worker process started and warm
        out = executor.map(_halving, items, 0.02, done=lambda k: events.append(("done", k)),
                           tick=lambda k, n: events.append(("tick", k, n)), split=True)
        assert len(out) >= 3  # at least one part given
        assert sum(ran for _, ran in out) == 42  # every unit run once
        here = os.getpid()
        assert (out[long][0] == here) == (long == 1)  # workers take the first item
        # the first part given ran in the process that was idle
        assert (out[2][0] == here) == (giver == "a worker process")
        assert sorted(e[1] for e in events if e[0] == "done") == [0, 1]
        last_tick = max(j for j, e in enumerate(events) if e[0] == "tick" and e[1] == long)
        assert events.index(("done", long)) > last_tick  # done once every part has ended
        assert sum(e[2] for e in events if e[0] == "tick") <= 42
        # without split, nothing is handed on
        out = executor.map(_halving, [(40, False), (2, False)], 0.005, tick=lambda k, n: None)
        assert [ran for _, ran in out] == [40, 2]
    # nor in this process alone
    assert SerialExecutor().map(_halving, [(40, False), (2, False)], 0.0,
                                tick=lambda k, n: None, split=True) == [(os.getpid(), 40),
                                                                        (os.getpid(), 2)]
