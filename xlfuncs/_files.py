"""Writing files: never half a file (temporary name, then rename), never a formula in a CSV."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["FORMULA_STARTS", "STALE_AFTER", "atomic_write", "csv_safe", "csv_text",
           "file_error_reason", "write_csv"]

#: Seconds after which a temporary file of a write is abandoned whoever wrote it (no
#: write takes that long); one whose writer is known to have died goes at once.
STALE_AFTER = 3600.0
# This machine, in temporary names: a process id means something on its own host only.
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was.
    A replaced file keeps its permissions; a new one gets the usual ones
    (``0666`` less the umask), not ``mkstemp``'s private ones. The data are
    flushed to disk before the rename.

    A process killed while writing (``kill -9``, a crash, power loss) cannot
    remove its temporary file: the next write of the same ``path`` does. The
    temporary file is named ``.NAME.HOST-PID.XXXXXXXX.SUFFIX`` (the writer's
    machine and process), so that write removes one whose process on this
    machine has ended, and any older than :data:`STALE_AFTER`, but never the
    file of a writer still at work, here or on another machine sharing the
    folder.

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
        _remove_stale(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_HOST}-{os.getpid()}.",
                                   suffix=target.suffix, dir=target.parent)
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


def _temporaries(target: Path) -> re.Pattern[str]:
    """The names of ``target``'s temporary files; older versions named them without HOST-PID."""
    return re.compile(rf"\.{re.escape(target.name)}\.(?:(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)\.)?"
                      rf"[a-z0-9_]{{8}}{re.escape(target.suffix)}")


def _remove_stale(target: Path) -> None:
    """Remove the temporary files of ``target`` left by writes that can no longer finish."""
    pattern = _temporaries(target)
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found is None:
            continue
        with suppress(OSError):  # gone already (another writer cleaned it), or not ours to remove
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER
            host, pid = found["host"], int(found["pid"] or 0)
            dead = host == _HOST and pid not in (0, os.getpid()) and not _running(pid)
            if (old or dead) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (a zombie counts: it is not reaped)."""
    if os.name == "nt":
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        kernel32.OpenProcess.restype = ctypes.c_void_p
        kernel32.GetExitCodeProcess.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong))
        kernel32.CloseHandle.argtypes = (ctypes.c_void_p,)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True  # cannot tell: keep the file
    return True


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
#: CSV injection list: = + - @ tab, carriage return, line feed), and, as a
#: precaution, the full-width = + - @ (U+FF1D, U+FF0B, U+FF0D, U+FF20), which East
#: Asian input settings can turn into the ASCII ones: no ticker or column name
#: starts with one, so the prefix costs nothing. ``|`` and ``%`` are not on the
#: list: DDE (``=cmd|...``) needs one of these first characters to run at all.
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


def csv_text(value: Any) -> Any:
    """A cell read back from a CSV file :func:`write_csv` wrote: its text without the ``'``.

    ``"'=1+2"`` is ``"=1+2"`` again, ``"'-5"`` is ``"-5"``; any other value is as it is.
    """
    if isinstance(value, str) and value[:1] == "'" and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
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
