"""Installers: shell syntax, the steps they announce, and the files they name."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL = Path(__file__).resolve().parents[1] / "install"


@pytest.mark.parametrize("script", ["install.sh", "uninstall.sh"])
def test_shell_scripts_parse(script):
    bash = shutil.which("bash")
    assert bash, "bash is needed to check the macOS installer"
    done = subprocess.run([bash, "-n", str(INSTALL / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_macos_installer_dry_run_announces_every_step(tmp_path):
    done = subprocess.run(["bash", str(INSTALL / "install.sh"), "--dry-run", "--home",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    steps = re.findall(r"^==> (\d)/7 (.+)$", done.stdout, re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(1, 8))
    text = done.stdout
    assert "xlwings addin install" in text and "xlfuncs doctor" in text
    assert "Startup.localized/Excel" in text and "INTERPRETER_MAC" in text
    assert not any(tmp_path.iterdir()), "a dry run must not write anything"


def test_unknown_option_is_refused():
    done = subprocess.run(["bash", str(INSTALL / "install.sh"), "--frobnicate"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "unknown option --frobnicate" in done.stderr


def test_windows_installer_covers_the_chain():
    ps1 = (INSTALL / "install.ps1").read_text()
    steps = re.findall(r'Step "(\d)/7 ', ps1)
    assert steps == [str(i) for i in range(1, 8)]
    for needed in ("WindowsApps", "-m venv", "pip install", "addin install", "INTERPRETER_WIN",
                   "UDF MODULES", "xlfuncs.udfs", "XLSTART", "xlfuncs.xlam", "doctor"):
        assert needed in ps1, needed
    assert (INSTALL.parent / "workbooks" / "xlfuncs.xlam").is_file()
    cmd = (INSTALL / "install.cmd").read_text()
    assert "install.ps1" in cmd and "ExecutionPolicy Bypass" in cmd
    assert "uninstall.ps1" in (INSTALL / "uninstall.cmd").read_text()
