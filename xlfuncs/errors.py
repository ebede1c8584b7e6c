"""One exception tree for the whole package.

Every error a user can cause derives from :class:`XlfuncsError`; its message is
one short line that names the argument and the problem, ready to be shown in a
cell, a status bar or on stderr.
"""

from __future__ import annotations

__all__ = ["ConvergenceError", "InfeasibleError", "InputError", "XlfuncsError"]


class XlfuncsError(Exception):
    """Base class of every error xlfuncs raises on purpose.

    Parameters
    ----------
    message : str
        One line, naming the argument (when there is one) and the problem.
    argument : str, optional
        The name of the argument at fault, as the user sees it.

    """

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


class InputError(XlfuncsError, ValueError):
    """An argument is malformed: wrong shape, blank, text, out of range."""


class InfeasibleError(XlfuncsError):
    """The inputs are well formed but no answer satisfies them (message gives the range)."""


class ConvergenceError(XlfuncsError):
    """A numerical method did not reach its tolerance."""
