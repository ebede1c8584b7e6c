"""Sweeps: estimates shared by all strategies; the same results serial, in processes, on Dask.

The Dask tests start a real ``LocalCluster`` (worker processes, loopback only)
once for the module.
"""

from __future__ import annotations

import operator
import pickle
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlfuncs.core import (
    BacktestConfig,
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    _backtest,
    run_backtest,
)
from xlfuncs.core._executor import make_executor, shutdown_workers
from xlfuncs.data.estimate_cache import DiskCache
from xlfuncs.data.market import load_market
from xlfuncs.errors import InputError, XlfuncsError

distributed = pytest.importorskip("distributed")

END = "1996-12-31"


@pytest.fixture(scope="module")
def data():
    return load_market("sample:40", end=END)


def config(**kw) -> BacktestConfig:
    base = dict(tev=(0.02, 0.05), min_history=36, min_obs=24, beta_window=36, end=END)
    base.update(kw)
    return BacktestConfig(**base)


def assert_same(a, b) -> None:
    """Two results with the same numbers: weights, returns, statistics, ex-ante figures."""
    pd.testing.assert_frame_equal(a.returns, b.returns, check_exact=True)
    pd.testing.assert_frame_equal(a.weights, b.weights, check_exact=True)
    pd.testing.assert_frame_equal(a.stats, b.stats, check_exact=True)
    pd.testing.assert_frame_equal(a.ex_ante, b.ex_ante, check_exact=True)
    pd.testing.assert_frame_equal(a.failures, b.failures, check_exact=True)
    pd.testing.assert_frame_equal(a.exposures, b.exposures, check_exact=True)
    pd.testing.assert_series_equal(a.benchmark_stats, b.benchmark_stats, check_exact=True)


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       worker_dashboard_address=None)
    try:
        yield cluster
    finally:
        cluster.close()


# --------------------------------------------------------------------------- estimate once


def test_each_date_is_estimated_once_for_all_strategies(data, monkeypatch):
    calls = []
    real = _backtest._Estimator.__call__

    def counting(self, i):
        calls.append(i)
        return real(self, i)

    monkeypatch.setattr(_backtest._Estimator, "__call__", counting)
    res = run_backtest(data, config(tev=(0.02, 0.03, 0.04, 0.05)), executor=SerialExecutor())
    dates = _backtest._rebalance_dates(data, config())
    assert sorted(calls) == dates  # four strategies, one estimate per date
    assert len(res.strategies) == 4
    # A second sweep over the same data and estimation settings re-solves only.
    calls.clear()
    again = run_backtest(data, config(tev=(0.025,)), executor=SerialExecutor())
    assert calls == [] and len(again.returns) == len(res.returns)


def test_estimates_are_the_same_for_every_strategy_set(data):
    """A strategy's result does not depend on which others ran beside it."""
    alone = run_backtest(data, config(tev=(0.05,)), executor=SerialExecutor())
    _backtest.MEMORY_CACHE.clear()
    together = run_backtest(data, config(tev=(0.02, 0.05)), executor=SerialExecutor())
    np.testing.assert_array_equal(alone.returns["tev=0.05"], together.returns["tev=0.05"])


def test_the_disk_cache_serves_a_second_run_in_another_process(data, tmp_path, monkeypatch):
    cache = DiskCache(tmp_path / "cache")
    first = run_backtest(data, config(), executor=SerialExecutor(), cache=cache)
    files = list((tmp_path / "cache").rglob("*.pkl"))
    assert files, "the estimates were not stored"
    _backtest.MEMORY_CACHE.clear()  # as in a new process: only the disk has them

    def no_estimates(self, i):
        raise AssertionError("estimated again")

    monkeypatch.setattr(_backtest._Estimator, "__call__", no_estimates)
    second = run_backtest(data, config(), executor=SerialExecutor(), cache=cache)
    assert_same(first, second)
    # Other estimation settings are other keys: they are estimated, not served.
    monkeypatch.undo()
    other = run_backtest(data, config(beta_window=48), executor=SerialExecutor(), cache=cache)
    assert len(list((tmp_path / "cache").rglob("*.pkl"))) > len(files)
    assert not other.returns.equals(first.returns)


