"""install/supported_pythons.py: the table, the range and the check, offline.

The package index is replaced by canned answers (a resolver that knows which
wheels exist, and evaluates markers for this machine as pip does), or by real
pip runs against a folder of tiny wheels made here (``--no-index``).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from xlfuncs.pythons import PythonRange, parse_range, render_range, supported_pythons

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("supported_pythons",
                                               ROOT / "install" / "supported_pythons.py")
sp = importlib.util.module_from_spec(_spec)
sys.modules["supported_pythons"] = sp
_spec.loader.exec_module(sp)

WIN, ARM, INTEL = sp.PLATFORMS
PYTHONS = [(3, minor) for minor in range(11, 16)]

# A small index: package -> (version, requires_dist, the (python, platform tag) with no wheel)
INDEX = {
    "numpy": ("2.4.0", [], set()),
    "cvxpy": ("1.9.0", ["osqp>=1.0", "numpy>=2"], set()),
    "osqp": ("1.1.0", ["numpy"], {((3, 15), "win_amd64")}),
    "xlwings": ("0.37.8", ['pywin32>=224; platform_system == "Windows"',
                           'appscript>=1.0.1; platform_system == "Darwin"',
                           'jinja2; extra == "reports"'], set()),
    "pywin32": ("311", [], set()),
    "appscript": ("1.3", [], set()),
    "jinja2": ("3.1", [], set()),
}
REQUIREMENTS = ["numpy>=1.26", "cvxpy>=1.5", "xlwings>=0.31"]


def canned(requirements, python, platform):
    """Resolve as pip does: markers of *this* machine, wheels of the target."""
    here = default_environment()
    stack, install = [Requirement(r) for r in requirements], {}
    while stack:
        req = stack.pop()
        if req.marker is not None and not req.marker.evaluate({**here, "extra": ""}):
            continue
        name = canonicalize_name(req.name)
        version, deps, missing = INDEX[name]
        if (python, platform.tag) in missing:
            return f"no wheel: {name}"
        if name not in install:
            install[name] = {"metadata": {"name": name, "version": version,
                                          "requires_dist": deps}}
            stack.extend(Requirement(d) for d in deps)
    return {"install": list(install.values())}


def test_markers_of_the_target_bring_in_what_pip_left_out():
    """pip skips pywin32 on Linux; the walk with Windows' markers adds it back."""
    assert "pywin32" not in {i["metadata"]["name"] for i in
                             canned(REQUIREMENTS, (3, 14), WIN)["install"]}
    win = sp.probe(REQUIREMENTS, (3, 14), WIN, canned)
    mac = sp.probe(REQUIREMENTS, (3, 14), ARM, canned)
    assert win.ok and mac.ok
    assert {"pywin32", "osqp", "numpy"} <= set(win.packages) and "appscript" not in win.packages
    assert "appscript" in mac.packages and "pywin32" not in mac.packages
    assert "jinja2" not in win.packages, "an extra nobody asked for is not installed"
    broken = sp.probe(REQUIREMENTS, (3, 15), WIN, canned)
    assert not broken.ok and broken.reason == "no wheel: osqp"


def test_missing_requirements_follows_extras_and_drops_markers():
    report = {"install": [{"metadata": {"name": "xlwings", "requires_dist":
                                        INDEX["xlwings"][1]}}]}
    env = sp.target_environment((3, 14), WIN)
    assert sp.missing_requirements(report, ["xlwings"], env) == ["pywin32>=224"]
    assert sp.missing_requirements(report, ["xlwings[reports]"], env) == ["jinja2",
                                                                           "pywin32>=224"]
    mac = sp.target_environment((3, 14), INTEL)
    assert sp.missing_requirements(report, ["xlwings"], mac) == ["appscript>=1.0.1"]
    assert sp.missing_requirements(report, ['xlwings; python_version < "3.12"'], mac) == []


