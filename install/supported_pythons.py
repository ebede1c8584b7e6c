"""Which Python versions can install xlfuncs from binary wheels only? Ask the package index.

For each CPython from the oldest that ``requires-python`` allows up to
:data:`NEWEST_TO_PROBE` and each of Windows x64, macOS arm64 and macOS x86_64,
pip resolves xlfuncs' runtime dependencies (from pyproject.toml) without
installing anything::

    pip install --dry-run --report - --only-binary=:all: --platform P
        --python-version 3.X --implementation cp --abi cp3X ...

pip evaluates environment markers for the machine it runs on, not for
``--platform``: a dependency such as xlwings' ``pywin32; platform_system ==
"Windows"`` is skipped when this runs on Linux. So the resolved tree is walked
again with the markers of the target platform and anything pip left out is
added to the requirements and resolved again, until nothing is missing.

It prints the table, then:

- without ``--check``: writes the widest run of versions that install everywhere
  to ``xlfuncs/supported_pythons.txt`` (the one source for the installers,
  ``xlfuncs doctor`` and the README) and the matching ``requires-python`` in
  pyproject.toml;
- with ``--check`` (what CI runs): exits 1 when a version inside the committed
  range does not install on every platform, and only says so when a newer one
  now would.

Exit codes: 0 fine, 1 the range is not installable (or none is), 2 the index
could not be asked.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from xlfuncs.pythons import RANGE_FILE, PythonRange, parse_range, render_range  # noqa: E402

#: The newest CPython probed (python.org offers it).
NEWEST_TO_PROBE = (3, 15)
#: Rounds of "resolve, then add what pip's markers left out" before giving up.
MAX_ROUNDS = 4


@dataclass(frozen=True)
class Platform:
    """A platform the installers support: pip's tag and the markers it has."""

    label: str
    tag: str
    markers: Mapping[str, str]


#: macOS 12 or later: scipy's arm64 wheels need macOS 12 (none of its releases has one for 11).
PLATFORMS = (
    Platform("Windows x64", "win_amd64", {"sys_platform": "win32", "platform_system": "Windows",
                                          "os_name": "nt", "platform_machine": "AMD64"}),
    Platform("macOS arm64", "macosx_12_0_arm64", {"sys_platform": "darwin",
                                                  "platform_system": "Darwin", "os_name": "posix",
                                                  "platform_machine": "arm64"}),
    Platform("macOS x86_64", "macosx_12_0_x86_64", {"sys_platform": "darwin",
                                                    "platform_system": "Darwin",
                                                    "os_name": "posix",
                                                    "platform_machine": "x86_64"}),
)


@dataclass(frozen=True)
class Outcome:
    """One cell of the table: whether pip resolved binary wheels for everything."""

    ok: bool
    reason: str = ""  # when not ok: what pip could not find
    packages: Mapping[str, str] = field(default_factory=dict)  # name -> version, when ok
    unreachable: bool = False  # the index did not answer: nothing is known


class IndexUnreachable(RuntimeError):
    """pip could not reach the package index."""


def target_environment(python: tuple[int, int], platform: Platform) -> dict[str, str]:
    """The environment markers of CPython ``python`` on ``platform``."""
    dotted = f"{python[0]}.{python[1]}"
    return {"python_version": dotted, "python_full_version": f"{dotted}.0",
            "implementation_name": "cpython", "implementation_version": f"{dotted}.0",
            "platform_python_implementation": "CPython", **platform.markers}


def _applies(req: Requirement, env: Mapping[str, str], extra: str = "") -> bool:
    return req.marker is None or req.marker.evaluate({**env, "extra": extra})


