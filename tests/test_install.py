"""Installers: shell syntax, the steps they announce, and the files they name.

There is no Windows or macOS here. The macOS scripts run with ``--dry-run`` and
``--home`` (a fake home folder), and their helper functions run on their own (sourcing
install.sh defines them without installing anything). The PowerShell scripts are
checked as text: the rules below are what xlwings 0.37.8's VBA and Windows PowerShell
5.1 need (see the comments in install/install.ps1).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from xlfuncs.doctor import FAIL, NA, OK, WARN, Check, render
from xlfuncs.pythons import supported_pythons

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install"
STARTUP = ("Library/Group Containers/UBF8T346G9.Office/User Content.localized/"
           "Startup.localized/Excel")
CONF = "Library/Containers/com.microsoft.Excel/Data/xlwings.conf"
OLD_PREFIX = "Library/Application Support/xlfuncs/venv"


def sh(script: str, *args: str, cwd: Path | None = None,
       path: str | None = None) -> subprocess.CompletedProcess:
    env = None if path is None else {"PATH": path, "HOME": "/nonexistent", "LC_ALL": "C"}
    return subprocess.run(["bash", str(INSTALL / script), *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, stdin=subprocess.DEVNULL, env=env)


#: What install.sh runs besides Python (linked into a PATH of fake interpreters).
TOOLS = ("bash", "awk", "uname", "dirname", "find", "head", "grep", "cmp", "cp", "mv", "mkdir",
         "sort")


def fake_path(folder: Path, **pythons: str) -> str:
    """A PATH with only the tools and fake interpreters: python3_15="3.15" -> python3.15.

    A fake interpreter prints its version (what install.sh asks it) and nothing else.
    """
    folder.mkdir()
    for tool in TOOLS:
        (folder / tool).symlink_to(shutil.which(tool))
    for name, version in pythons.items():
        exe = folder / name.replace("_", ".")
        exe.write_text(f"#!/bin/sh\necho {version}\n" if version else "#!/bin/sh\nexit 1\n")
        exe.chmod(0o755)
    return str(folder)


def _dotted(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def helper(body: str, *args: str) -> subprocess.CompletedProcess:
    """Run BODY in bash after sourcing install.sh (its functions, no install)."""
    return subprocess.run(["bash", "-c", f'source "{INSTALL / "install.sh"}"\n{body}', "_", *args],
                          capture_output=True, text=True, timeout=60)


def ps1(name: str) -> str:
    return (INSTALL / name).read_text(encoding="ascii")


# ------------------------------------------------------------------------- macOS (bash)

@pytest.mark.parametrize("script", ["install.sh", "uninstall.sh"])
def test_shell_scripts_parse(script):
    bash = shutil.which("bash")
    assert bash, "bash is needed to check the macOS installer"
    done = subprocess.run([bash, "-n", str(INSTALL / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_shell_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed")
    scripts = [str(INSTALL / "install.sh"), str(INSTALL / "uninstall.sh")]
    done = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_macos_installer_dry_run_announces_every_step(tmp_path):
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path))
    assert done.returncode == 0, done.stderr
    steps = re.findall(r"^==> (\d)/7 (.+)$", done.stdout, re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(1, 8))
    text = done.stdout
    assert "xlwings addin install" in text and "xlfuncs doctor" in text
    assert "Startup.localized/Excel" in text and "INTERPRETER_MAC" in text
    assert "Done." not in text and "nothing was changed" in text
    assert not any(tmp_path.iterdir()), "a dry run must not write anything"


def test_macos_takes_the_newest_python_inside_the_supported_range(tmp_path):
    supported = supported_pythons()
    inside, newer = _dotted(supported.newest), _dotted((3, supported.newest[1] + 1))
    older = _dotted((3, supported.newest[1] - 1))
    path = fake_path(tmp_path / "bin", python3=older, **{f"python{inside}": inside,
                                                          f"python{newer}": newer})
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path / "home"), path=path)
    assert done.returncode == 0, done.stderr
    assert f"Python {inside}: {tmp_path}/bin/python{inside}\n" in done.stdout
    assert f"passed over: {tmp_path}/bin/python{newer} (Python {newer})" in done.stdout
    assert f"(dry run) {tmp_path}/bin/python{inside} -m venv " in done.stdout
    assert "uv" not in done.stdout


def test_macos_python_older_than_the_range_is_passed_over(tmp_path):
    supported = supported_pythons()
    path = fake_path(tmp_path / "bin", python3_10="3.10",
                     python3=_dotted(supported.oldest))
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path / "home"), path=path)
    assert done.returncode == 0, done.stderr
    assert f"Python {_dotted(supported.oldest)}: {tmp_path}/bin/python3\n" in done.stdout
    assert f"passed over: {tmp_path}/bin/python3.10 (Python 3.10)" in done.stdout


@pytest.mark.parametrize("found", ["newer", "3.10"])
def test_macos_without_a_supported_python_installs_the_newest_with_uv(tmp_path, found):
    """The dry run prints exactly the commands that would provide Python."""
    newest = _dotted(supported_pythons().newest)
    version = _dotted((3, supported_pythons().newest[1] + 1)) if found == "newer" else found
    path = fake_path(tmp_path / "bin", **{f"python{version}": version, "python3": version})
    home = tmp_path / "home"
    done = sh("install.sh", "--dry-run", "--home", str(home), path=path)
    assert done.returncode == 0, done.stderr
    uv = f"{home}/.xlfuncs/uv"
    step1 = done.stdout[:done.stdout.index("==> 2/7")]
    assert [line.strip() for line in step1.splitlines() if "(dry run)" in line] == [
        f"(dry run) {tmp_path}/bin/python3 -m venv {uv}",
        f"(dry run) {uv}/bin/python -m pip install --only-binary=:all: uv",
        f"(dry run) {uv}/bin/uv python install {newest}",
        f"(dry run) {uv}/bin/uv python find {newest}",
    ]
    assert f"Python {newest}: $({uv}/bin/uv python find {newest})" in done.stdout
    assert f"(dry run) $({uv}/bin/uv python find {newest}) -m venv {home}/.xlfuncs/venv" in (
        done.stdout)
    assert not home.exists(), "a dry run writes nothing"


def test_macos_uses_the_uv_on_path(tmp_path):
    newest = _dotted(supported_pythons().newest)
    path = fake_path(tmp_path / "bin", uv="uv 0.9", python3_10="3.10")
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path / "home"), path=path)
    assert done.returncode == 0, done.stderr
    assert f"(dry run) {tmp_path}/bin/uv python install {newest}\n" in done.stdout
    assert "-m venv" not in done.stdout[:done.stdout.index("==> 2/7")]


def test_macos_without_any_python_names_the_version_to_install(tmp_path):
    newest = _dotted(supported_pythons().newest)
    path = fake_path(tmp_path / "bin", python3="")  # a python3 that does not run
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path / "home"), path=path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"install Python {newest} from https://www.python.org/downloads/" in lines[0]


def test_supported_range_is_read_from_the_range_file(tmp_path):
    supported = supported_pythons()
    got = helper('supported_range "$1"', str(ROOT / "xlfuncs" / "supported_pythons.txt"))
    assert got.stdout.split() == [_dotted(supported.oldest), _dotted(supported.newest)]
    (tmp_path / "r.txt").write_text("# oldest = 3.1\nnewest = 3.14\n")
    assert helper('supported_range "$1"', str(tmp_path / "r.txt")).returncode == 1
    inside = helper('in_range 3.12 3.11 3.14 && in_range 3.11 3.11 3.14 && in_range 3.14 3.11 3.14')
    assert inside.returncode == 0
    for outside in ("3.10", "3.15", "2.12"):
        assert helper(f"in_range {outside} 3.11 3.14").returncode == 1, outside


def test_macos_environment_path_has_no_space(tmp_path):
    """xlwings' AppleScript runs INTERPRETER_MAC unquoted in do shell script."""
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path))
    assert f"Creating the environment in {tmp_path}/.xlfuncs/venv\n" in done.stdout
    assert f"INTERPRETER_MAC = {tmp_path}/.xlfuncs/venv/bin/python" in done.stdout
    assert "Application Support" not in done.stdout


