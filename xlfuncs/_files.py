"""Writing files so that a failure never leaves half a file: temporary name, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "file_error_reason"]


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
