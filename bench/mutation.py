"""Mutation testing of xlfuncs/core and xlfuncs/data with mutmut, one module at a time.

mutmut seeds small bugs (``+`` for ``-``, ``<`` for ``<=``, a constant changed, an
argument dropped...) into one function at a time and runs the tests that call that
function; a mutant no test notices "survives". For each module this prints the score

    score = (killed + timeout) / (mutants - equivalent)

and every surviving mutant with its diff. A mutant with no test that reaches it
counts as a survivor. Equivalent mutants (no input can tell them apart) are listed
with the reason in ``bench/mutation.toml``, which also names the test files run for
each module; they are left out of the score and not reported again.

It is slow (minutes per module; far longer for ``_implied.py`` and ``_optimise.py``)
and CPU-heavy, so it is not part of the test command. Run it after changing a
module of the core or its tests, on that module::

    python3 -m venv /tmp/mutvenv
    /tmp/mutvenv/bin/pip install -e '.[test,mutation]'
    /tmp/mutvenv/bin/python bench/mutation.py --module core/_metrics.py

Every module runs in its own copy of the tree under ``--workdir`` (mutmut keeps its
results there and re-tests only the functions changed since the last run), under
``nice -n 19``, with one mutant at a time and BLAS on one thread; ``--timeout`` caps
each module's run (what finished is still reported). ``--sample N`` tests N mutants
drawn with ``--seed`` instead of all of them (say so when quoting the score).

Exit status: 0 when every module reaches ``--min-score`` (default 0: report only),
1 otherwise.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "bench" / "mutation.toml"
MUTMUT = Path(sys.executable).with_name("mutmut")
ALSO_COPY = ("README.md",)

# mutmut's exit codes (mutmut/stats.py), grouped for the score
KILLED = {1: "killed", 3: "killed", 37: "killed"}
TIMEOUT = {36, 24, -24, 152, 255}
SURVIVED = {0: "survived", 5: "no tests", 33: "no tests"}


@dataclass(frozen=True)
class Equivalent:
    """A mutant that cannot change any result."""

    line: str
    reason: str


@dataclass
class Outcome:
    """The results of one module's run."""

    module: str
    counts: Counter = field(default_factory=Counter)
    survivors: list[tuple[str, str, str]] = field(default_factory=list)  # name, status, diff
    stale: list[str] = field(default_factory=list)  # equivalents whose line changed
    sampled: int | None = None
    timed_out: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def score(self) -> float:
        counted = self.total - self.counts["equivalent"] - self.counts["not checked"]
        done = self.counts["killed"] + self.counts["timeout"]
        return done / counted if counted else float("nan")


def load_config(path: Path = CONFIG) -> tuple[dict[str, list[str]], dict[str, Equivalent]]:
    """The test files per module and the equivalent mutants."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    modules = {m: list(v["tests"]) for m, v in data.get("modules", {}).items()}
    equivalent = {e["mutant"]: Equivalent(e["line"].strip(), e["reason"])
                  for e in data.get("equivalent", [])}
    return modules, equivalent


def load_deselected(path: Path = CONFIG) -> dict[str, list[str]]:
    """The tests (pytest node ids) left out of each module's test files."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {m: list(v.get("deselect", [])) for m, v in data.get("modules", {}).items()}


