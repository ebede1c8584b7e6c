"""``xlfuncs doctor``: what in the chain Python -> xlwings -> Excel works, and how to fix the rest.

The most common support problems with classic xlwings (SPEC section 7) are an
interpreter that is not found, an add-in whose version differs from the Python
package's, and a UDF module that fails to import. Each check here reports one
of ``ok``, ``warn``, ``FAIL`` or ``n/a`` (not applicable on this machine, e.g. no
Excel on Linux) with a one-line detail and, when it is not ok, the fix.

A broken Python side (Python too old, a dependency or ``xlfuncs.udfs`` that
does not import) makes the command exit non-zero, and so does a fund API check
that was asked for (``--api``) and is not ok; the Excel side alone does not: it
cannot be checked, or needed, on a server.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from xlfuncs.pythons import PythonRange, supported_pythons

__all__ = ["Check", "addin_dir", "exit_code", "python_broken", "render", "run_checks",
           "xlwings_conf_path"]

OK, WARN, FAIL, NA = "ok", "warn", "FAIL", "n/a"
#: Distributions the Python side needs (name as installed, import name).
REQUIRED = (("numpy", "numpy"), ("scipy", "scipy"), ("pandas", "pandas"), ("cvxpy", "cvxpy"),
            ("clarabel", "clarabel"), ("scikit-learn", "sklearn"), ("requests", "requests"),
            ("xlwings", "xlwings"), ("openpyxl", "openpyxl"), ("matplotlib", "matplotlib"),
            ("tqdm", "tqdm"))
_ADDIN_VERSION = re.compile(r'XLWINGS_VERSION\s+As\s+String\s*=\s*"([^"]+)"')


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: str
    detail: str
    fix: str = ""
    python_side: bool = False  # a failure here breaks the command line too
    must_pass: bool = False  # asked for explicitly (--api): anything but ok is a failure


def _windows(platform: str) -> bool:
    return platform.startswith("win")


def _mac(platform: str) -> bool:
    return platform == "darwin"


def xlwings_conf_path(home: Path, platform: str) -> Path:
    """The user's ``xlwings.conf`` as classic xlwings reads it (SPEC section 7)."""
    if _mac(platform):
        return home / "Library" / "Containers" / "com.microsoft.Excel" / "Data" / "xlwings.conf"
    return home / ".xlwings" / "xlwings.conf"


def addin_dir(home: Path, platform: str, env: Mapping[str, str]) -> Path | None:
    """Excel's per-user start-up folder, where ``xlwings addin install`` puts add-ins."""
    if _windows(platform):
        appdata = env.get("APPDATA") or str(home / "AppData" / "Roaming")
        return Path(appdata) / "Microsoft" / "Excel" / "XLSTART"
    if _mac(platform):
        office = home / "Library" / "Group Containers" / "UBF8T346G9.Office"
        return office / "User Content.localized" / "Startup.localized" / "Excel"
    return None


#: Keys xlwings reads from ``xlwings.conf`` (compared ignoring case, but otherwise
#: exactly: ``UDF_MODULES`` or ``INTERPRETER WIN`` are other keys to it).
XLWINGS_KEYS = ("INTERPRETER_WIN", "INTERPRETER_MAC", "UDF MODULES", "CONDA PATH", "CONDA ENV",
                "PYTHONPATH", "DEBUG UDFS", "USE UDF SERVER", "RUN PYTHON", "LICENSE_KEY")
_BOM = b"\xef\xbb\xbf"


def read_xlwings_conf(path: Path, ansi: bool = False) -> tuple[dict[str, str], list[int]]:
    """Settings of an ``xlwings.conf`` (keys upper case, as written) and its blank lines.

    With ``ansi`` (Windows) the file is read as xlwings' VBA reads it, in the
    ANSI code page (``mbcs``; cp1252 when checking a Windows set-up from
    elsewhere), which is how the installer writes it; otherwise as UTF-8. A
    UTF-8 byte-order mark stays part of the first key (xlwings then does not
    find it).
    """
    raw = path.read_bytes()
    encoding = "utf-8"
    if ansi:
        encoding = "mbcs" if sys.platform.startswith("win") else "cp1252"
    body = raw[len(_BOM):] if raw.startswith(_BOM) else raw
    text = ("\ufeff" if raw.startswith(_BOM) else "") + body.decode(encoding, errors="replace")
    settings: dict[str, str] = {}
    blank: list[int] = []
    for i, line in enumerate(text.splitlines(), 1):
        values = re.findall(r'"([^"]*)"', line)
        if len(values) >= 2:
            key = values[0].upper()
            if line.startswith("\ufeff"):
                key = "\ufeff" + key
            settings[key] = values[1]
        elif not line.strip():
            blank.append(i)
    return settings, blank