@pytest.mark.parametrize("prefix", ["a b", "it's", "x$y", "a&b"])
def test_macos_prefix_that_the_applescript_cannot_run_is_refused(tmp_path, prefix):
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path), "--prefix",
              str(tmp_path / prefix))
    assert done.returncode == 1 and "choose another --prefix" in done.stderr
    assert "==> 1/7" not in done.stdout


def test_macos_relative_prefix_is_made_absolute(tmp_path):
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path), "--prefix", "env", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"INTERPRETER_MAC = {tmp_path}/env/bin/python" in done.stdout


def test_macos_wheel_source_takes_the_addin_from_the_repository(tmp_path):
    wheel = tmp_path / "dist" / "xlfuncs-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"PK")
    home = tmp_path / "home"
    home.mkdir()
    done = sh("install.sh", "--dry-run", "--home", str(home), "--source", str(wheel))
    assert done.returncode == 0, done.stderr
    assert f"pip install --upgrade --only-binary=:all: {wheel}" in done.stdout
    assert f"copy {ROOT / 'workbooks' / 'xlfuncs.xlam'} to " in done.stdout


def test_macos_missing_source_is_refused(tmp_path):
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path), "--source",
              str(tmp_path / "nope.whl"))
    assert done.returncode == 1 and "does not exist" in done.stderr