def test_table_range_and_check():
    table = sp.build_table(REQUIREMENTS, PYTHONS, canned, jobs=2)
    rows = sp.render_table(table).splitlines()
    header = rows[0].split("  ")
    assert header[0] == "Python" and "Windows x64 (win_amd64)" in rows[0]
    by_python = {row.split()[0]: row for row in rows[1:6]}
    assert list(by_python) == ["3.11", "3.12", "3.13", "3.14", "3.15"]
    start = rows[0].index("Windows x64")
    assert by_python["3.15"][start:].startswith("no wheel: osqp")
    assert by_python["3.15"].count("ok") == 2 and by_python["3.14"].split()[1:] == ["ok"] * 3
    assert rows[-1] == "installs from binary wheels everywhere: Python 3.11 to 3.14"
    assert sp.widest_range(table) == PythonRange((3, 11), (3, 14))
    assert sp.check_range(table, PythonRange((3, 12), (3, 14))) == []
    assert sp.check_range(table, PythonRange((3, 13), (3, 15))) == [
        "Python 3.15 on Windows x64: no wheel: osqp"]
    assert sp.check_range(table, PythonRange((3, 14), (3, 16))) == [
        "Python 3.15 on Windows x64: no wheel: osqp", "Python 3.16: not probed"]


def _table(good: set[tuple[int, int]]):
    return {py: {p.label: sp.Outcome(py in good, "" if py in good else "no wheel: x")
                 for p in sp.PLATFORMS} for py in PYTHONS}


@pytest.mark.parametrize(("good", "expected"), [
    ({(3, 11), (3, 12), (3, 13), (3, 14), (3, 15)}, ((3, 11), (3, 15))),
    ({(3, 12), (3, 13)}, ((3, 12), (3, 13))),
    ({(3, 11), (3, 13), (3, 14)}, ((3, 13), (3, 14))),  # the longest run
    ({(3, 11), (3, 12), (3, 14), (3, 15)}, ((3, 14), (3, 15))),  # a tie: the newer run
    ({(3, 15)}, ((3, 15), (3, 15))),
])
def test_widest_range_is_the_longest_run_of_good_versions(good, expected):
    runs, run = [], []
    for py in PYTHONS:  # the runs of consecutive good versions, counted independently
        if py in good:
            run.append(py)
        elif run:
            runs.append(run)
            run = []
    runs.append(run)
    longest = max(len(r) for r in runs)
    newest_longest = [r for r in runs if len(r) == longest][-1]
    assert (newest_longest[0], newest_longest[-1]) == expected
    assert sp.widest_range(_table(good)) == PythonRange(*expected)


def test_nothing_installable_is_no_range():
    table = _table(set())
    assert sp.widest_range(table) is None
    assert sp.render_table(table).endswith("no Python installs from binary wheels on every "
                                           "platform")


def test_pip_messages_are_read():
    stderr = ("ERROR: Could not find a version that satisfies the requirement osqp>=1.0.0 "
              "(from cvxpy) (from versions: none)\nERROR: No matching distribution found for "
              "osqp>=1.0.0\n")
    assert sp.failure_reason(stderr) == "no wheel: osqp"
    assert sp.failure_reason("ERROR: Could not find a version that satisfies the requirement "
                             "Scikit_Learn>=1.4 (from versions: 1.0)") == "no wheel: scikit-learn"
    offline = ("WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, "
               "status=None)) after connection broken by 'NewConnectionError(...)': /simple/"
               "numpy/\n" + stderr)
    with pytest.raises(sp.IndexUnreachable):
        sp.failure_reason(offline)
    assert sp.failure_reason("ERROR: something else broke\n") == "something else broke"


def _project(tmp_path: Path, claimed: PythonRange) -> Path:
    (tmp_path / "xlfuncs").mkdir()
    (tmp_path / "xlfuncs" / "supported_pythons.txt").write_text(render_range(claimed))
    deps = ", ".join(f'"{r}"' for r in REQUIREMENTS)
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "x"\nrequires-python = ">=3.11"\ndependencies = [{deps}]\n')
    return tmp_path


def test_check_fails_on_a_claimed_version_that_does_not_install(tmp_path, capsys):
    root = _project(tmp_path, PythonRange((3, 11), (3, 15)))
    assert sp.main(["--check"], resolve=canned, root=root) == 1
    out, err = capsys.readouterr()
    assert "Python 3.15 on Windows x64: no wheel: osqp" in err
    assert "claims Python 3.11 to 3.15" in err
    assert "installs from binary wheels everywhere: Python 3.11 to 3.14" in out
    assert parse_range((root / "xlfuncs" / "supported_pythons.txt").read_text()) == PythonRange(
        (3, 11), (3, 15)), "--check writes nothing"


def test_check_passes_and_says_when_the_range_could_widen(tmp_path, capsys):
    root = _project(tmp_path, PythonRange((3, 11), (3, 13)))
    assert sp.main(["--check", "--jobs", "1"], resolve=canned, root=root) == 0
    out = capsys.readouterr().out
    assert "Python 3.11 to 3.14 would install too" in out
    assert "The committed range, Python 3.11 to 3.13, installs everywhere." in out


