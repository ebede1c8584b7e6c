"""The user's set-up steps, written once: the sheets, the Help button and the README say them.

:data:`SETUP` is what the ImpliedCov sheet's "How to use" shows, what the
ribbon's Help button lists, and (a test checks) what the README's install
section repeats word for word. Change the steps here, rebuild the workbooks and
copy the lines into the README.
"""

from __future__ import annotations

__all__ = ["SETUP"]

#: One line each, in order; short enough for a sheet row and a message box.
SETUP: tuple[str, ...] = (
    "Install once, with Excel closed: install\\install.cmd on Windows, install/install.sh on "
    "a Mac. It sets up Python, xlfuncs, xlwings and the two add-ins.",
    "Open a workbook and click Enable Content: the xlfuncs functions get their help in the "
    "Insert Function dialog (fx) and recalculate through Python.",
    "Until then the cells show the results stored in the file.",
    "Your own workbook: save it as .xlsm, then click Import functions on the xlfuncs tab.",
    "A problem: click Doctor on the xlfuncs tab (or run xlfuncs doctor), which names the fix. "
    "After upgrading xlfuncs: xlwings tab, Restart UDF Server.",
    "On a Mac classic xlwings runs no worksheet functions; the xlfuncs command line gives "
    "the same numbers.",
)
