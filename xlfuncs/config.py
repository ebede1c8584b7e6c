r"""Where the fund holdings API lives, and how to talk to it: environment, then user file.

Settings come from, highest priority first:

1. environment variables ``XLFUNCS_API_URL``, ``XLFUNCS_FUND``,
   ``XLFUNCS_API_TOKEN``, ``XLFUNCS_TIMEOUT``, ``XLFUNCS_DEADLINE`` (an empty
   variable counts as unset; a single number in ``XLFUNCS_TIMEOUT`` replaces only
   the read timeout, so a connect timeout from the file is kept);
2. the ``[api]`` table of a TOML file: the file named by ``XLFUNCS_CONFIG``, else
   :func:`default_config_path` (``~/.xlfuncs/config.toml``, on Windows
   ``%APPDATA%\xlfuncs\config.toml``)::

       [api]
       base_url = "https://fund-api.example.edu"
       fund = "undergrad"        # the fund used when a call names none
       token = "..."             # optional bearer token
       timeout = [3.05, 30]      # seconds: [connect, read], "3.05,30", or one number (read)
       deadline = 60             # seconds for a whole fetch: every attempt, wait and download
       retries = 3               # optional
       backoff = 0.5             # optional, seconds

The base URL and the token are configuration, never stored in a workbook. The
token is never shown: :class:`Config`'s repr hides it and no error message
quotes it. This module imports neither ``requests`` nor ``xlwings``.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from xlfuncs.errors import ConfigError

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_DEADLINE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "ENV_CONFIG",
    "ENV_DEADLINE",
    "ENV_FUND",
    "ENV_TIMEOUT",
    "ENV_TOKEN",
    "ENV_URL",
    "MAX_SECONDS",
    "Config",
    "default_config_path",
    "load_config",
]

ENV_URL = "XLFUNCS_API_URL"
ENV_FUND = "XLFUNCS_FUND"
ENV_TOKEN = "XLFUNCS_API_TOKEN"
ENV_TIMEOUT = "XLFUNCS_TIMEOUT"
ENV_DEADLINE = "XLFUNCS_DEADLINE"
ENV_CONFIG = "XLFUNCS_CONFIG"

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 30.0)  # (connect, read) seconds
DEFAULT_DEADLINE = 60.0  # seconds for one whole fetch (attempts, waits, download)
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
MAX_SECONDS = 300.0  # no timeout or deadline above this: a macro must not hang Excel

_SECTION = "api"
_KEYS = ("base_url", "fund", "token", "timeout", "deadline", "retries", "backoff")


@dataclass(frozen=True)
class Config:
    """How to reach the fund holdings API.

    Parameters
    ----------
    base_url : str
        ``http://`` or ``https://`` URL the endpoints hang from (a trailing
        slash is removed). It may not carry a user name or password.
    fund : str, optional
        The fund used when a call names none (``undergrad``, ``quant``, ...).
    token : str, optional
        Bearer token sent as ``Authorization: Bearer ...``; hidden in the repr.
    timeout : tuple of float
        ``(connect, read)`` timeout in seconds for every request (each at most
        :data:`MAX_SECONDS`).
    deadline : float
        Seconds one fetch may take in all: every attempt, the waits between
        them and the download of the answer (at most :data:`MAX_SECONDS`).
    retries : int
        How many times a request is retried after a connection failure, a
        dropped connection or a 429/502/503/504 answer.
    backoff : float
        urllib3 backoff factor in seconds between retries (a ``Retry-After``
        header takes precedence).

    Raises
    ------
    ConfigError
        When a value is malformed (the message names the field).

    """

    base_url: str
    fund: str | None = None
    token: str | None = None
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    deadline: float = DEFAULT_DEADLINE
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once
        set_(self, "base_url", _check_url(self.base_url, "base_url"))
        set_(self, "fund", _check_fund(self.fund, "fund"))
        set_(self, "token", _check_token(self.token, "token"))
        set_(self, "timeout", _check_timeout(self.timeout, "timeout"))
        set_(self, "deadline", _check_deadline(self.deadline, "deadline"))
        set_(self, "retries", _check_retries(self.retries, "retries"))
        set_(self, "backoff", _check_backoff(self.backoff, "backoff"))

    def __repr__(self) -> str:
        token = "None" if self.token is None else "'***'"
        return (
            f"Config(base_url={self.base_url!r}, fund={self.fund!r}, token={token}, "
            f"timeout={self.timeout!r}, deadline={self.deadline!r}, retries={self.retries!r}, "
            f"backoff={self.backoff!r})"
        )

    __str__ = __repr__


def default_config_path(
    env: Mapping[str, str] | None = None, *, windows: bool | None = None
) -> Path:
    r"""The user config file: ``XLFUNCS_CONFIG``, else the per-user default.

    Parameters
    ----------
    env : mapping, optional
        Environment variables (default ``os.environ``).
    windows : bool, optional
        Use the Windows location (default: when running on Windows).

    Returns
    -------
    pathlib.Path
        ``$XLFUNCS_CONFIG`` when set; else ``%APPDATA%\xlfuncs\config.toml`` on
        Windows and ``~/.xlfuncs/config.toml`` elsewhere. The file need not exist.

    """
    env = os.environ if env is None else env
    windows = os.name == "nt" if windows is None else windows
    named = env.get(ENV_CONFIG, "").strip()
    if named:
        return Path(named).expanduser()
    if windows:
        appdata = env.get("APPDATA", "").strip()
        base = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
        return base / "xlfuncs" / "config.toml"
    home = env.get("HOME", "").strip()
    return (Path(home) if home else Path.home()) / ".xlfuncs" / "config.toml"


def load_config(env: Mapping[str, str] | None = None, path: str | os.PathLike | None = None
                ) -> Config:
    """The configuration: environment variables over the user config file.

    Parameters
    ----------
    env : mapping, optional
        Environment variables (default ``os.environ``).
    path : path-like, optional
        The TOML file to read (default :func:`default_config_path`). A file
        named explicitly, here or by ``XLFUNCS_CONFIG``, must exist; the
        default file may be absent.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        No base URL anywhere (the message says how to set one); the file is not
        valid TOML; a value has the wrong type or form (the message names the
        file, or the environment variable, and the key).

    """
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get(ENV_CONFIG, "").strip())
    file = Path(path).expanduser() if path is not None else default_config_path(env)
    values = _read_file(file, must_exist=explicit)

    where = f"{file} [{_SECTION}]"
    settings: dict[str, object] = {}
    for key, check in (
        ("base_url", _check_url),
        ("fund", _check_fund),
        ("token", _check_token),
        ("timeout", _check_timeout),
        ("deadline", _check_deadline),
        ("retries", _check_retries),
        ("backoff", _check_backoff),
    ):
        if key in values:
            settings[key] = check(values[key], f"{where} {key}")

    for var, key, check in (
        (ENV_URL, "base_url", _check_url),
        (ENV_FUND, "fund", _check_fund),
        (ENV_TOKEN, "token", _check_token),
        (ENV_DEADLINE, "deadline", _parse_deadline_env),
    ):
        text = env.get(var, "").strip()
        if text:
            settings[key] = check(text, var)
    text = env.get(ENV_TIMEOUT, "").strip()
    if text:
        connect, read = _parse_timeout_env(text, ENV_TIMEOUT)
        if "," not in text and "timeout" in settings:  # one number: the read timeout only
            connect = settings["timeout"][0]  # type: ignore[index]
        settings["timeout"] = (connect, read)

    if "base_url" not in settings:
        raise ConfigError(
            f"no fund API URL is configured: set the {ENV_URL} environment variable "
            f'(e.g. {ENV_URL}=https://fund-api.example.edu) or add base_url = "https://..." '
            f"under [{_SECTION}] in {file}",
            "base_url",
        )
    return Config(**settings)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- helpers


def _read_file(file: Path, *, must_exist: bool) -> dict[str, object]:
    """The ``[api]`` table of ``file`` (empty when the default file is absent)."""
    if not file.exists():
        if must_exist:
            raise ConfigError(
                f"the config file {file} does not exist (named by {ENV_CONFIG} or the caller)",
                "config",
            )
        return {}
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}", "config") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file} is not valid TOML: it is not UTF-8 text", "config") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {file}: {exc.strerror}",
                          "config") from None
    section = data.get(_SECTION, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{file}: {_SECTION} must be a table ([{_SECTION}]), "
                          f"not {_kind(section)}", _SECTION)
    unknown = [k for k in section if k not in _KEYS]
    if unknown:
        raise ConfigError(
            f"{file} [{_SECTION}] has an unknown key {unknown[0]!r}; "
            f"the keys are {', '.join(_KEYS)}",
            unknown[0],
        )
    return section


def _kind(value: object) -> str:
    """What a value is, in words, for messages (never used on the token's value)."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"text {value[:60]!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _check_url(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be text (an http:// or https:// URL), "
                          f"not {_kind(value)}", "base_url")
    url = value.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ConfigError(f"{where} must not contain a space or a control character "
                          f"(write a space as %20), not {url[:80]!r}", "base_url")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{where} must be an http:// or https:// URL such as "
            f"https://fund-api.example.edu, not {url[:80]!r}",
            "base_url",
        )
    del port
    if parts.username is not None or parts.password is not None:
        # the URL appears in messages and logs: credentials belong in the token
        raise ConfigError(
            f"{where} must not contain a user name or password; "
            f"set the token with {ENV_TOKEN} or token under [{_SECTION}]",
            "base_url",
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{where} must not have a ?query or #fragment", "base_url")
    return url.rstrip("/")


def _check_fund(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a fund name such as 'undergrad', "
                          f"not {_kind(value)}", "fund")
    return value.strip()


def _check_token(value: object, where: str) -> str | None:
    # never quote the value: it is (or was meant to be) a secret
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be text", "token")
    token = value.strip()
    if not token:
        return None
    if not token.isascii() or any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ConfigError(
            f"{where} contains a space, a control or a non-ASCII character; "
            "a bearer token is one word of printable ASCII",
            "token",
        )
    return token


def _positive(value: object, where: str, what: str, key: str = "timeout") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be {what}, not {_kind(value)}", key)
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond any float
        seconds = math.inf
    if math.isnan(seconds) or seconds <= 0:
        raise ConfigError(f"{where} must be {what} greater than 0, not {_kind_number(value)}",
                          key)
    if seconds > MAX_SECONDS:
        raise ConfigError(f"{where} must be at most {MAX_SECONDS:g} seconds (a refresh must "
                          f"not hang Excel), not {_kind_number(value)}", key)
    return seconds


def _kind_number(value: object) -> str:
    """A number for a message, short even when it is huge."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        if value.bit_length() > 10_000:  # str() refuses more than 4300 digits
            return "a number with thousands of digits"
        return f"a number with {len(str(abs(value)))} digits"
    return repr(value)


def _check_timeout(value: object, where: str) -> tuple[float, float]:
    what = "a number of seconds or [connect, read]"
    if isinstance(value, str):  # "30" or "3,30", as XLFUNCS_TIMEOUT takes it
        parts = [p.strip() for p in value.split(",")]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise ConfigError(f"{where} must be {what}, not {_kind(value)}", "timeout") from None
        value = numbers[0] if len(numbers) == 1 else numbers
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ConfigError(f"{where} must be {what}; the array has {len(value)} items",
                              "timeout")
        return (_positive(value[0], f"{where} (connect)", "a number of seconds"),
                _positive(value[1], f"{where} (read)", "a number of seconds"))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be {what}, not {_kind(value)}", "timeout")
    return (DEFAULT_TIMEOUT[0], _positive(value, where, what))


def _parse_timeout_env(text: str, where: str) -> tuple[float, float]:
    """``"30"`` (the read timeout) or ``"3.05,30"`` (connect, read) from an environment variable."""
    parts = [p.strip() for p in text.split(",")]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(
            f"{where} must be seconds, e.g. 30 (read) or 3.05,30 (connect,read), not {text!r}",
            "timeout",
        ) from None
    if len(numbers) == 1:
        return _check_timeout(numbers[0], where)
    return _check_timeout(numbers, where)


def _check_deadline(value: object, where: str) -> float:
    return _positive(value, where, "a number of seconds", "deadline")


def _parse_deadline_env(text: str, where: str) -> float:
    """Seconds for a whole fetch, from an environment variable."""
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"{where} must be seconds, e.g. 60, not {text!r}", "deadline") from None
    return _check_deadline(seconds, where)


def _check_retries(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ConfigError(f"{where} must be a whole number from 0 to 10, not {_kind(value)}",
                          "retries")
    return value


def _check_backoff(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number of seconds, not {_kind(value)}", "backoff")
    if not math.isfinite(value) or not 0 <= value <= 60:
        raise ConfigError(f"{where} must be from 0 to 60 seconds, not {value!r}", "backoff")
    return float(value)
