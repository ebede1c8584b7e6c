"""The backtest's executors: every error a user can cause, by its text and argument."""

from __future__ import annotations

import socket
import sys

import pytest
from errors_check import raises_exactly

from xlfuncs.core._executor import DaskExecutor, ProcessExecutor, check_scheduler
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