def _bare(req: Requirement) -> str:
    """The requirement without its marker (already evaluated for the target)."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def missing_requirements(report: Mapping, top: Iterable[str],
                         env: Mapping[str, str]) -> list[str]:
    """What the target needs that pip's resolution (its ``--report``) left out.

    Parameters
    ----------
    report : mapping
        pip's installation report (``{"install": [{"metadata": {...}}, ...]}``).
    top : iterable of str
        The requirements that were resolved.
    env : mapping
        The target's environment markers (:func:`target_environment`).

    Returns
    -------
    list of str
        Requirements, without markers, of packages that the target's markers
        call for but that are not in the report (sorted).

    """
    resolved = {canonicalize_name(item["metadata"]["name"]): item["metadata"]
                for item in report.get("install", [])}
    stack = [r for r in map(Requirement, top) if _applies(r, env)]
    done: set[tuple[str, str]] = set()
    missing: set[str] = set()
    while stack:
        req = stack.pop()
        name = canonicalize_name(req.name)
        if name not in resolved:
            missing.add(_bare(req))
            continue
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in done:
                continue
            done.add((name, extra))
            for dep in map(Requirement, resolved[name].get("requires_dist") or []):
                if _applies(dep, env, extra):
                    stack.append(dep)
    return sorted(missing)


_NOT_FOUND = re.compile(r"Could not find a version that satisfies the requirement (\S+)")
_NO_PYTHON = re.compile(r"requires a different Python|Requires-Python")
_OFFLINE = re.compile(r"NewConnectionError|Temporary failure in name resolution|"
                      r"Max retries exceeded|ProxyError|SSLError|ConnectTimeout")


def failure_reason(stderr: str) -> str:
    """The reason pip gives for a failed resolution, in a few words, for the table.

    Raises
    ------
    IndexUnreachable
        When pip could not reach the index (then nothing is known about wheels).

    """
    if _OFFLINE.search(stderr):
        raise IndexUnreachable("the package index did not answer")
    found = _NOT_FOUND.search(stderr)
    if found:
        name = re.split(r"[<>=!~;\[ ]", found.group(1), maxsplit=1)[0]
        return f"no wheel: {canonicalize_name(name)}"
    if _NO_PYTHON.search(stderr):
        return "needs another Python"
    lines = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
    return lines[-1][len("ERROR:"):].strip() if lines else "pip failed"


Resolver = Callable[[Sequence[str], tuple[int, int], Platform], "Mapping | str"]


def pip_resolver(pip: Sequence[str] = (sys.executable, "-m", "pip"),
                 extra_args: Sequence[str] = ()) -> Resolver:
    """A resolver that runs pip: it returns pip's report, or the failure reason (a str)."""

    def resolve(requirements: Sequence[str], python: tuple[int, int],
                platform: Platform) -> Mapping | str:
        with tempfile.TemporaryDirectory(prefix="xlfuncs-pythons-") as tmp:
            report = Path(tmp) / "report.json"
            # --target: older pips refuse --platform without it (nothing is written: --dry-run)
            command = [*pip, "install", "--dry-run", "--ignore-installed", "--quiet",
                       "--disable-pip-version-check", "--target", str(Path(tmp) / "target"),
                       "--report", str(report), "--only-binary=:all:",
                       "--platform", platform.tag, "--implementation", "cp",
                       "--python-version", f"{python[0]}.{python[1]}",
                       "--abi", f"cp{python[0]}{python[1]}", *extra_args, *requirements]
            done = subprocess.run(command, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, check=False)
            if done.returncode != 0 or not report.is_file():
                return failure_reason(done.stderr)
            return json.loads(report.read_text(encoding="utf-8"))

    return resolve


def probe(requirements: Sequence[str], python: tuple[int, int], platform: Platform,
          resolve: Resolver) -> Outcome:
    """Resolve ``requirements`` for one cell, adding what the target's markers need."""
    env = target_environment(python, platform)
    wanted = [_bare(r) for r in map(Requirement, requirements) if _applies(r, env)]
    for _ in range(MAX_ROUNDS):
        try:
            got = resolve(wanted, python, platform)
        except IndexUnreachable as exc:
            return Outcome(False, str(exc), unreachable=True)
        if isinstance(got, str):
            return Outcome(False, got)
        missing = [m for m in missing_requirements(got, wanted, env) if m not in wanted]
        if not missing:
            return Outcome(True, packages={canonicalize_name(i["metadata"]["name"]):
                                           i["metadata"]["version"] for i in got["install"]})
        wanted += missing
    return Outcome(False, f"still missing after {MAX_ROUNDS} rounds: {', '.join(missing)}")


Table = dict[tuple[int, int], dict[str, Outcome]]


def build_table(requirements: Sequence[str], pythons: Sequence[tuple[int, int]],
                resolve: Resolver, jobs: int = 1,
                platforms: Sequence[Platform] = PLATFORMS) -> Table:
    """Every (python, platform) cell, in a fixed order whatever ``jobs`` is."""
    cells = [(py, plat) for py in pythons for plat in platforms]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = list(pool.map(lambda c: probe(requirements, c[0], c[1], resolve), cells))
    table: Table = {py: {} for py in pythons}
    for (py, plat), outcome in zip(cells, outcomes, strict=True):
        table[py][plat.label] = outcome
    return table


def installable(table: Table) -> list[tuple[int, int]]:
    """The versions that install on every platform, oldest first."""
    return [py for py, row in sorted(table.items()) if all(o.ok for o in row.values())]


def widest_range(table: Table) -> PythonRange | None:
    """The longest run of consecutive versions that install everywhere (ties: the newer)."""
    good = installable(table)
    runs: list[list[tuple[int, int]]] = []
    for py in good:
        if runs and runs[-1][-1] == (py[0], py[1] - 1):
            runs[-1].append(py)
        else:
            runs.append([py])
    if not runs:
        return None
    best = max(runs, key=lambda run: (len(run), run[-1]))
    return PythonRange(best[0], best[-1])


