"""xlfuncs doctor: honest checks, with fixes, on fake Windows/macOS homes and on this machine."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import xlwings

from xlfuncs import doctor
from xlfuncs.pythons import supported_pythons

XLWINGS_ADDIN = Path(xlwings.__file__).parent / "addin" / "xlwings.xlam"
REPO_ADDIN = Path(__file__).resolve().parents[1] / "workbooks" / "xlfuncs.xlam"


def by_name(checks):
    return {c.name: c for c in checks}


def windows_home(tmp_path: Path, *, conf: str | None, addins=("xlwings", "xlfuncs")):
    appdata = tmp_path / "AppData" / "Roaming"
    xlstart = appdata / "Microsoft" / "Excel" / "XLSTART"
    xlstart.mkdir(parents=True)
    if "xlwings" in addins:
        shutil.copy(XLWINGS_ADDIN, xlstart / "xlwings.xlam")
    if "xlfuncs" in addins:
        shutil.copy(REPO_ADDIN, xlstart / "xlfuncs.xlam")
    if conf is not None:
        (tmp_path / ".xlwings").mkdir()
        (tmp_path / ".xlwings" / "xlwings.conf").write_text(conf)
    return {"APPDATA": str(appdata)}


def test_this_machine_reports_no_excel_and_a_working_python_side():
    checks = doctor.run_checks()
    got = by_name(checks)
    assert got["Python"].status == "ok"
    assert got["xlfuncs.udfs"].status == "ok" and "BETA_NEUTRAL" in got["xlfuncs.udfs"].detail
    if not sys.platform.startswith(("win", "darwin")):
        assert got["Excel"].status == "n/a" and "command line works" in got["Excel"].detail
        assert got["xlwings add-in"].status == "n/a"
    assert not doctor.python_broken(checks)
    table = doctor.render(checks)
    assert table.splitlines()[0].startswith("check")


def _ranges_cases():
    supported = supported_pythons()
    (major, oldest), (_, newest) = supported.oldest, supported.newest
    return [((major, oldest, 0), "ok"), ((major, newest, 2), "ok"),
            ((major, oldest - 1, 9), "FAIL"), ((major, newest + 1, 0), "warn")]


@pytest.mark.parametrize(("version", "status"), _ranges_cases())
def test_python_is_checked_against_the_supported_range(version, status):
    supported = supported_pythons()
    newest = f"{supported.newest[0]}.{supported.newest[1]}"
    got = doctor._check_python(version, "/opt/python/bin/python3")
    assert got.status == status and got.python_side
    assert got.detail.startswith(f"{version[0]}.{version[1]}.{version[2]} at /opt/python")
    assert f"xlfuncs supports {supported.oldest[0]}.{supported.oldest[1]} to {newest}" in (
        got.detail)
    if status == "FAIL":
        assert f"install Python {newest} from python.org" in got.fix
        assert doctor.python_broken([got])
    if status == "warn":
        assert "too new" in got.detail and f"installing {newest}" in got.fix
        assert not doctor.python_broken([got])
        assert "to fix:" in doctor.render([got])


def test_the_store_python_inside_the_range_is_a_warning():
    supported = supported_pythons()
    got = doctor._check_python((*supported.newest, 1),
                               r"C:\Users\ann\AppData\Local\Microsoft\WindowsApps\python.exe")
    assert got.status == "warn" and "Microsoft Store" in got.fix


def test_a_good_windows_setup_is_all_ok(tmp_path):
    conf = f'"INTERPRETER_WIN","{sys.executable}"\n"UDF MODULES","xlfuncs.udfs"\n'
    env = windows_home(tmp_path, conf=conf)
    got = by_name(doctor.run_checks(env=env, home=tmp_path, platform="win32"))
    for name in ("xlwings add-in", "xlfuncs add-in", "xlwings.conf", "interpreter",
                 "UDF modules"):
        assert got[name].status == "ok", got[name]
    assert xlwings.__version__ in got["xlwings add-in"].detail


def test_windows_problems_each_come_with_a_fix(tmp_path):
    conf = '"INTERPRETER_WIN","C:\\\\nowhere\\\\python.exe"\n\n"UDF MODULES","other"\n'
    env = windows_home(tmp_path, conf=conf, addins=())
    checks = doctor.run_checks(env=env, home=tmp_path, platform="win32")
    got = by_name(checks)
    assert got["xlwings add-in"].status == "FAIL"
    assert got["xlwings add-in"].fix == "run: xlwings addin install"
    assert got["xlfuncs add-in"].status == "FAIL"
    assert got["xlwings.conf"].status == "warn" and "blank" in got["xlwings.conf"].detail
    assert got["interpreter"].status == "FAIL" and "does not exist" in got["interpreter"].detail
    assert got["UDF modules"].status == "ok" and "not needed" in got["UDF modules"].detail
    # the Excel side is broken, the Python side is not: exit code 0
    assert not doctor.python_broken(checks)
    assert "to fix:" in doctor.render(checks)


def test_an_addin_of_another_version_is_reported(tmp_path, monkeypatch):
    env = windows_home(tmp_path, conf=None)
    monkeypatch.setattr(doctor, "_version", lambda dist: "9.9.9" if dist == "xlwings" else "0")
    got = by_name(doctor.run_checks(env=env, home=tmp_path, platform="win32"))
    assert got["xlwings add-in"].status == "FAIL"
    assert "but Python package 9.9.9" in got["xlwings add-in"].detail
    assert got["xlwings.conf"].status == "FAIL"


def test_a_broken_python_side_is_an_error(monkeypatch):
    real = doctor.importlib.import_module

    def fail(name, *a, **k):
        if name == "sklearn":
            raise ImportError("no sklearn")
        return real(name, *a, **k)

    monkeypatch.setattr(doctor.importlib, "import_module", fail)
    checks = doctor.run_checks()
    assert by_name(checks)["dependencies"].status == "FAIL"
    assert "scikit-learn (ImportError)" in by_name(checks)["dependencies"].detail
    assert doctor.python_broken(checks)


# --------------------------------------------------------------------------- doctor --api


def api_check(tmp_path, url, **env):
    """The fund API line of ``doctor --api`` with only this environment (no config file)."""
    environ = {"HOME": str(tmp_path / "home"), "XLFUNCS_API_URL": url, **env}
    checks = doctor.run_checks(api=True, env=environ, home=tmp_path, platform="linux")
    return by_name(checks)["fund API"]


def test_api_ok_only_when_the_summary_route_answers(fund_api, tmp_path):
    got = api_check(tmp_path, fund_api.url, XLFUNCS_FUND="quant")
    assert got.status == "ok", got
    assert "20 holdings of fund quant" in got.detail
    request = fund_api.requests[-1]
    assert (request.method, request.path) == ("POST", "/all-holdings/summary")
    assert request.json["fund"] == "quant"


@pytest.mark.parametrize(("step", "words", "fix"), [
    ("404", "404", "XLFUNCS_API_URL"),
    ("501", "501", "XLFUNCS_API_URL"),
    ("502", "unavailable (502)", "try again later"),
    ("500", "500", "fund"),
])
def test_api_errors_are_not_ok(fund_api, tmp_path, step, words, fix):
    fund_api.script([step])
    got = api_check(tmp_path, fund_api.url)
    assert got.status == "FAIL", got
    assert words in got.detail and "ok" not in got.detail.split()
    assert fix in got.fix
    assert fund_api.hits == 1  # no retries: a short check


def test_api_wrong_url_and_token(tmp_path):
    from fund_api import FundApi

    with FundApi(token="right-token") as api:
        got = api_check(tmp_path, api.url + "/v2")  # the fake answers 404 off its route
        assert got.status == "FAIL" and "404" in got.detail and "XLFUNCS_API_URL" in got.fix
        got = api_check(tmp_path, api.url)
        assert got.status == "FAIL" and "401" in got.detail and "XLFUNCS_API_TOKEN" in got.fix
        got = api_check(tmp_path, api.url, XLFUNCS_API_TOKEN="wrong-token")
        assert got.status == "FAIL" and "refused the token (401)" in got.detail
        assert "wrong-token" not in got.detail + got.fix
        assert api_check(tmp_path, api.url, XLFUNCS_API_TOKEN="right-token").status == "ok"


def test_api_unreachable_and_slow(refused_url, fund_api, tmp_path):
    got = api_check(tmp_path, refused_url)
    assert got.status == "FAIL" and "connection refused" in got.detail
    fund_api.script(["ok:delay=3"])
    got = api_check(tmp_path, fund_api.url, XLFUNCS_TIMEOUT="1,1")
    assert got.status == "FAIL" and "did not answer within 1 s" in got.detail


def test_api_not_configured_is_a_warning(tmp_path):
    checks = doctor.run_checks(api=True, env={"HOME": str(tmp_path)}, home=tmp_path,
                               platform="linux")
    got = by_name(checks)["fund API"]
    assert got.status == "warn" and "no fund API URL is configured" in got.detail


def test_api_check_ends_at_its_deadline_against_a_dripping_api(fund_api, tmp_path, monkeypatch):
    # every byte within the read timeout: only the deadline ends the check
    fund_api.script(["ok:drip=0.1"])
    got = api_check(tmp_path, fund_api.url, XLFUNCS_DEADLINE="1")
    assert got.status == "FAIL"
    assert got.detail == f"the API at {fund_api.url} did not answer within 1 s (1 attempt)"
    # and the doctor's own limit applies whatever the configuration says (60 s by default)
    monkeypatch.setattr(doctor, "API_DEADLINE", 0.5)
    fund_api.script(["ok:drip=0.1"])
    got = api_check(tmp_path, fund_api.url)
    assert got.detail == f"the API at {fund_api.url} did not answer within 0.5 s (1 attempt)"


def test_api_check_never_shows_the_token_echoed_in_a_field(tmp_path):
    from fund_api import FundApi, Reply

    token = "tok-" + "Q7/w" * 30
    bad = {"ticker": "AAPL", "active": True, "shares": "{authorization}", "price": 1.0,
           "value": 1.0}
    with FundApi(token=token) as api:
        api.script([Reply(echo=True, holdings=[bad])])
        got = api_check(tmp_path, api.url, XLFUNCS_API_TOKEN=token)
    assert got.status == "warn"
    assert got.detail == (f"{api.url} answers, but holdings[0].shares is text 'Bearer ***', "
                          "a number is needed")
    text = got.detail + got.fix
    assert not any(token[i:i + 8] in text for i in range(len(token) - 7))



def test_api_check_never_shows_the_token_in_any_spelling(tmp_path):
    """Issue 16.3: a JSON-escaped echo of the token reached ``doctor --api``."""
    from fund_api import FundApi, Reply, leaks, token_spellings

    token = "xlf_Tok-7Q2w/9Zk+4Lm0pNB.q~"
    with FundApi(token=token) as api:
        for form, spelling in token_spellings(token).items():
            api.script([Reply(status=500, body=f'{{"detail":"{spelling}"}}')])
            got = api_check(tmp_path, api.url, XLFUNCS_API_TOKEN=token)
            assert got.status == "FAIL", form
            assert got.detail.endswith("; body: (not shown: it quotes the API token)"), form
            table = doctor.render([got])
            assert not leaks(token, table) and not leaks(spelling, table), form


def test_api_check_reports_a_redirect(fund_api, tmp_path):
    from fund_api import Reply

    fund_api.script([Reply(status=308, headers={"Location": "https://new.example.edu/api"
                                                            "/all-holdings/summary"})])
    got = api_check(tmp_path, fund_api.url)
    assert got.status == "FAIL"
    assert got.detail.startswith("the API redirected to https://new.example.edu/api/"
                                 "all-holdings/summary (308)")
    assert "XLFUNCS_API_URL" in got.fix


@pytest.mark.parametrize(("conf", "status", "words"), [
    # Windows PowerShell 5.1 writes UTF-8 with a byte-order mark: xlwings reads ANSI and
    # loses the first key
    ("\ufeff" + '"INTERPRETER_WIN","{py}"\n', "FAIL", "byte-order mark"),
    ('"INTERPRETER WIN","{py}"\n', "FAIL", '"INTERPRETER WIN", which xlwings does not read'),
    ('"INTERPRETER_WIN","{py}"\n"UDF_MODULES","xlfuncs.udfs"\n', "FAIL",
     '"UDF_MODULES", which xlwings does not read'),
])
def test_settings_xlwings_cannot_read_are_reported(tmp_path, conf, status, words):
    env = windows_home(tmp_path, conf=None)
    (tmp_path / ".xlwings").mkdir()
    (tmp_path / ".xlwings" / "xlwings.conf").write_bytes(
        conf.format(py=sys.executable.replace("\\", "\\\\")).encode("utf-8"))
    got = by_name(doctor.run_checks(env=env, home=tmp_path, platform="win32"))
    assert got["xlwings.conf"].status == status and words in got["xlwings.conf"].detail


def test_a_conda_setting_does_not_hide_a_missing_interpreter(tmp_path):
    conf = ('"INTERPRETER_WIN","C:\\\\nowhere\\\\python.exe"\n"CONDA PATH","C:\\\\conda"\n'
            '"CONDA ENV","base"\n')
    env = windows_home(tmp_path, conf=conf)
    got = by_name(doctor.run_checks(env=env, home=tmp_path, platform="win32"))
    assert got["interpreter"].status == "FAIL" and "does not exist" in got["interpreter"].detail


def test_a_windows_conf_is_read_in_the_ansi_code_page(tmp_path):
    """The installer writes xlwings.conf as xlwings' VBA reads it: ANSI, no byte-order mark."""
    home = tmp_path / "José Müller"
    home.mkdir()
    env = windows_home(home, conf=None)
    python = home / "venv" / "python.exe"
    python.parent.mkdir()
    python.write_bytes(b"")
    (home / ".xlwings").mkdir()
    (home / ".xlwings" / "xlwings.conf").write_bytes(
        f'"INTERPRETER_WIN","{python}"\n'.encode("cp1252"))
    got = by_name(doctor.run_checks(env=env, home=home, platform="win32"))
    assert got["interpreter"].status == "ok" and got["interpreter"].detail == str(python)