def _sync(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``, rewriting only files that differ (mutmut goes by mtime)."""
    for path in src.rglob("*"):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        target = dst / path.relative_to(src)
        if target.exists() and filecmp.cmp(path, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def prepare(workdir: Path, module: str, tests: list[str],
            deselect: list[str] | None = None) -> Path:
    """A copy of the tree in which mutmut mutates ``module`` only and runs ``tests``.

    ``deselect`` names tests of those files that are not run (pytest node ids).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    _sync(ROOT / "xlfuncs", workdir / "xlfuncs")
    _sync(ROOT / "tests", workdir / "tests")
    for name in ALSO_COPY:  # files of the repository some tests read
        if not (workdir / name).exists() or not filecmp.cmp(ROOT / name, workdir / name,
                                                            shallow=False):
            shutil.copy2(ROOT / name, workdir / name)
    settings = {
        "source_paths": ["xlfuncs"],
        "only_mutate": [f"xlfuncs/{module}"],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "--hypothesis-seed=0",
                                *(a for node in deselect or [] for a in ("--deselect", node))],
        "also_copy": list(ALSO_COPY),
        "use_git_change_detection": False,
        "process_isolation": "fork",
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8") + "\n".join(lines) + "\n"
    target = workdir / "pyproject.toml"
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return workdir


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env["PYTHONHASHSEED"] = "0"
    return env


def mutant_names(workdir: Path, module: str) -> list[str]:
    """Every mutant mutmut makes of ``module`` (without running anything)."""
    code = (
        "import sys, pathlib\n"
        "from mutmut.mutation.file_mutation import mutate_file_contents\n"
        "from mutmut.utils.format_utils import get_mutant_name\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "for n in mutate_file_contents(str(p), p.read_text()).mutant_names:\n"
        "    print(get_mutant_name(p, n))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, f"xlfuncs/{module}"], cwd=workdir,
                         env=_env(), capture_output=True, text=True, check=True)
    return out.stdout.split()


def _codes(workdir: Path, module: str) -> dict[str, int | None]:
    """mutmut's exit code of every mutant of ``module`` from its last run (None: not run)."""
    meta = workdir / "mutants" / "xlfuncs" / f"{module}.meta"
    if not meta.exists():
        return {}
    try:
        return json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    except (ValueError, KeyError):
        sys.exit(f"{meta} is damaged (a run killed while writing it): delete "
                 f"{workdir / 'mutants'} and run again")


def _alive(workdir: Path, module: str) -> list[str]:
    """The mutants that the last run did not kill."""
    return sorted(n for n, c in _codes(workdir, module).items()
                  if c is not None and c not in KILLED and c not in TIMEOUT)


def run_mutmut(workdir: Path, names: list[str], timeout: float) -> bool:
    """``nice -n 19 mutmut run --max-children 1``; False when ``timeout`` stopped it."""
    cmd = ["nice", "-n", "19", str(MUTMUT), "run", "--max-children", "1", *names]
    log = (workdir / "mutmut-run.log").open("w", encoding="utf-8")
    proc = subprocess.Popen(cmd, cwd=workdir, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        # Ctrl+C: mutmut stops after the mutant it is on and keeps its results (a SIGTERM
        # can land while it rewrites its result file and leave it empty)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return False
    finally:
        log.close()


def _diffs(workdir: Path, module: str, names: list[str]) -> dict[str, str]:
    """mutmut's diff of each mutant, in one process."""
    if not names:
        return {}
    code = (
        "import json, sys\n"
        "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
        "print(json.dumps({n: get_diff_for_mutant(n, path=sys.argv[1]) for n in sys.argv[2:]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, f"xlfuncs/{module}", *names],
                         cwd=workdir, env=_env(), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _mutated_line(diff: str) -> str:
    return " / ".join(x[1:].strip() for x in diff.splitlines()
                      if x.startswith("+") and not x.startswith("+++"))


def collect(workdir: Path, module: str, equivalent: dict[str, Equivalent],
            names: list[str] | None) -> Outcome:
    """Read mutmut's results for ``module`` (only ``names`` when sampled)."""
    codes = _codes(workdir, module)
    out = Outcome(module)
    alive = []
    for name, code in sorted(codes.items()):
        if names is not None and name not in names:
            continue
        if code is None:
            out.counts["not checked"] += 1
        elif code in KILLED:
            out.counts["killed"] += 1
        elif code in TIMEOUT:
            out.counts["timeout"] += 1
        else:
            alive.append((name, code))
    diffs = _diffs(workdir, module, [name for name, _ in alive])
    for name, code in alive:
        eq = equivalent.get(name)
        if eq is not None and eq.line == _mutated_line(diffs[name]):
            out.counts["equivalent"] += 1
            continue
        if eq is not None:
            out.stale.append(name)
        status = SURVIVED.get(code, f"exit code {code}")
        out.counts["survived" if status == "survived" else "no tests"] += 1
        out.survivors.append((name, status, diffs[name]))
    return out


def report(outcomes: list[Outcome]) -> str:
    """The score table, then each module's surviving mutants."""
    head = ("module", "mutants", "killed", "timeout", "survived", "no tests", "equivalent",
            "not run", "score")
    rows = [head]
    for o in outcomes:
        c = o.counts
        note = (" (sample)" if o.sampled is not None else "") + (" (timed out)" if o.timed_out
                                                                else "")
        rows.append((o.module, str(o.total), str(c["killed"]), str(c["timeout"]),
                     str(c["survived"]), str(c["no tests"]), str(c["equivalent"]),
                     str(c["not checked"]), f"{o.score:.1%}{note}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                       for i, (v, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    for o in outcomes:
        if o.survivors:
            lines += ["", f"surviving mutants of {o.module}:"]
        for name, status, diff in o.survivors:
            lines.append(f"  {name} ({status})")
            lines += ["    " + x for x in diff.splitlines()
                      if x.startswith(("+", "-")) and not x.startswith(("+++", "---"))]
        for name in o.stale:
            lines.append(f"  {name} is listed as equivalent for another line: check "
                         "bench/mutation.toml")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the mutation tests of the chosen modules and print the table."""
    modules, equivalent = load_config()
    deselected = load_deselected()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--module", action="append", choices=sorted(modules), metavar="PATH",
                   help="a module under xlfuncs/, e.g. core/_metrics.py (repeat for more; "
                        "default: all in bench/mutation.toml)")
    p.add_argument("--workdir", type=Path,
                   default=Path(os.environ.get("TMPDIR", "/tmp")) / "xlfuncs-mutation")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds one module's run may take (default 1800)")
    p.add_argument("--sample", type=int, help="test this many mutants per module, drawn at "
                                               "random")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample")
    p.add_argument("--min-score", type=float, default=0.0,
                   help="exit 1 when a module scores below this (0.9 = 90%%)")
    args = p.parse_args(argv)
    if not MUTMUT.exists():
        p.error(f"mutmut is not installed beside {sys.executable} (pip install -e '.[mutation]')")
    outcomes = []
    for module in args.module or sorted(modules):
        workdir = prepare(args.workdir / module.replace("/", "_"), module, modules[module],
                          deselected[module])
        names = None
        if args.sample is not None:
            every = mutant_names(workdir, module)
            names = sorted(random.Random(args.seed).sample(every, min(args.sample, len(every))))
        print(f"{module}: running mutmut in {workdir} ...", flush=True)
        # mutmut re-tests only the functions that changed since its last run: the mutants
        # that survived it are run again by name, as the tests may have changed since
        again = [n for n in _alive(workdir, module) if names is None or n in names]
        started = time.monotonic()
        finished = run_mutmut(workdir, names or [], args.timeout)
        if finished and again and names is None:
            left = args.timeout - (time.monotonic() - started)
            finished = run_mutmut(workdir, again, left)
        outcome = collect(workdir, module, equivalent, names)
        outcome.sampled = None if names is None else len(names)
        outcome.timed_out = not finished
        outcomes.append(outcome)
        print(report([outcome]).splitlines()[1], flush=True)
    print()
    print(report(outcomes))
    return 0 if all(o.score >= args.min_score for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