def test_macos_environment_of_another_python_is_recreated(tmp_path):
    venv = tmp_path / ".xlfuncs" / "venv"
    venv.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.9.18\n")
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "made with Python 3.9: recreating it" in done.stdout
    assert re.search(r"\(dry run\) \S+ -m venv --clear ", done.stdout)


def test_macos_environment_of_the_same_python_is_updated(tmp_path):
    found = sh("install.sh", "--dry-run", "--home", str(tmp_path))
    version = re.search(r"Python (\d+\.\d+): ", found.stdout).group(1)
    venv = tmp_path / ".xlfuncs" / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\n")
    (venv / "bin" / "python").chmod(0o755)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}.1\n")
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path))
    assert f"already there (Python {version})" in done.stdout
    assert "--clear" not in done.stdout


def test_macos_folder_that_is_not_an_environment_is_refused(tmp_path):
    prefix = tmp_path / "mine"
    prefix.mkdir()
    (prefix / "notes.txt").write_text("mine")
    done = sh("install.sh", "--dry-run", "--home", str(tmp_path), "--prefix", str(prefix))
    assert done.returncode == 1 and "not a Python environment" in done.stderr


def test_venv_version_reads_pyvenv_cfg(tmp_path):
    (tmp_path / "pyvenv.cfg").write_text("home = /x\ninclude-system-site-packages = false\n"
                                         "version = 3.12.4\n")
    assert helper('venv_version "$1"', str(tmp_path)).stdout.strip() == "3.12"
    (tmp_path / "pyvenv.cfg").write_text("home = /x\nversion_info = 3.13.0.final.0\n")
    assert helper('venv_version "$1"', str(tmp_path)).stdout.strip() == "3.13"


def test_write_conf_replaces_the_interpreter_keeps_the_rest_and_backs_up(tmp_path):
    conf = tmp_path / "Data" / "xlwings.conf"
    conf.parent.mkdir()
    old = ('"interpreter_mac","/old/python"\n\n"UDF MODULES","mymod"\n'
           '"INTERPRETER_MAC","/older/python"\n"CONDA PATH",""\n')
    conf.write_text(old)
    done = helper('write_conf "$1" "$2"', str(conf), "/Users/ann/.xlfuncs/venv/bin/python")
    assert done.returncode == 0, done.stderr
    assert conf.read_text() == ('"UDF MODULES","mymod"\n"CONDA PATH",""\n'
                                '"INTERPRETER_MAC","/Users/ann/.xlfuncs/venv/bin/python"\n')
    assert (tmp_path / "Data" / "xlwings.conf.bak").read_text() == old


