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


class ConfigError(XlfuncsError):
    """The configuration (environment variables or user config file) is missing or wrong.

    The message says which setting is at fault and how to set it; it never
    contains the API token.
    """


class ApiError(XlfuncsError):
    """A call to a web API (the fund holdings API) failed.

    Parameters
    ----------
    message : str
        One line saying what failed; at most :attr:`EXCERPT` characters of the
        response body are quoted in it.
    status : int, optional
        The HTTP status of the answer, ``None`` when there was no answer.
    body : str, optional
        The full response body (the message only quotes its start).

    """

    EXCERPT = 200

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = body

    @classmethod
    def excerpt(cls, body: str | bytes | None) -> str:
        """The start of a response body on one line, at most :attr:`EXCERPT` characters.

        Parameters
        ----------
        body : str or bytes or None
            A response body.

        Returns
        -------
        str
            Whitespace collapsed, cut with ``...`` when longer; ``''`` for no body.

        """
        if body is None:
            return ""
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        text = " ".join(body.split())
        if len(text) > cls.EXCERPT:
            text = text[: cls.EXCERPT - 3] + "..."
        return text


class ApiStatusError(ApiError):
    """The API answered with an HTTP error status (4xx or 5xx)."""


class ApiTimeoutError(ApiError):
    """The API did not accept the connection or did not answer within the timeout."""


class ApiConnectionError(ApiError):
    """The API could not be reached (connection refused, unknown host, TLS failure)."""


class ApiResponseError(ApiError):
    """The API answered, but not with what the contract promises (the message names the field)."""


__all__ += [
    "ApiConnectionError",
    "ApiError",
    "ApiResponseError",
    "ApiStatusError",
    "ApiTimeoutError",
    "ConfigError",
]