def _misspelt(key: str) -> str | None:
    """The xlwings key that ``key`` was meant to be, or None when it is one (or unknown)."""
    if key in XLWINGS_KEYS:
        return None
    plain = key.lstrip("\ufeff").strip().replace("_", " ")
    return next((k for k in XLWINGS_KEYS if k.replace("_", " ") == plain), None)


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _check_python(version: tuple[int, ...] | None = None, executable: str | None = None,
                  supported: PythonRange | None = None) -> Check:
    """The running Python (or ``version`` at ``executable``) against the supported range."""
    v = tuple(sys.version_info[:3]) if version is None else tuple(version)
    executable = sys.executable if executable is None else executable
    supported = supported_pythons() if supported is None else supported
    newest = f"{supported.newest[0]}.{supported.newest[1]}"
    where = f"{'.'.join(map(str, v[:3]))} at {executable}"
    scope = f"xlfuncs supports {supported}"
    if v[:2] < supported.oldest:
        return Check("Python", FAIL, f"{where} is too old ({scope})",
                     f"install Python {newest} from python.org and run the installer again", True)
    if v[:2] > supported.newest:
        return Check("Python", WARN, f"{where} is too new ({scope}): "
                     "some dependencies may have no binary wheels for it",
                     f"run the installer again: it takes Python {supported} (installing "
                     f"{newest} when there is none)", True)
    if "WindowsApps" in executable:
        return Check("Python", WARN, f"{where} ({scope})", "the Microsoft Store Python often "
                     "cannot host the xlwings COM server: install Python from python.org", True)
    return Check("Python", OK, f"{where} ({scope})", python_side=True)


def _check_packages() -> list[Check]:
    out = []
    xlfuncs_version = _version("xlfuncs")
    out.append(Check("xlfuncs", OK if xlfuncs_version else WARN,
                     f"{xlfuncs_version or 'not installed as a package'} in "
                     f"{Path(__file__).resolve().parent}",
                     "" if xlfuncs_version else "pip install -e . in the repository",
                     True))
    missing = []
    for dist, module in REQUIRED:
        try:
            importlib.import_module(module)
        except Exception as exc:  # an import can fail in many ways; say which
            missing.append(f"{dist} ({type(exc).__name__})")
    if missing:
        out.append(Check("dependencies", FAIL, "cannot import " + ", ".join(missing),
                         "pip install --upgrade xlfuncs (or pip install -e . in the repository)",
                         True))
    else:
        out.append(Check("dependencies", OK, f"{len(REQUIRED)} packages import", python_side=True))
    return out


def _check_udfs() -> Check:
    try:
        udfs = importlib.import_module("xlfuncs.udfs")
        from xlfuncs.excel.functions import REGISTRY
    except Exception as exc:
        return Check("xlfuncs.udfs", FAIL, f"does not import: {type(exc).__name__}: {exc}",
                     "reinstall xlfuncs; run python -c \"import xlfuncs.udfs\" to see the error",
                     True)
    names = sorted(udfs.__all__)
    absent = [n for n in names if n not in REGISTRY]
    if absent:
        return Check("xlfuncs.udfs", FAIL, f"{', '.join(absent)} not registered",
                     "reinstall xlfuncs", True)
    return Check("xlfuncs.udfs", OK, f"{len(names)} functions: {', '.join(names)}",
                 python_side=True)


def _check_excel(platform: str) -> Check:
    if _windows(platform) or _mac(platform):
        return Check("Excel", OK, "this system can run Excel; the checks below find its files")
    return Check("Excel", NA, f"no Excel on {platform}: worksheet functions and buttons need "
                 "Excel on Windows (macOS: buttons only); the xlfuncs command line works here")


def _find_addin(label: str, filename: str, fix: str, home: Path, platform: str,
                env: Mapping[str, str]) -> Path | Check:
    """The add-in's file in the start-up folder, or the check that says why there is none."""
    folder = addin_dir(home, platform, env)
    if folder is None:
        return Check(label, NA, "no Excel start-up folder on this system")
    addin = folder / filename
    if not addin.is_file():
        return Check(label, FAIL, f"not found in {folder}", fix)
    return addin