def test_write_conf_creates_the_file(tmp_path):
    conf = tmp_path / "Data" / "xlwings.conf"
    assert helper('write_conf "$1" "$2"', str(conf), "/p/bin/python").returncode == 0
    assert conf.read_text() == '"INTERPRETER_MAC","/p/bin/python"\n'
    assert not (tmp_path / "Data" / "xlwings.conf.bak").exists()


def _fake_venv(prefix: Path, addin: bytes = b"xlwings addin") -> None:
    package = prefix / "lib" / "python3.11" / "site-packages" / "xlwings"
    (package / "addin").mkdir(parents=True)
    (package / "addin" / "xlwings.xlam").write_bytes(addin)
    (package / "xlwings-0.37.8.applescript").write_text("on VbaHandler(p)\nend VbaHandler\n")


def test_check_xlwings_addin_notices_what_xlwings_addin_install_swallowed(tmp_path):
    """xlwings' cli catches its errors and exits 0: the files tell whether it worked."""
    prefix, startup, scripts = tmp_path / "venv", tmp_path / "Startup", tmp_path / "Scripts"
    _fake_venv(prefix)
    check = 'check_xlwings_addin "$1" "$2" "$3"'
    args = (str(prefix), str(startup), str(scripts))

    missing = helper(check, *args)
    assert missing.returncode == 1 and "not in" in missing.stdout
    startup.mkdir()
    (startup / "xlwings.xlam").write_bytes(b"an older add-in")
    stale = helper(check, *args)
    assert stale.returncode == 1 and "not the add-in of the xlwings just installed" in stale.stdout
    (startup / "xlwings.xlam").write_bytes(b"xlwings addin")
    no_script = helper(check, *args)
    assert no_script.returncode == 1 and "xlwings-0.37.8.applescript" in no_script.stdout
    scripts.mkdir()
    (scripts / "xlwings-0.37.8.applescript").write_text("")
    ok = helper(check, *args)
    assert ok.returncode == 0 and ok.stdout == ""


def test_doctor_failed_spots_a_fail_line_of_the_doctor():
    fine = render([Check("Python", OK, "3.11"), Check("Excel", NA, "no Excel on linux"),
                   Check("UDF modules", WARN, "xlfuncs.udfs not in UDF MODULES", "add it")])
    broken = render([Check("Python", OK, "3.11"),
                     Check("xlwings add-in", FAIL, "not found in /x", "xlwings addin install")])
    assert helper('doctor_failed "$1"', fine).returncode == 1
    assert helper('doctor_failed "$1"', broken).returncode == 0
    # and the Windows installer looks for the same thing
    assert r"-cmatch '\sFAIL(\s|$)'" in ps1("install.ps1")


def test_macos_doctor_fail_ends_with_a_warning_not_done():
    text = (INSTALL / "install.sh").read_text()
    block = text[text.index('step "7/7'):]
    assert "doctor_failed" in block and "Installed, but xlfuncs doctor reports problems" in block
    assert block.index("return 0", block.index("doctor_failed")) < block.index("Done.")


def test_unknown_option_is_refused():
    done = sh("install.sh", "--frobnicate")
    assert done.returncode == 2 and "unknown option --frobnicate" in done.stderr
    done = sh("install.sh", "--prefix")
    assert done.returncode == 2 and "--prefix needs a value" in done.stderr
    done = sh("uninstall.sh", "--frobnicate")
    assert done.returncode == 2 and "unknown option --frobnicate" in done.stderr


@pytest.mark.parametrize("script", ["install.sh", "uninstall.sh"])
def test_help_prints_the_usage_and_no_code(script):
    done = sh(script, "--help")
    assert done.returncode == 0
    assert "Usage: install/" in done.stdout and "--home DIR" in done.stdout
    assert "set -euo" not in done.stdout and not re.search(r"^#", done.stdout, re.MULTILINE)


