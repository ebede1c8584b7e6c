"""The range of Python versions xlfuncs supports, from one file shipped in the package.

``xlfuncs/supported_pythons.txt`` holds two lines, ``oldest = 3.X`` and
``newest = 3.Y``: the CPython versions for which every runtime dependency
installs from binary wheels on Windows x64 and macOS (arm64, x86_64). It is
written by ``install/supported_pythons.py`` from the package index (and checked
against it in CI), read by the installers before any Python is chosen (they
parse the repository's copy), by ``xlfuncs doctor`` (the installed copy) and by
the tests that hold the README and ``requires-python`` to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["RANGE_FILE", "PythonRange", "parse_range", "render_range", "supported_pythons"]

#: The file's name inside the ``xlfuncs`` package.
RANGE_FILE = "supported_pythons.txt"
_LINE = re.compile(r"^\s*(oldest|newest)\s*=\s*(\d+)\.(\d+)\s*$")
_HEADER = """\
# The CPython versions xlfuncs supports: every runtime dependency installs from binary wheels
# on Windows x64, macOS arm64 and macOS x86_64 (nothing is compiled on an analyst's machine).
# Written by install/supported_pythons.py from the package index; read by the installers,
# xlfuncs doctor and the tests (README, requires-python). Do not edit by hand.
"""


@dataclass(frozen=True)
class PythonRange:
    """The supported versions: every ``(major, minor)`` from ``oldest`` to ``newest``."""

    oldest: tuple[int, int]
    newest: tuple[int, int]

    def __contains__(self, version: object) -> bool:
        """True for a ``(major, minor, ...)`` tuple (e.g. ``sys.version_info``) in the range."""
        return tuple(version[:2]) in self.versions()  # type: ignore[index]

    def versions(self) -> list[tuple[int, int]]:
        """Every supported ``(major, minor)``, oldest first."""
        major = self.oldest[0]
        return [(major, minor) for minor in range(self.oldest[1], self.newest[1] + 1)]

    def __str__(self) -> str:
        return f"{_dotted(self.oldest)} to {_dotted(self.newest)}"


def _dotted(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def parse_range(text: str) -> PythonRange:
    """Read the range file's text (comment lines start with ``#``).

    Raises
    ------
    ValueError
        When ``oldest`` or ``newest`` is missing, or they are out of order.

    """
    found: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            found[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    missing = [key for key in ("oldest", "newest") if key not in found]
    if missing:
        raise ValueError(f"{RANGE_FILE} has no '{missing[0]} = 3.X' line")
    if found["oldest"][0] != found["newest"][0] or found["oldest"] > found["newest"]:
        raise ValueError(f"{RANGE_FILE}: oldest {_dotted(found['oldest'])} is not at or below "
                         f"newest {_dotted(found['newest'])} of the same major version")
    return PythonRange(found["oldest"], found["newest"])


def render_range(supported: PythonRange) -> str:
    """The range file's text for ``supported`` (what :func:`parse_range` reads back)."""
    return (f"{_HEADER}oldest = {_dotted(supported.oldest)}\n"
            f"newest = {_dotted(supported.newest)}\n")


def supported_pythons() -> PythonRange:
    """The range shipped with this copy of xlfuncs."""
    return parse_range(resources.files("xlfuncs").joinpath(RANGE_FILE).read_text("utf-8"))