def _check_xlwings_addin(home: Path, platform: str, env: Mapping[str, str]) -> Check:
    fix = "run: xlwings addin install"
    addin = _find_addin("xlwings add-in", "xlwings.xlam", fix, home, platform, env)
    if isinstance(addin, Check):
        return addin
    package = _version("xlwings")
    try:
        from pyopenvba import ExcelFile

        with ExcelFile(addin) as book:
            text = "\n".join(book.get_module(m) for m in book.module_names())
        found = _ADDIN_VERSION.search(text)
        installed = found.group(1) if found else None
    except Exception as exc:  # a damaged or locked add-in file
        return Check("xlwings add-in", WARN, f"{addin} is unreadable ({type(exc).__name__})", fix)
    if installed != package:
        return Check("xlwings add-in", FAIL,
                     f"add-in {installed or 'of unknown version'} but Python package {package}",
                     f"{fix} (after every xlwings upgrade)")
    return Check("xlwings add-in", OK, f"{installed} in {addin.parent}")


def _check_xlfuncs_addin(home: Path, platform: str, env: Mapping[str, str]) -> Check:
    addin = _find_addin("xlfuncs add-in", "xlfuncs.xlam",
                        "run the installer again (install/install.ps1 or install/install.sh)",
                        home, platform, env)
    return addin if isinstance(addin, Check) else Check("xlfuncs add-in", OK, str(addin))


def _check_conf(home: Path, platform: str) -> list[Check]:
    path = xlwings_conf_path(home, platform)
    if not (_windows(platform) or _mac(platform)):
        if not path.is_file():
            return [Check("xlwings.conf", NA, "not needed without Excel")]
    if not path.is_file():
        return [Check("xlwings.conf", FAIL, f"{path} is missing",
                      "run: xlwings config create (or the installer)")]
    settings, blank = read_xlwings_conf(path, ansi=_windows(platform))
    out = []
    key = "INTERPRETER_MAC" if _mac(platform) else "INTERPRETER_WIN"
    conda = settings.get("CONDA PATH")
    interp = settings.get(key, "")
    wrong = [(k, _misspelt(k)) for k in settings if _misspelt(k)]
    if any(k.startswith("\ufeff") for k in settings):
        out.append(Check("xlwings.conf", FAIL, f"{path} starts with a UTF-8 byte-order mark, "
                         "which hides its first setting from xlwings",
                         "re-run the installer, or save the file as ANSI (Notepad: Save as, "
                         "Encoding ANSI)"))
    elif wrong:
        k, meant = wrong[0]
        out.append(Check("xlwings.conf", FAIL, f'{path.name} has "{k}", which xlwings does not '
                         f'read', f'write it as "{meant}"'))
    elif blank:
        out.append(Check("xlwings.conf", WARN, f"{path} has blank lines ({blank[:3]})",
                         "remove them: a blank line can stop the COM server from starting"))
    else:
        out.append(Check("xlwings.conf", OK, str(path)))
    # xlwings uses conda only when the interpreter is not a full path
    if interp and not Path(interp).is_file():
        out.append(Check("interpreter", FAIL, f"{interp} does not exist",
                         f'set {key} to {sys.executable} in {path.name}'))
    elif interp:
        out.append(Check("interpreter", OK, interp))
    elif conda:
        out.append(Check("interpreter", OK, f"conda: {conda} env {settings.get('CONDA ENV')}"))
    else:
        out.append(Check("interpreter", FAIL, f"{key} is not set in {path.name}",
                         f'add "{key}","{sys.executable}" (or run xlwings config create)'))
    # The xlfuncs wrappers name xlfuncs.udfs themselves: UDF MODULES only matters to
    # xlwings' own Import Functions button.
    modules = [m.strip() for m in settings.get("UDF MODULES", "").split(";") if m.strip()]
    detail = ("; ".join(modules) if "xlfuncs.udfs" in modules else
              f"xlfuncs.udfs not listed ({'; '.join(modules) or 'empty'}): not needed, the "
              "xlfuncs buttons and workbooks name it themselves")
    out.append(Check("UDF modules", OK, detail))
    return out


#: ``(connect, read)`` seconds at most for the API check: the doctor should not hang.
API_TIMEOUT = (3.05, 10.0)
#: Seconds at most for the whole API check (connection, answer and download).
API_DEADLINE = 10.0


def _api_fix(status: int | None) -> str:
    """What to do about an HTTP status from the fund API (``None``: no answer at all)."""
    from xlfuncs.config import ENV_FUND, ENV_TOKEN, ENV_URL
    from xlfuncs.data.holdings import ENDPOINT

    if status is None:
        return "check the URL, the network or the VPN"
    if 300 <= status < 400:
        return f"set {ENV_URL} to the address the API redirects to (see above)"
    if status in (401, 403):
        return f"check {ENV_TOKEN} (or token under [api] in the config file)"
    if status in (404, 405, 501):
        return f"check {ENV_URL}: the API's base address, without {ENDPOINT}"
    if status == 500:
        return f"check the fund ({ENV_FUND} or fund under [api]); else the API is failing"
    if status == 429:
        return "the API is rate limiting: try again in a minute"
    if status in (502, 503, 504):
        return "the API or its gateway is down: try again later or tell its maintainers"
    if status == 422:
        return "the API does not accept xlfuncs' request: upgrade xlfuncs"
    return ""