def _installed_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / STARTUP).mkdir(parents=True)
    (home / STARTUP / "xlfuncs.xlam").write_bytes(b"x")
    (home / STARTUP / "xlwings.xlam").write_bytes(b"x")
    for venv in (home / ".xlfuncs" / "venv", home / OLD_PREFIX):
        (venv / "bin").mkdir(parents=True)
        (venv / "pyvenv.cfg").write_text("version = 3.11.9\n")
    (home / ".xlfuncs" / "config.toml").write_text("[api]\n")
    (home / CONF).parent.mkdir(parents=True)
    (home / CONF).write_text(
        f'"INTERPRETER_MAC","{home}/.xlfuncs/venv/bin/python"\n\n'
        '"UDF MODULES","xlfuncs.udfs;mymod"\n'
        f'"INTERPRETER_MAC","{home}/{OLD_PREFIX}/bin/python"\n'
        '"INTERPRETER_MAC","/opt/other/bin/python"\n')
    return home


def test_macos_uninstall_removes_xlfuncs_and_only_xlfuncs(tmp_path):
    home = _installed_home(tmp_path)
    before = (home / CONF).read_text()
    done = sh("uninstall.sh", "--home", str(home))
    assert done.returncode == 0, done.stderr
    assert not (home / STARTUP / "xlfuncs.xlam").exists()
    assert (home / STARTUP / "xlwings.xlam").exists(), "the xlwings add-in stays"
    assert not (home / ".xlfuncs" / "venv").exists()
    assert not (home / OLD_PREFIX).exists(), "the old default location goes too"
    assert (home / ".xlfuncs" / "config.toml").exists(), "the fund API settings stay"
    assert (home / CONF).read_text() == ('"UDF MODULES","xlfuncs.udfs;mymod"\n'
                                         '"INTERPRETER_MAC","/opt/other/bin/python"\n')
    assert (home / (CONF + ".bak")).read_text() == before


def test_macos_uninstall_removes_the_uv_environment_the_installer_made(tmp_path):
    home = _installed_home(tmp_path)
    (home / ".xlfuncs" / "uv" / "bin").mkdir(parents=True)
    (home / ".xlfuncs" / "uv" / "pyvenv.cfg").write_text("version = 3.15.0\n")
    done = sh("uninstall.sh", "--home", str(home))
    assert done.returncode == 0, done.stderr
    assert f"removed {home}/.xlfuncs/uv" in done.stdout
    assert not (home / ".xlfuncs" / "uv").exists()
    assert (home / ".xlfuncs" / "config.toml").exists()


def test_windows_uninstall_removes_the_uv_environment_before_the_folder():
    text = ps1("uninstall.ps1")
    tools = text.index('$tools = Join-Path $env:LOCALAPPDATA "xlfuncs\\uv"')
    assert text.index('Join-Path $tools "pyvenv.cfg"', tools) < text.index(
        "Remove-Item -LiteralPath $tools", tools)
    # before the environment's step, which removes an xlfuncs folder left empty
    assert tools < text.index('Step "Removing the environment')
    install = ps1("install.ps1")
    assert '$tools = Join-Path $env:LOCALAPPDATA "xlfuncs\\uv"' in install


def test_macos_uninstall_leaves_a_folder_that_is_not_an_environment(tmp_path):
    home = tmp_path / "home"
    mine = tmp_path / "projects"
    mine.mkdir()
    (mine / "thesis.docx").write_text("years of work")
    done = sh("uninstall.sh", "--home", str(home), "--prefix", str(mine))
    assert done.returncode == 0, done.stderr
    assert (mine / "thesis.docx").exists() and "left in place" in done.stdout


# ------------------------------------------------------------------ Windows (PowerShell)

def test_windows_installer_covers_the_chain():
    text = ps1("install.ps1")
    steps = re.findall(r'Step "(\d)/7 ', text)
    assert steps == [str(i) for i in range(1, 8)]
    for needed in ("WindowsApps", "-m venv", "pip install", "addin install", "INTERPRETER_WIN",
                   "UDF MODULES", "xlfuncs.udfs", "XLSTART", "xlfuncs.xlam", "doctor"):
        assert needed in text, needed
    assert (ROOT / "workbooks" / "xlfuncs.xlam").is_file()
    cmd = (INSTALL / "install.cmd").read_text()
    assert "install.ps1" in cmd and "ExecutionPolicy Bypass" in cmd
    assert "uninstall.ps1" in (INSTALL / "uninstall.cmd").read_text()


