"""Writing files: never half a file (temporary name, then rename), never a formula in a CSV."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["FORMULA_STARTS", "atomic_write", "csv_safe", "file_error_reason", "write_csv"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was.
    A replaced file keeps its permissions; a new one gets the usual ones
    (``0666`` less the umask), not ``mkstemp``'s private ones. The data are
    flushed to disk before the rename.

    Raises
    ------
    OSError
        The folder cannot be created or written, the disk is full, ``path`` is
        a folder or is held open by another program (Excel on Windows): the
        error's ``filename`` is ``path``, never the temporary file's name.

    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix,
                                   dir=target.parent)
    except OSError as exc:
        raise _about(exc, target) from exc
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if target.exists():
            mode = target.stat().st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _about(exc, target) from exc
        raise
    return target


def _about(exc: OSError, target: Path) -> OSError:
    """``exc`` naming ``target`` (not a temporary file); the same subclass (errno kept)."""
    if exc.errno is None or exc.filename == str(target):
        return exc
    return OSError(exc.errno, exc.strerror, str(target))


def file_error_reason(exc: OSError) -> str:
    """Why an operation on a file failed, in words: ``permission denied``."""
    if isinstance(exc, IsADirectoryError):
        return "it is a folder, not a file"
    text = (exc.strerror or str(exc) or type(exc).__name__).strip().rstrip(".")
    return text[:1].lower() + text[1:]


# --------------------------------------------------------------------------- CSV

#: First characters that make a spreadsheet read a text cell as a formula (OWASP's
#: CSV injection list: = + - @ tab, carriage return, line feed), and the full-width
#: = + - @ (U+FF1D, U+FF0B, U+FF0D, U+FF20), which some East Asian set-ups turn into
#: the ASCII ones; no ticker or column name starts with one, so the prefix costs
#: nothing there. ``|`` and ``%`` are not on the list: DDE (``=cmd|...``) needs
#: one of these first characters to run at all.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d",
                  "\uff20")


def csv_safe(value: Any) -> Any:
    """A text cell with a leading ``'`` when it begins like a formula; any other value as it is.

    Numbers stay numbers (``-5.0`` is written as ``-5.0``); only text is changed
    (``"-5"`` becomes ``"'-5"``, ``"=HYPERLINK(...)"`` becomes ``"'=HYPERLINK(...)"``),
    so the cell shows the text and runs nothing.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _is_text(dtype: Any) -> bool:
    """Whether cells of this dtype can hold text (object, string or categorical)."""
    return pd.api.types.is_object_dtype(dtype) or isinstance(
        dtype, pd.StringDtype | pd.CategoricalDtype)


def _safe_labels(index: pd.Index) -> pd.Index:
    """Column names or index labels (and their names) through :func:`csv_safe`."""
    if isinstance(index, pd.MultiIndex):
        return index.set_levels([_safe_labels(level) for level in index.levels]).set_names(
            [csv_safe(n) for n in index.names])
    labels = index.map(csv_safe) if _is_text(index.dtype) else index
    return labels.rename(csv_safe(index.name))


def write_csv(frame: pd.DataFrame, path: str | os.PathLike, *, index: bool = True,
              **options: Any) -> Path:
    """Write ``frame`` as CSV with :func:`atomic_write`, safe to open in a spreadsheet.

    Every CSV file xlfuncs writes goes through here. Text cells (values, column
    names, index labels) that begin like a formula get a leading ``'``
    (:func:`csv_safe`), and every text cell is quoted, so a ``;`` inside a text
    cannot start a new cell where Excel splits CSV files at semicolons (many
    European settings). Numbers are written as numbers, unquoted.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; not changed.
    path : str or os.PathLike
        The file to write.
    index : bool
        Write the index as the first column.
    **options
        More arguments of :meth:`pandas.DataFrame.to_csv` (``date_format``...).

    Returns
    -------
    pathlib.Path
        ``path``.

    """
    safe = frame.copy()
    for j in range(safe.shape[1]):
        column = safe.iloc[:, j]
        if _is_text(column.dtype):
            safe.isetitem(j, column.map(csv_safe))
    safe.columns = _safe_labels(safe.columns)
    safe.index = _safe_labels(safe.index)
    return atomic_write(path, lambda tmp: safe.to_csv(tmp, index=index,
                                                      quoting=csv.QUOTE_NONNUMERIC, **options))