def _check_api(env: Mapping[str, str]) -> Check:
    """One real request to the route the holdings refresh uses, with a short deadline.

    It goes through :meth:`HoldingsClient.fetch`, as the refresh does, so the
    answer is checked and the token scrubbed by the same code.
    """
    from xlfuncs.config import load_config
    from xlfuncs.errors import ApiError, ApiResponseError, XlfuncsError

    try:
        config = load_config(env=env)
    except XlfuncsError as exc:
        return Check("fund API", WARN, str(exc), "see Configuration in the README")
    from xlfuncs.data.holdings import FUNDS, HoldingsClient, last_business_day

    quick = replace(config, retries=0, timeout=(min(config.timeout[0], API_TIMEOUT[0]),
                                                 min(config.timeout[1], API_TIMEOUT[1])),
                    deadline=min(config.deadline, API_DEADLINE))
    fund = config.fund or FUNDS[0]
    day = last_business_day()
    try:
        with HoldingsClient(quick) as client:
            snapshot = client.fetch(fund, day, day)
    except ApiResponseError as exc:  # it answered 2xx, but not per the contract
        return Check("fund API", WARN, f"{config.base_url} answers, but {exc}",
                     "check XLFUNCS_API_URL and the fund; else tell the API's maintainers")
    except ApiError as exc:
        return Check("fund API", FAIL, str(exc), _api_fix(exc.status))
    except XlfuncsError as exc:
        return Check("fund API", FAIL, str(exc), "see Configuration in the README")
    except Exception as exc:  # anything else: say what, never the token
        return Check("fund API", FAIL, f"the check failed: {type(exc).__name__}",
                     "run xlfuncs holdings to see more")
    return Check("fund API", OK, f"{config.base_url} answers: {len(snapshot.rows)} holdings of "
                 f"fund {fund} on {snapshot.end}")


def run_checks(*, api: bool = False, env: Mapping[str, str] | None = None,
               home: Path | None = None, platform: str | None = None) -> list[Check]:
    """Every check, in the order of the chain.

    Parameters
    ----------
    api : bool
        Also ask the fund API for holdings, as the refresh does (needs the
        network; at most :data:`API_DEADLINE` seconds, no retries): ok only when
        it answers per the contract.
    env, home, platform : optional
        The environment, home folder and ``sys.platform`` to check (tests pass
        their own; by default this machine's).

    Returns
    -------
    list of Check

    """
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    platform = sys.platform if platform is None else platform
    checks: list[Check] = [_check_python(), *_check_packages(), _check_udfs(),
                           _check_excel(platform)]
    steps: list[Callable[[], Check | list[Check]]] = [
        lambda: _check_xlwings_addin(home, platform, env),
        lambda: _check_xlfuncs_addin(home, platform, env),
        lambda: _check_conf(home, platform),
    ]
    if api:
        steps.append(lambda: replace(_check_api(env), must_pass=True))
    for step in steps:
        got = step()
        checks.extend(got if isinstance(got, list) else [got])
    return checks


def python_broken(checks: list[Check]) -> bool:
    """True when a check of the Python side failed."""
    return any(c.python_side and c.status == FAIL for c in checks)


def exit_code(checks: list[Check]) -> int:
    """The exit code of ``xlfuncs doctor``: 1 when the Python side or a required check fails.

    Parameters
    ----------
    checks : list of Check
        What :func:`run_checks` returned.

    Returns
    -------
    int
        1 when :func:`python_broken`, or when a check asked for explicitly (the
        fund API with ``--api``) is not ok; else 0.

    """
    broken = python_broken(checks) or any(c.must_pass and c.status != OK for c in checks)
    return 1 if broken else 0


def render(checks: list[Check]) -> str:
    """The checks as a plain-text table, with the fixes below it."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  {'status':<6}  detail", "-" * (width + 60)]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {c.status:<6}  {c.detail}")
    fixes = [c for c in checks if c.status in (FAIL, WARN) and c.fix]
    if fixes:
        lines.append("")
        lines.append("to fix:")
        lines.extend(f"  {c.name}: {c.fix}" for c in fixes)
    return "\n".join(lines)