@pytest.mark.parametrize("name", ["install.ps1", "uninstall.ps1", "install.cmd", "uninstall.cmd"])
def test_windows_scripts_are_ascii(name):
    """Windows PowerShell 5.1 reads a .ps1 without a BOM in the ANSI code page."""
    (INSTALL / name).read_bytes().decode("ascii")


def _balanced(src: str) -> None:
    """Raise ValueError unless (), {} and [] balance outside PowerShell strings and comments."""
    n = len(src)
    pairs = {")": "(", "}": "{", "]": "["}

    def line(i: int) -> int:
        return src.count("\n", 0, i) + 1

    def double_quoted(i: int) -> int:  # i after the opening quote; $( ) nests code
        while i < n:
            if src[i] == "`":
                i += 2
            elif src[i] == '"':
                if src[i + 1:i + 2] != '"':
                    return i + 1
                i += 2
            elif src.startswith("$(", i):
                i = code(i + 2, ")")
            else:
                i += 1
        raise ValueError("unterminated double-quoted string")

    def code(i: int, closer: str | None) -> int:
        stack: list[str] = []
        while i < n:
            ch = src[i]
            if src.startswith("<#", i):
                end = src.find("#>", i)
                if end < 0:
                    raise ValueError(f"unterminated <# at line {line(i)}")
                i = end + 2
            elif ch == "#":
                end = src.find("\n", i)
                i = n if end < 0 else end
            elif ch == "`":
                i += 2
            elif ch == "'":
                i += 1
                while True:
                    end = src.find("'", i)
                    if end < 0:
                        raise ValueError(f"unterminated ' at line {line(i)}")
                    i = end + 1
                    if src[i:i + 1] != "'":
                        break
                    i += 1
            elif ch == '"':
                i = double_quoted(i + 1)
            else:
                if ch in "({[":
                    stack.append(ch)
                elif ch in ")}]":
                    if not stack and ch == closer:
                        return i + 1
                    if not stack or stack.pop() != pairs[ch]:
                        raise ValueError(f"unbalanced {ch} at line {line(i)}")
                i += 1
        if closer or stack:
            raise ValueError(f"unclosed {closer or stack[-1]}")
        return i

    code(0, None)


@pytest.mark.parametrize("name", ["install.ps1", "uninstall.ps1"])
def test_powershell_scripts_are_well_formed(name):
    text = ps1(name)
    _balanced(text)
    # "$name:" in a string is a scope or drive reference (a parse error): write "${name}:"
    bad = [m.group(0) for m in re.finditer(r"\$(\w+):", text)
           if m.group(1).lower() not in ("env", "global", "script", "local")]
    assert not bad, bad


@pytest.mark.parametrize("snippet", ['if ($a) { Write-Host "x"', 'Write-Host "$($a.B"',
                                     "Write-Host 'it''s", 'foo) # (', '<# x #> $a = @(1, 2]'])
def test_the_balance_check_catches_mistakes(snippet):
    with pytest.raises(ValueError):
        _balanced(snippet)
    _balanced('<# ( #> if ($a) { "(`"$($a.B)" + \'{\' } # ]')


@pytest.mark.parametrize("name", ["install.ps1", "uninstall.ps1"])
def test_xlwings_conf_is_written_in_the_ansi_code_page_without_bom(name):
    """xlwings reads the file in VBA (Open ... For Input; Input #), in the ANSI code page:
    a UTF-8 BOM turns the first key into 'ï»¿"INTERPRETER_WIN"' and é into Ã©."""
    text = ps1(name)
    assert "Set-Content" not in text and "Out-File" not in text and "UTF8" not in text
    assert "[Text.Encoding]::Default" in text
    assert "WriteAllBytes($" in text and "$ansi.GetBytes(" in text  # GetBytes has no preamble
    assert "ReadAllLines($" in text and ", $ansi)" in text
    assert "xlwings.conf.bak" in text or '"$conf.bak"' in text or '"$path.bak"' in text


