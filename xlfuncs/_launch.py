"""The ``xlfuncs`` command: starts the workers' fork server first, then runs the CLI.

``xlfuncs backtest`` uses local worker processes unless told ``--workers 1`` or a
``--scheduler``. Its fork server (:mod:`xlfuncs._forkserver`) takes most of a second
to start; started here, before :mod:`xlfuncs.cli` imports numpy and pandas, it is
ready about when the data are, instead of a second into the sweep. A run that turns
out to need no workers (``workers = 1`` in a config file) leaves the server idle
until the command ends.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main", "wants_workers"]


def _value(argv: Sequence[str], flag: str) -> str | None:
    for k, arg in enumerate(argv):
        if arg == flag and k + 1 < len(argv):
            return argv[k + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def wants_workers(argv: Sequence[str]) -> bool:
    """Whether these arguments run a backtest that may use local worker processes."""
    if not argv or argv[0] != "backtest" or "-h" in argv or "--help" in argv:
        return False
    if _value(argv, "--scheduler") is not None:
        return False
    workers = _value(argv, "--workers")
    return workers is None or workers.strip() != "1"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xlfuncs`` command; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_workers(args):
        try:
            from xlfuncs._forkserver import start_fork_server

            start_fork_server()
        except (OSError, ValueError):  # not early, then: the executor tries again when it
            # is made, and a failure there is the command's one-line error
            pass
    from xlfuncs.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":  # python -m xlfuncs._launch: the xlfuncs command itself
    raise SystemExit(main())
