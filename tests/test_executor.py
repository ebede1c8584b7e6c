"""The backtest's executors: every error a user can cause, by its text and argument."""

from __future__ import annotations

import socket
import sys

import pytest
from errors_check import raises_exactly

from xlfuncs.core._executor import DaskExecutor, ProcessExecutor, SerialExecutor, check_scheduler
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
    """``item`` units of work, each reported as it is done."""
    for _ in range(item):
        report(1)
    return shared * item


@pytest.mark.parametrize("executor", [SerialExecutor(), ProcessExecutor(2)],
                         ids=["serial", "processes"])
def test_reports_of_a_running_item_reach_the_caller_before_its_end(executor):
    items = [3, 5, 2, 4]
    events: list[tuple] = []
    out = executor.map(_count_up, items, 10, done=lambda k: events.append(("done", k)),
                       tick=lambda k, n: events.append(("tick", k, n)))
    assert out == [30, 50, 20, 40]
    for k, units in enumerate(items):
        at = [j for j, e in enumerate(events) if e[0] == "tick" and e[1] == k]
        assert [events[j][2] for j in at] == [1] * units
        assert max(at) < events.index(("done", k))  # every report before its end
    # without a tick the function is called with (shared, item) only, as before
    assert executor.map(int.__mul__, items, 2) == [6, 10, 4, 8]