@pytest.mark.parametrize("name", ["install.ps1", "uninstall.ps1"])
def test_prefix_outside_the_ansi_code_page_falls_back_to_the_system_drive(name):
    """xlwings loads Python's DLL with LoadLibraryA: the path must survive the ANSI code page."""
    text = ps1(name)
    assert "$ansi.GetString($ansi.GetBytes($text)) -ceq $text" in text
    assert re.search(r'if \(-not \(Test-Ansi \$Prefix\)\) \{[^}]*\$env:SystemDrive "xlfuncs\\venv"',
                     text)


def test_windows_python_discovery_survives_the_store_stub():
    text = ps1("install.ps1")
    probe = text[text.index("function Invoke-Probe"):]
    probe = probe[:probe.index("\n}\n")]
    assert '$ErrorActionPreference = "Continue"' in probe and "2>$null" in probe
    assert "catch" in probe
    # the only redirected native call of the discovery is the probe's
    discovery = text[text.index('Step "1/7'):text.index('Step "2/7')]
    assert "2>$null" not in discovery and "Invoke-Probe" in discovery
    # a Store interpreter is passed over, not fatal
    for line in discovery.splitlines():
        if "WindowsApps" in line:
            assert "continue" in line and "Fail" not in line, line
    # every candidate is probed and the newest inside the range is kept
    assert "if (-not $found -or $minor -gt $found.Minor) { $found = $candidate }" in discovery
    # the venv is made by the candidate itself, not by a path read back from its stdout
    assert "& $found.Exe @($found.Args + $venvArgs + @($Prefix))" in text
    assert "& $python -m venv" not in text


def test_windows_reads_the_supported_range_from_the_range_file():
    """PowerShell's regex, applied here to the committed file, finds the same range."""
    text = ps1("install.ps1")
    assert '$rangeFile = Join-Path $repo "xlfuncs\\supported_pythons.txt"' in text
    pattern = re.search(r"if \(\$line -match '([^']+)'\) \{ \$range\[", text).group(1)
    found = {}
    for line in (ROOT / "xlfuncs" / "supported_pythons.txt").read_text().splitlines():
        match = re.match(pattern, line)
        if match:
            found[match.group(1)] = (3, int(match.group(2)))
    supported = supported_pythons()
    assert found == {"oldest": supported.oldest, "newest": supported.newest}
    # no version is written into the script: the candidates come from the range
    assert not re.search(r"3\.1\d", text), re.findall(r".*3\.1\d.*", text)
    discovery = text[text.index('Step "1/7'):text.index('Step "2/7')]
    assert "for ($minor = $range.newest; $minor -ge $range.oldest; $minor--)" in discovery
    assert "$minor -lt $range.oldest -or $minor -gt $range.newest" in discovery


def test_windows_provides_python_for_this_user_or_names_it():
    text = ps1("install.ps1")
    body = text[text.index("function Install-Python"):]
    body = body[:body.index("\n}\n")]
    winget = body.index("& winget install --id \"Python.Python.$version\" --exact --scope user")
    uv = body.index("& $uvExe python install $version")
    fail = body.index("install Python $version from https://www.python.org/downloads/")
    assert winget < fail and uv > fail, "winget first, then uv, else the one line"
    assert "pip install --only-binary=:all: uv" in body and '"-m", "venv", $tools' in body
    assert '(dry run) $uvExe python find $version' in body
    assert "runas" not in text.lower() and "--scope machine" not in text
    step1 = text[text.index('Step "1/7'):text.index('Step "2/7')]
    assert "Install-Python $newest $bootstrap" in step1


def test_both_installers_install_dependencies_from_wheels_only():
    ps = ps1("install.ps1")
    assert "& $venvPython -m pip install --upgrade --only-binary=:all: $Source" in ps
    bash = (INSTALL / "install.sh").read_text()
    assert '-m pip install --upgrade --only-binary=:all: "$source_dir"' in bash


def test_windows_run_checks_each_native_command():
    text = ps1("install.ps1")
    run = text[text.index("function Run("):]
    run = run[:run.index("\n}\n")]
    assert '$ErrorActionPreference = "Continue"' in run and "$global:LASTEXITCODE = 0" in run
    for block in re.findall(r"^Run \"[^\"]*\" \{(.*)\}$", text, re.MULTILINE):
        assert ";" not in block, f"one native command per Run, or only the last is checked: {block}"


