"""The ``xlfuncs`` command's entry point: the workers' fork server starts before numpy loads."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import pytest

from xlfuncs._launch import wants_workers


@pytest.mark.parametrize(("argv", "expected"), [
    (["backtest"], True),
    (["backtest", "--tev", "0.02,0.04"], True),
    (["backtest", "--workers", "2"], True),
    (["backtest", "--workers=4"], True),
    (["backtest", "--workers", "1"], False),
    (["backtest", "--workers=1"], False),
    (["backtest", "--scheduler", "tcp://10.0.0.5:8786"], False),
    (["backtest", "--help"], False),
    (["demo"], False),
    (["implied-cov", "--workers", "2"], False),
    ([], False),
])
def test_which_commands_start_the_fork_server(argv, expected):
    assert wants_workers(argv) is expected


PROBE = """
import sys, types
from multiprocessing import forkserver
import xlfuncs._launch as launch

def fake_main(args):
    server = forkserver._forkserver
    started = server._forkserver_pid is not None
    print(started, "numpy" in sys.modules, server._preload_modules if started else "-")
    return 0

sys.modules["xlfuncs.cli"] = types.SimpleNamespace(main=fake_main)
raise SystemExit(launch.main(sys.argv[1:]))
"""


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(),
                    reason="no fork server on this platform (workers are spawned)")
def test_a_backtest_starts_the_fork_server_before_numpy_is_imported():
    def probe(*argv: str) -> str:
        got = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                             text=True, timeout=120)
        assert got.returncode == 0, got.stderr
        return got.stdout.strip()

    assert probe("backtest", "--tev", "0.02") == "True False ['xlfuncs.core._warmup']"
    assert probe("backtest", "--workers", "1") == "False False -"
