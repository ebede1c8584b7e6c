"""xlfuncs: Excel worksheet functions and macros (xlwings) for a student-managed fund.

The mathematics lives in :mod:`xlfuncs.core`, the outside world in
:mod:`xlfuncs.data`, the Excel layer in :mod:`xlfuncs.excel`,
:mod:`xlfuncs.udfs` and :mod:`xlfuncs.macros`, the command line in
:mod:`xlfuncs.cli`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xlfuncs")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