def test_a_broken_cache_file_is_estimated_again(data, tmp_path):
    cache = DiskCache(tmp_path)
    first = run_backtest(data, config(), executor=SerialExecutor(), cache=cache)
    for path in tmp_path.rglob("*.pkl"):
        path.write_bytes(b"not a pickle")
    _backtest.MEMORY_CACHE.clear()
    assert_same(first, run_backtest(data, config(), executor=SerialExecutor(), cache=cache))


# --------------------------------------------------------------------------- executors


@pytest.mark.parametrize(("model", "betas"), [("sample", "ols"), ("regime", "ols"),
                                             ("regime", "regime")])
def test_serial_and_process_sweeps_are_identical(data, model, betas):
    cfg = config(model=model, betas=betas, tev=(0.02, 0.03, 0.05))
    serial = run_backtest(data, cfg, executor=SerialExecutor())
    _backtest.MEMORY_CACHE.clear()
    with ProcessExecutor(2) as pool:
        parallel = run_backtest(data, cfg, executor=pool)
    assert_same(serial, parallel)


def _stage_parts(data, **settings):
    """A run's job, its strategies and its progress (three TEV budgets unless told)."""
    cfg = config(**{"tev": (0.02, 0.03, 0.05), **settings})
    base = _backtest._Job(data, cfg, tuple(_backtest._rebalance_dates(data, cfg)))
    names = list(cfg.specs(data.periods_per_year))
    tracker = _backtest._Progress(None, len(base.dates), len(names))
    return base, names, tracker


def test_a_worker_process_walks_with_the_estimates_it_made_itself(data):
    """With one worker process, the dates it estimated stay out of its group."""
    base, names, tracker = _stage_parts(data)
    _backtest.MEMORY_CACHE.clear()
    serial, _ = _backtest._estimate_all(base, SerialExecutor(), [], tracker)
    full = _backtest._walk(replace(base, estimates=serial), names)
    shipped = _backtest._Shipped(serial)
    shipped.skip = frozenset(base.dates[:10])
    sent = pickle.loads(pickle.dumps(shipped))
    assert set(sent) == set(base.dates[10:]) and set(shipped) == set(base.dates)
    _backtest._HELD[0] = None
    assert _backtest._walk_group(base, (tuple(names), sent, False)) == (None, None)
    _backtest._hold(base, base.dates[:10], [serial[i] for i in base.dates[:10]])
    books, bench = _backtest._walk_group(base, (tuple(names), sent, False))
    assert bench is None
    for name in names:
        assert books[name].returns == full[name].returns
        assert books[name].turnover == full[name].turnover

    _backtest._HELD[0] = None  # as a new run starts
    with ProcessExecutor(2) as pool:
        assert pool.map(operator.mul, [1, 2, 3], 2) == [2, 4, 6]  # the worker started
        estimates, computed = _backtest._estimate_all(base, pool, [], tracker)
        remote = frozenset(computed) - frozenset(_backtest._held(base))
        assert remote and len(remote) < len(computed)  # the worker estimated some dates
        # the worker process that estimated them has gone: its group is sent again, whole
        shutdown_workers()
        maps = []
        real = pool.map
        pool.map = lambda *a, **k: maps.append(a[1]) or real(*a, **k)
        books, _ = _backtest._decide_all(base, names, estimates, computed, pool, tracker)
    assert len(maps) == 2 and len(maps[1]) == 1  # the worker's group, sent again
    assert not getattr(maps[1][0][1], "skip", ())
    for name in names:
        assert books[name].returns == full[name].returns
        assert books[name].turnover == full[name].turnover


def _estimated(data, **settings):
    """A run's job, its strategies and every date's estimate (made here)."""
    base, names, tracker = _stage_parts(data, **settings)
    return base, names, _backtest._estimate_all(base, SerialExecutor(), [], tracker)[0]


class _HandOnce:
    """A walk's report that asks for work once, at its ``at``-th date; keeps it as sent."""

    def __init__(self, at: int):
        self.at, self.dates, self.given = at, 0, []

    def __call__(self, n: int) -> None:
        self.dates += 1

    def wanted(self) -> bool:
        return self.dates == self.at

    def give(self, item) -> None:
        self.given.append(pickle.loads(pickle.dumps(item)))


def assert_same_books(got: dict, want: dict) -> None:
    """Every field of every strategy's book equal, bit for bit."""
    assert set(got) == set(want)
    for name, book in want.items():
        for f in fields(book):
            a, b = getattr(got[name], f.name), getattr(book, f.name)
            if isinstance(b, _backtest._Decisions):
                assert a.dates == b.dates
                for part in ("counts", "columns", "weights"):
                    np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
            else:  # NaN equal to NaN (a first date's turnover), as values
                np.testing.assert_equal(a, b, err_msg=f"{name}: {f.name}")