def test_without_check_the_range_and_requires_python_are_written(tmp_path, capsys):
    root = _project(tmp_path, PythonRange((3, 11), (3, 15)))
    assert sp.main([], resolve=canned, root=root) == 0
    assert parse_range((root / "xlfuncs" / "supported_pythons.txt").read_text()) == PythonRange(
        (3, 11), (3, 14))
    assert 'requires-python = ">=3.11,<3.15"' in (root / "pyproject.toml").read_text()
    assert not list(root.rglob("*.tmp"))


def test_an_unreachable_index_is_exit_2_not_a_verdict(tmp_path, capsys):
    def offline(requirements, python, platform):
        raise sp.IndexUnreachable("the package index did not answer")

    root = _project(tmp_path, PythonRange((3, 11), (3, 14)))
    assert sp.main(["--check", "--up-to", "3.12"], resolve=offline, root=root) == 2
    assert "did not answer" in capsys.readouterr().err


# ------------------------------------------------------------ real pip, a local index

def _wheel(folder: Path, name: str, version: str, tag: str, requires: list[str]) -> None:
    dist = f"{name}-{version}.dist-info"
    meta = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                    *(f"Requires-Dist: {r}\n" for r in requires)])
    with zipfile.ZipFile(folder / f"{name}-{version}-{tag}.whl", "w") as whl:
        whl.writestr(f"{dist}/METADATA", meta)
        whl.writestr(f"{dist}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n")
        whl.writestr(f"{dist}/RECORD", "")


def test_real_pip_resolves_binary_wheels_per_platform_and_python(tmp_path):
    if shutil.which("pip") is None and not (Path(sys.executable).parent / "pip").exists():
        pytest.skip("pip is not installed")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "xlwingsish", "1.0", "py3-none-any", ['winonly; platform_system == "Windows"'])
    _wheel(wheels, "winonly", "1.0", "cp314-cp314-win_amd64", [])
    _wheel(wheels, "native", "1.0", "cp314-cp314-win_amd64", [])
    _wheel(wheels, "native", "1.0", "cp314-cp314-macosx_11_0_arm64", [])
    (wheels / "native-1.0.tar.gz").write_bytes(b"")  # a source release must never be chosen
    resolve = sp.pip_resolver(extra_args=["--no-index", "--find-links", str(wheels)])
    win = sp.probe(["xlwingsish", "native"], (3, 14), WIN, resolve)
    assert win.ok, win.reason
    assert win.packages == {"xlwingsish": "1.0", "winonly": "1.0", "native": "1.0"}
    mac = sp.probe(["xlwingsish", "native"], (3, 14), ARM, resolve)
    assert mac.ok and mac.packages == {"xlwingsish": "1.0", "native": "1.0"}
    intel = sp.probe(["xlwingsish", "native"], (3, 14), INTEL, resolve)
    assert not intel.ok and intel.reason == "no wheel: native"
    newer = sp.probe(["xlwingsish", "native"], (3, 15), WIN, resolve)
    assert not newer.ok and re.fullmatch(r"no wheel: (native|winonly)", newer.reason)


# ------------------------------------------------------------ the committed range

def test_the_committed_range_file_reads_and_pyproject_agrees():
    supported = supported_pythons()
    assert supported.oldest <= (3, 11) <= supported.newest
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert sp.requires_python_line(supported) in text.splitlines()
    deps, oldest = sp.runtime_requirements(ROOT / "pyproject.toml")
    assert oldest == supported.oldest and any(d.startswith("xlwings") for d in deps)
    assert not any(d.startswith("hmmlearn") for d in deps)


def test_the_ci_runs_the_check_after_the_tests():
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    tests = next(i for i, line in enumerate(lines) if "pytest" in line)
    check = next(i for i, line in enumerate(lines) if "supported_pythons.py --check" in line)
    assert check > tests


def test_the_range_file_ships_as_package_data(tmp_path):
    """xlfuncs doctor reads it from an installed package: setuptools' build copies it."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "tests", "bench", "workbooks"))
    done = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()",
                           "build_py", "--build-lib", str(tmp_path / "lib")], cwd=source,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    shipped = (tmp_path / "lib" / "xlfuncs" / "supported_pythons.txt").read_text("utf-8")
    assert parse_range(shipped) == supported_pythons()