# --------------------------------------------------------------------------- the exit code


def doctor_command(capsys, monkeypatch, tmp_path, *argv, **env):
    """``xlfuncs doctor ARGV`` with only this fund API environment: (exit code, output)."""
    from xlfuncs.cli import main

    for var in ("XLFUNCS_API_URL", "XLFUNCS_API_TOKEN", "XLFUNCS_FUND", "XLFUNCS_CONFIG",
                "XLFUNCS_TIMEOUT", "XLFUNCS_DEADLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "appdata"))
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    code = main(["doctor", *argv])
    return code, capsys.readouterr().out


def test_doctor_api_exits_non_zero_when_the_api_check_is_not_ok(fund_api, capsys, monkeypatch,
                                                                tmp_path):
    """Issue 16.6: ``doctor --api`` exited 0 when the API check failed."""
    url = {"XLFUNCS_API_URL": fund_api.url}
    code, out = doctor_command(capsys, monkeypatch, tmp_path, "--api", **url)
    assert code == 0 and by_name(doctor.run_checks())["Python"].status == "ok"
    assert re.search(r"^fund API\s+ok\s", out, re.M)
    for step in ("500", "404", "502"):  # FAIL
        fund_api.script([step])
        code, out = doctor_command(capsys, monkeypatch, tmp_path, "--api", **url)
        assert code == 1, step
        assert re.search(r"^fund API\s+FAIL\s", out, re.M)
    fund_api.script(["no-holdings"])  # it answers, but the refresh could not use it: warn
    code, out = doctor_command(capsys, monkeypatch, tmp_path, "--api", **url)
    assert code == 1 and re.search(r"^fund API\s+warn\s.*has no holdings field", out, re.M)
    code, out = doctor_command(capsys, monkeypatch, tmp_path, "--api")  # no URL configured
    assert code == 1 and "no fund API URL is configured" in out
    fund_api.script(["500"])  # without --api the API is not asked, and not the exit code
    code, out = doctor_command(capsys, monkeypatch, tmp_path, **url)
    assert code == 0 and "fund API" not in out and fund_api.pending == 1