@pytest.mark.parametrize("mode", ["tev", "anchor"])
def test_strategies_handed_on_mid_walk_end_with_the_same_books(data, mode):
    """Half a group's strategies go on elsewhere with their running state only (weights,
    warm start, cost due, gamma); the parts joined are the walk's books, bit for bit."""
    base, names, estimates = _estimated(data, tev=(0.02, 0.03, 0.05), mode=mode)
    job = replace(base, estimates=estimates)
    whole = _backtest._walk(job, names)
    report = _HandOnce(at=len(base.dates) // 3)
    first = _backtest._walk(job, names, report)
    [item] = report.given
    assert item[:3] == (tuple(names[1:]), None, False)  # half of them, no estimates sent
    assert len(pickle.dumps(item)) < 20_000  # the books so far stay with the giver
    for walk in item[3][1]:  # what goes with them: the running state
        kept = first[walk.name]
        assert not walk.book.decided and not walk.book.returns
        np.testing.assert_array_equal(walk.book.weights, kept.weights)
        assert (walk.book.gamma, walk.book.slope) == (kept.gamma, kept.slope)
        assert (walk.book.gamma is not None) == (mode == "anchor")
        assert walk.warm is not None
    _backtest._HELD[0] = None  # a process without the estimates: the item comes back
    assert _backtest._walk_group(base, item) == (None, item)
    _backtest._hold(base, base.dates, [estimates[i] for i in base.dates])
    rest, bench = _backtest._walk_group(base, item)
    assert bench is None and set(rest) == set(names[1:])
    if mode == "anchor":
        assert all(book.gammas for book in rest.values())
    assert_same_books(_backtest._joined([first, rest]), whole)


def test_a_walk_handed_on_checks_the_limits_no_more_often_than_one_walk(data, monkeypatch):
    """Policy limits are checked on a problem's first date: the part walked elsewhere does
    not check again those its strategies have solved (a later date could fail the check)."""
    from xlfuncs.core._optimise import ActiveOptimiser

    checks: list = []
    real = ActiveOptimiser._limit_problem
    monkeypatch.setattr(ActiveOptimiser, "_limit_problem",
                        lambda self, d, date: checks.append(date) or real(self, d, date))
    base, names, estimates = _estimated(data, tev=(0.02, 0.03, 0.05), industry_limit=0.1)
    job = replace(base, estimates=estimates)
    whole = _backtest._walk(job, names)
    once = set(checks)
    assert len(once) > 1  # the first date's, and each later date with a new universe size
    checks.clear()
    # handed on at a date that one walk does not check
    at = next(n for n in range(len(base.dates) // 3, len(base.dates))
              if data.dates[base.dates[n]] not in once)
    report = _HandOnce(at)
    first = _backtest._walk(job, names, report)
    _backtest._hold(base, base.dates, [estimates[i] for i in base.dates])
    rest, _ = _backtest._walk_group(base, report.given[0])
    assert set(checks) == once  # (after the hand-over both parts check a new size's date)
    assert_same_books(_backtest._joined([first, rest]), whole)


class _Slow:
    """A walk's report: 50 ms a date while the walk has all six strategies (until it hands
    some on), so a hand-over happens whatever the machine's delays."""

    def __init__(self, report):
        self.report = report

    def __call__(self, n: int) -> None:
        if n == 6:
            time.sleep(0.05)
        self.report(n)

    def wanted(self) -> bool:
        return self.report.wanted()

    def give(self, item) -> None:
        self.report.give(item)


def _slow_walk_group(job, group, tick):
    return _backtest._walk_group(job, group, _Slow(tick))


@pytest.mark.parametrize("giver", ["worker", "this process"])
def test_a_process_left_idle_takes_half_of_a_groups_walk(data, giver):
    """Through the process pool: the group gives half its strategies to the process with
    nothing left to run, and the sweep's books are those of one walk."""
    # six strategies: a walk of some length
    base, names, estimates = _estimated(data, tev=(0.02, 0.025, 0.03, 0.035, 0.04, 0.05))
    whole = _backtest._walk(replace(base, estimates=estimates), names)
    busy, idle = (tuple(names), dict(estimates), True), ((), dict(estimates), False)
    items = [busy, idle] if giver == "worker" else [idle, busy]  # the worker takes the first
    with ProcessExecutor(2) as pool:
        assert pool.map(operator.mul, [1, 2, 3], 2) == [2, 4, 6]  # the worker started
        walked = pool.map(_slow_walk_group, items, base, tick=lambda k, n: None, split=True)
    assert len(walked) > 2  # a part given
    assert set(walked[2][0]) == set(names[3:])
    books = _backtest._joined(got for got, _ in walked)
    assert_same_books(books, whole)


def test_a_runs_estimates_and_estimator_go_with_the_run(data):
    """Kept for the run's two stages only: nothing of it stays in the process after."""
    run_backtest(data, config(), executor=SerialExecutor())
    assert _backtest._HELD[0] is None
    base, _, _ = _stage_parts(data)
    _backtest._estimate_chunk(base, base.dates[:2])
    assert len(_backtest._held(base)) == 2
    del base  # a worker process drops a run's job when the next one's arrives
    assert _backtest._HELD[0] is None


def test_chunks_estimated_side_by_side_in_threads_keep_their_own_warm_starts(data):
    """Threads of one process (a Dask worker's) share the run's panels, not its regime fit."""
    cfg = config(model="regime")
    base = _backtest._Job(data, cfg, tuple(_backtest._rebalance_dates(data, cfg)))
    chunks = _backtest._chunks(base.dates, cfg, 1)[:4]
    alone = [_backtest._estimate_chunk(base, c) for c in chunks]
    with ThreadPoolExecutor(4) as threads:
        together = list(threads.map(lambda c: _backtest._estimate_chunk(base, c), chunks))
    fitted = 0
    for one, other in zip(alone, together, strict=True):
        for a, b in zip(one, other, strict=True):
            if isinstance(a, str):  # a date that failed, the same way
                assert a == b
                continue
            fitted += 1
            np.testing.assert_array_equal(a.factor_mean, b.factor_mean)
            np.testing.assert_array_equal(a.factor_cov, b.factor_cov)
    assert fitted > 10


def test_regime_fits_restart_at_fixed_chunks_whatever_the_executor(data, monkeypatch):
    """The regime chain of warm starts is cut at the same dates for every executor."""
    monkeypatch.setattr(_backtest, "REGIME_CHUNK", 5)
    dates = _backtest._rebalance_dates(data, config(model="regime"))
    chunks = _backtest._chunks(dates, config(model="regime"), workers=7)
    assert chunks == _backtest._chunks(dates, config(model="regime"), workers=1)
    assert [len(c) for c in chunks[:-1]] == [5] * (len(chunks) - 1)
    assert [i for c in chunks for i in c] == dates


def test_progress_counts_every_date_and_every_decision(data):
    seen = []
    cfg = config(tev=(0.02, 0.03, 0.05))
    run_backtest(data, cfg, executor=SerialExecutor(), progress=lambda d, t, s: seen.append((d, t)))
    n = len(_backtest._rebalance_dates(data, cfg))
    w = _backtest.ESTIMATE_UNITS["sample"]  # a date estimated costs w strategy-dates decided
    assert seen[-1] == (n * (w + 3), n * (w + 3))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) >= 2 * n  # a tick per date estimated and per date decided


def test_each_progress_unit_is_a_date_estimated_or_a_strategy_date_decided(data, monkeypatch):
    """Serial: at every callback the units done are exactly the work done so far."""
    work = {"estimated": 0, "decided": 0}

    def counted(cls, method, key):
        real = getattr(cls, method)

        def call(self, *args):
            out = real(self, *args)
            work[key] += 1
            return out

        monkeypatch.setattr(cls, method, call)

    counted(_backtest._Estimator, "__call__", "estimated")
    counted(_backtest._Strategy, "decide", "decided")
    seen = []
    cfg = config(tev=(0.02, 0.03, 0.05))
    run_backtest(data, cfg, executor=SerialExecutor(),
                 progress=lambda d, t, s: seen.append((d, t, s, dict(work))))
    n = len(_backtest._rebalance_dates(data, cfg))
    w = _backtest.ESTIMATE_UNITS["sample"]
    total = (w + 3) * n
    assert [(d, t) for d, t, _, _ in seen] == (
        [(w * k, total) for k in range(1, n + 1)]  # a date estimated at a time
        + [(w * n + 3 * k, total) for k in range(1, n + 1)])  # then a date of all three
    for d, _, text, done in seen:
        assert d == w * done["estimated"] + done["decided"]
        assert text == ("estimating" if done["decided"] == 0 else "optimising")


def test_worker_processes_report_progress_while_they_run(data):
    """Two workers: progress as dates are done, not only as tasks end.

    This process's tasks report every date; the worker process's reports are summed
    every ``REPORT_SECONDS`` (and what is left counted at its task's end).
    """
    seen = []
    cfg = config(tev=(0.02, 0.03, 0.05))
    with ProcessExecutor(2) as pool:
        run_backtest(data, cfg, executor=pool, progress=lambda d, t, s: seen.append((d, t, s)))
    n = len(_backtest._rebalance_dates(data, cfg))
    w = _backtest.ESTIMATE_UNITS["sample"]
    assert [t for _, t, _ in seen] == [(w + 3) * n] * len(seen)
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == (w + 3) * n
    steps = [(s, d - before) for (d, _, s), before in zip(seen, [0, *done[:-1]], strict=True)]
    chunks = _backtest._chunks(_backtest._rebalance_dates(data, cfg), cfg, 2)
    # groups of strategies (0.02, 0.05) and (0.03): more steps than tasks in each stage
    assert sum(s == "estimating" for s, _ in steps) > len(chunks)
    assert sum(s == "optimising" for s, _ in steps) > 2
    assert {d for s, d in steps if s == "optimising"} & {1, 2}  # a date of a group


def test_a_date_estimated_weighs_what_its_model_costs(monkeypatch):
    """The weight of the run's model (``ewma:6`` is ewma), not the sample weight for all."""
    # three different weights, so that a model read as another could not pass
    monkeypatch.setattr(_backtest, "ESTIMATE_UNITS", {"sample": 3, "ewma": 5, "regime": 31})
    units = _backtest.ESTIMATE_UNITS
    assert units["regime"] != units["sample"]  # else this test could not tell them apart
    for model, w in (("sample", units["sample"]), ("ewma:6", units["ewma"]),
                     ("regime", units["regime"])):
        seen: list[tuple[int, int]] = []
        tracker = _backtest._Progress(lambda d, t, s, seen=seen: seen.append((d, t)), 5, 3,
                                      model)
        tracker.estimated(1)
        tracker.decided(3)
        assert seen == [(w, 5 * (w + 3)), (w + 3, 5 * (w + 3))]


def test_a_stage_counts_each_unit_once():
    """Reports and task ends add up to the total, whichever arrives; nothing twice."""
    seen = []
    tracker = _backtest._Progress(lambda d, t, s: seen.append(d), n_dates=5, n_strategies=1)
    assert tracker.total == 5 * (_backtest.ESTIMATE_UNITS["sample"] + 1)
    stage = tracker.stage("optimising", [5, 5])
    stage.tick(0, 2)
    stage.finished(0)  # the 3 units not reported
    stage.tick(0, 1)  # a late report of an ended task
    stage.finished(1)  # an executor that reports nothing (Dask)
    stage.tick(1, 9)
    assert seen == [2, 5, 10]


def test_make_executor_follows_the_settings():
    assert isinstance(make_executor(1), SerialExecutor)
    assert isinstance(make_executor(4, tasks=1), SerialExecutor)
    pool = make_executor(3)
    assert isinstance(pool, ProcessExecutor) and pool.workers == 3


@pytest.mark.parametrize("address", ["localhost:8786", "http://x:1", "tcp://", "8786"])
def test_a_scheduler_address_is_checked_before_any_work(address):
    with pytest.raises(InputError, match="scheduler must be a Dask scheduler address"):
        config(scheduler=address)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_one_error_before_any_work(monkeypatch):
    from xlfuncs.core import _executor

    monkeypatch.setattr(_executor, "CONNECT_TIMEOUT", 2.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(XlfuncsError, match=rf"cannot reach the Dask scheduler at {address} "
                                           r"within 2 s"):
        DaskExecutor(address)


# --------------------------------------------------------------------------- Dask


def test_a_dask_sweep_equals_the_serial_one(data, cluster):
    cfg = config(model="regime", tev=(0.02, 0.03, 0.05))
    serial = run_backtest(data, cfg, executor=SerialExecutor())
    _backtest.MEMORY_CACHE.clear()
    with DaskExecutor(cluster.scheduler_address) as dask:
        assert dask.workers == 2
        on_dask = run_backtest(data, cfg, executor=dask)
    assert_same(serial, on_dask)


class _KillOnce(distributed.WorkerPlugin):
    """A worker plugin: the first task to start executing kills its worker process."""

    def __init__(self, flag: str):
        self.flag = flag

    def transition(self, key, start, finish, **kwargs):
        import os

        if finish == "executing" and not os.path.exists(self.flag):
            with open(self.flag, "w") as fh:
                fh.write(str(key))
            os._exit(1)


def test_a_worker_killed_mid_run_is_retried_and_changes_nothing(data, cluster, tmp_path):
    cfg = config(tev=(0.02, 0.05))
    serial = run_backtest(data, cfg, executor=SerialExecutor())
    _backtest.MEMORY_CACHE.clear()
    flag = tmp_path / "killed"
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        client.register_plugin(_KillOnce(str(flag)), name="kill-once")
        try:
            with DaskExecutor(cluster.scheduler_address) as dask:
                on_dask = run_backtest(data, cfg, executor=dask)
        finally:
            client.unregister_worker_plugin("kill-once")
        client.wait_for_workers(2, timeout=60)
    assert flag.exists(), "no worker was killed"
    assert_same(serial, on_dask)


def test_the_cli_on_dask_writes_the_same_files_as_locally(cluster, tmp_path):
    common = ["backtest", "--data", "sample:40", "--end", END, "--tev", "0.02,0.05",
              "--min-history", "36", "--quiet"]
    local = subprocess.run([sys.executable, "-m", "xlfuncs.cli", *common, "--workers", "1",
                            "--out", str(tmp_path / "local")], capture_output=True, text=True,
                           check=False, stdin=subprocess.DEVNULL)
    assert local.returncode == 0, local.stderr
    remote = subprocess.run([sys.executable, "-m", "xlfuncs.cli", *common, "--scheduler",
                             cluster.scheduler_address, "--out", str(tmp_path / "dask")],
                            capture_output=True, text=True, check=False,
                            stdin=subprocess.DEVNULL)
    assert remote.returncode == 0, remote.stderr
    assert f"on the Dask cluster at {cluster.scheduler_address}" in remote.stdout
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "dask").iterdir())
    for name in names:
        if name.endswith(".csv"):
            assert (tmp_path / "local" / name).read_bytes() == \
                (tmp_path / "dask" / name).read_bytes(), name


