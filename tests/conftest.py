"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hypothesis import settings

# Deterministic property tests: the same examples on every run and machine, no
# example database carried between runs.
settings.register_profile("xlfuncs", derandomize=True, database=None, print_blob=True)
settings.load_profile("xlfuncs")


@pytest.fixture(autouse=True)
def _fresh_estimate_cache():
    """Each test computes its own backtest estimates (a test may change how they are made)."""
    from xlfuncs.core import _backtest

    _backtest.MEMORY_CACHE.clear()
    yield
    _backtest.MEMORY_CACHE.clear()

# --------------------------------------------------------------------------- LibreOffice

_SKIP_LIBREOFFICE = "XLFUNCS_SKIP_LIBREOFFICE"
_LIBREOFFICE_PACKAGE = "libreoffice-calc"


def _find_soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def _apt_install(package: str) -> str:
    """Install a Debian package with apt-get; return a failure message or ''."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", package],
    )
    for cmd in steps:
        try:
            done = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=1800, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(cmd)} failed: {exc}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            return f"{' '.join(cmd)} exited with {done.returncode}: " + " | ".join(tail)
    return ""


@pytest.fixture(scope="session")
def soffice() -> str:
    """Path of LibreOffice's ``soffice``, installing ``libreoffice-calc`` when possible.

    When it is missing and the tests run as root with apt-get, the package is
    installed (as CI does); otherwise the test fails with what to do, or is
    skipped when XLFUNCS_SKIP_LIBREOFFICE=1.
    """
    found = _find_soffice()
    if found:
        return found
    if os.environ.get(_SKIP_LIBREOFFICE) == "1":
        pytest.skip(f"LibreOffice is not installed and {_SKIP_LIBREOFFICE}=1")
    geteuid = getattr(os, "geteuid", None)
    problem = "it is not installed"
    if geteuid is not None and geteuid() == 0 and shutil.which("apt-get"):
        problem = _apt_install(_LIBREOFFICE_PACKAGE) or "apt-get installed no soffice"
        found = _find_soffice()
        if found:
            return found
    pytest.fail(
        f"LibreOffice (soffice) is needed to check that the workbooks open, but {problem}. "
        f"Install it (apt-get install {_LIBREOFFICE_PACKAGE}) or set {_SKIP_LIBREOFFICE}=1 "
        "to skip these tests."
    )

# --------------------------------------------------------------------------- fund API

from fund_api import fund_api_fixture, refused_url_fixture  # noqa: E402, F401


@pytest.fixture
def sector_files(tmp_path):
    """Copies of the SPY sector example's inputs and correlation CSVs: (inputs, corr)."""
    from xlfuncs.data.samples import sample_path

    inputs = tmp_path / "inputs.csv"
    corr = tmp_path / "corr.csv"
    inputs.write_text(sample_path("sector_inputs_2025-02-18.csv").read_text())
    corr.write_text(sample_path("sector_corr_2025-02-18.csv").read_text())
    return inputs, corr