def test_windows_udf_modules_is_a_list_xlfuncs_only_adds_and_removes_its_entry():
    install = ps1("install.ps1")
    assert '-split ";"' in install and '-notcontains "xlfuncs.udfs"' in install
    assert '$modules -join ";"' in install
    assert '$settings["UDF MODULES"] = "xlfuncs.udfs"' not in install
    uninstall = ps1("uninstall.ps1")
    assert '-split ";"' in uninstall and '$_ -ne "xlfuncs.udfs"' in uninstall
    assert "-notmatch" not in uninstall, "no line-wide pattern deletes"
    assert '$key -eq "INTERPRETER_WIN" -and $value -eq $venvPython' in uninstall


def test_windows_addin_comes_from_the_repository_not_from_source():
    text = ps1("install.ps1")
    assert '$repo = Split-Path -Parent $PSScriptRoot' in text
    assert '$addin = Join-Path $repo "workbooks\\xlfuncs.xlam"' in text
    assert "Join-Path $Source" not in text


def test_windows_checks_the_xlwings_addin_landed():
    text = ps1("install.ps1")
    step4 = text[text.index('Step "4/7'):text.index('Step "5/7')]
    assert 'Join-Path $xlstart "xlwings.xlam"' in step4 and "Test-Path" in step4
    assert "Get-FileHash" in step4 and step4.count("Fail ") >= 2


def test_windows_doctor_fail_ends_with_a_warning_not_done():
    text = ps1("install.ps1")
    end = text[text.index('Step "7/7'):]
    assert "$doctorFailed" in end and "Installed, but xlfuncs doctor reports problems" in end
    assert end.index("exit 0", end.index("if ($doctorFailed)")) < end.index("Done.")


def test_windows_environment_of_another_python_is_recreated():
    text = ps1("install.ps1")
    step2 = text[text.index('Step "2/7'):text.index('Step "3/7')]
    assert "pyvenv.cfg" in step2 and '$venvArgs += "--clear"' in step2
    assert "$had -ne $found.Version" in step2 and "recreating it" in step2


def test_windows_uninstall_deletes_only_an_environment_and_backs_up_the_conf():
    text = ps1("uninstall.ps1")
    env = text[text.index('Step "Removing the environment'):]
    delete = env.index("Remove-Item -LiteralPath $Prefix")
    assert env.index('Join-Path $Prefix "pyvenv.cfg"') < delete
    conf = text[text.index("$conf = Join-Path"):text.index('Step "Removing the environment')]
    assert conf.index('Copy-Item -LiteralPath $conf -Destination "$conf.bak"') < conf.index(
        "WriteAllBytes")


def test_windows_unblocks_the_downloaded_workbooks():
    text = ps1("install.ps1")
    assert "Unblock-File" in text and 'Join-Path $repo "workbooks"' in text


# ------------------------------------------------------------------------------ README

def _install_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Install (analysts)"):text.index("### The ribbon tab")]


def test_readme_states_the_supported_range_and_what_a_newer_python_gets():
    section = _install_section()
    supported = supported_pythons()
    stated = re.search(r"Python (\d+)\.(\d+) to (\d+)\.(\d+)", section)
    assert stated, "the install section states the supported range"
    numbers = tuple(int(g) for g in stated.groups())
    assert (numbers[:2], numbers[2:]) == (supported.oldest, supported.newest)
    assert "supported_pythons.txt" in section and "supported_pythons.py" in section
    assert "newer" in section and "https://www.python.org/downloads/" in section
    assert "--scope user" in section and "uv" in section
    assert "3.11 or later" not in (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_install_section_matches_the_installers():
    section = _install_section()
    assert "`~/.xlfuncs/venv`" in section
    assert "environment goes to\n  `~/Library/Application Support" not in section
    assert "unblock" in section.lower() and "xlwings.conf.bak" in section
    assert "UDF MODULES = xlfuncs.udfs" not in section, "it is added to a list, not set"
    assert "--home" in section and "--dry-run" in section