def test_the_cli_names_an_unreachable_scheduler_before_reading_data(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    out = subprocess.run([sys.executable, "-m", "xlfuncs.cli", "backtest", "--data",
                          str(tmp_path / "missing.csv"), "--scheduler", address, "--quiet"],
                         capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
                         timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot reach the Dask scheduler at {address}" in lines[0]
    assert "missing.csv" not in out.stderr  # the data were not read yet


def test_readme_shows_dasks_own_commands():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "dask scheduler" in text and "dask worker tcp://" in text
    assert "--scheduler tcp://" in text and 'pip install "xlfuncs[cluster]"' in text


def test_result_files_written_beside_a_worker_process_are_the_same(tmp_path):
    """With worker processes, the regime statistics are made in one while this process
    writes the other files: the same files, byte for byte, listed in the same order."""
    from xlfuncs.report import write_results

    longer = load_market("sample:40")  # history enough for the regime statistics
    result = run_backtest(longer, BacktestConfig(tev=(0.02, 0.05)), executor=SerialExecutor())
    alone = write_results(result, tmp_path / "alone", longer.factors)
    with ProcessExecutor(2) as pool:
        maps = []
        real = pool.map
        pool.map = lambda fn, items, *a, **k: maps.append(items) or real(fn, items, *a, **k)
        beside = write_results(result, tmp_path / "beside", longer.factors, pool)
    [(first, second)] = maps  # one map: the statistics first (a worker takes the first item)
    assert first[0].__name__ == "_crisis" and second[0].__name__ == "_write_files"
    sent = pickle.dumps(first)  # what a worker is sent for them: the returns, not the weights
    assert len(sent) < len(pickle.dumps(result.weights)) / 10
    assert [p.name for p in beside] == [p.name for p in alone]
    assert {"windows.csv", "regimes.csv", "notes.txt", "returns.csv"} <= {p.name for p in alone}
    for a, b in zip(alone, beside, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
