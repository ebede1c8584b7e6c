"""Backtest estimates kept on disk between runs (``xlfuncs backtest --cache DIR``).

The estimation stage of a backtest (loadings, residual variances, factor
moments and the regime fit at every rebalance date) depends only on the data
and the estimation settings, not on the strategies. A second sweep over the
same data with other TEV budgets, gammas or limits can therefore reuse it and
only re-solve. The core keys each chunk of dates by a hash of the data and the
settings (:func:`xlfuncs.core._backtest.data_fingerprint`); this module stores
one file per key, in a sub-folder per xlfuncs version, so an upgrade never
reads estimates an older version made.

The files are Python pickles: keep the folder your own (loading a pickle runs
code named in it).
"""

from __future__ import annotations

import logging
import pickle
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from xlfuncs._files import atomic_write
from xlfuncs.errors import InputError

__all__ = ["DiskCache"]

_log = logging.getLogger(__name__)
_KEY = re.compile(r"[0-9a-f]{64}")


def _version() -> str:
    try:
        return version("xlfuncs")
    except PackageNotFoundError:  # running from a source tree
        return "dev"


class DiskCache:
    """Estimates of chunks of rebalance dates, one pickle file per key.

    Parameters
    ----------
    folder : str or Path
        Where the files go (created when needed); a sub-folder per xlfuncs version.

    """

    def __init__(self, folder: str | Path):
        root = Path(folder)
        if root.exists() and not root.is_dir():
            raise InputError(f"cache {folder} is a file, not a folder", "cache")
        self.folder = root / f"xlfuncs-{_version()}"

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.folder / f"{key}.pkl"

    def get(self, key: str) -> list | None:
        """The stored list for ``key``, or None (also when the file cannot be read)."""
        path = self._path(key)
        try:
            with path.open("rb") as fh:
                value = pickle.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            _log.warning("estimate cache: ignoring %s (%s)", path, exc)
            return None
        return value if isinstance(value, list) else None

    def put(self, key: str, value: list) -> None:
        """Store ``value`` under ``key`` (atomically; a failure to write is only logged)."""
        path = self._path(key)

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)

        try:
            atomic_write(path, write)
        except OSError as exc:
            _log.warning("estimate cache: could not write %s (%s)", path, exc)