def render_table(table: Table, platforms: Sequence[Platform] = PLATFORMS) -> str:
    """The table as aligned plain text, one row per Python, then the range it gives."""
    header = ["Python", *(f"{p.label} ({p.tag})" for p in platforms)]
    rows = [[f"{py[0]}.{py[1]}", *(("ok" if row[p.label].ok else row[p.label].reason)
                                   for p in platforms)]
            for py, row in sorted(table.items())]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    found = widest_range(table)
    lines.append("")
    lines.append(f"installs from binary wheels everywhere: Python {found}" if found else
                 "no Python installs from binary wheels on every platform")
    return "\n".join(lines)


def check_range(table: Table, claimed: PythonRange) -> list[str]:
    """One line per cell inside ``claimed`` that does not install (empty when all do)."""
    return [f"Python {py[0]}.{py[1]} on {label}: {outcome.reason}"
            for py in claimed.versions() for label, outcome in table.get(py, {}).items()
            if not outcome.ok] + [f"Python {py[0]}.{py[1]}: not probed"
                                  for py in claimed.versions() if py not in table]


def runtime_requirements(pyproject: Path) -> tuple[list[str], tuple[int, int]]:
    """The ``dependencies`` of pyproject.toml and the oldest Python ``requires-python`` allows."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    oldest = re.search(r">=\s*(\d+)\.(\d+)", project["requires-python"])
    if not oldest:
        raise ValueError(f"{pyproject.name}: requires-python has no '>=3.X'")
    return list(project["dependencies"]), (int(oldest.group(1)), int(oldest.group(2)))


def requires_python_line(supported: PythonRange) -> str:
    """pyproject.toml's ``requires-python`` line for ``supported``."""
    newest = supported.newest
    return (f'requires-python = ">={supported.oldest[0]}.{supported.oldest[1]},'
            f'<{newest[0]}.{newest[1] + 1}"  # xlfuncs/{RANGE_FILE} (install/supported_pythons.py)')


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def write_range(supported: PythonRange, root: Path = ROOT) -> None:
    """Write the range file and pyproject.toml's ``requires-python`` for ``supported``."""
    _write(root / "xlfuncs" / RANGE_FILE, render_range(supported))
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    new, count = re.subn(r"^requires-python\s*=.*$", requires_python_line(supported), text,
                         count=1, flags=re.MULTILINE)
    if count != 1:
        raise ValueError(f"{pyproject} has no requires-python line")
    _write(pyproject, new)


def _version(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version such as 3.15")
    return int(match.group(1)), int(match.group(2))


def main(argv: Sequence[str] | None = None, resolve: Resolver | None = None,
         root: Path = ROOT) -> int:
    """Print the table; write the range (default) or check the committed one (``--check``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the committed range does not install everywhere")
    parser.add_argument("--up-to", type=_version, default=NEWEST_TO_PROBE, metavar="3.X",
                        help="the newest Python to probe (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=3, help="pip runs at once (default 3)")
    args = parser.parse_args(argv)

    requirements, oldest = runtime_requirements(root / "pyproject.toml")
    pythons = [(oldest[0], minor) for minor in range(oldest[1], args.up_to[1] + 1)]
    table = build_table(requirements, pythons, resolve or pip_resolver(), jobs=args.jobs)
    print("Binary wheels for xlfuncs' runtime dependencies "
          "(pip install --dry-run --only-binary=:all:)\n")
    print(render_table(table))
    unreachable = [o.reason for row in table.values() for o in row.values() if o.unreachable]
    if unreachable:
        print(f"\nsupported_pythons: {unreachable[0]}: nothing checked", file=sys.stderr)
        return 2
    found = widest_range(table)
    if args.check:
        claimed = parse_range((root / "xlfuncs" / RANGE_FILE).read_text(encoding="utf-8"))
        problems = check_range(table, claimed)
        for line in problems:
            print(f"supported_pythons: {line}", file=sys.stderr)
        if problems:
            print(f"supported_pythons: xlfuncs/{RANGE_FILE} claims Python {claimed}, which does "
                  "not install everywhere: run install/supported_pythons.py and commit the range",
                  file=sys.stderr)
            return 1
        if found and found.newest > claimed.newest:
            print(f"\nPython {found} would install too: run install/supported_pythons.py "
                  "to widen the range")
        print(f"\nThe committed range, Python {claimed}, installs everywhere.")
        return 0
    if found is None:
        print("supported_pythons: nothing written", file=sys.stderr)
        return 1
    write_range(found, root)
    print(f"\nwrote xlfuncs/{RANGE_FILE} and requires-python in pyproject.toml: Python {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
