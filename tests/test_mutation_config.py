"""bench/mutation.toml stays in step with the tree: its modules, test files and equivalents."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_mutation", ROOT / "bench" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_module_and_test_file_exists_and_the_core_is_covered():
    modules, _ = load_bench().load_config()
    for module, tests in modules.items():
        assert (ROOT / "xlfuncs" / module).is_file(), module
        assert tests, module
        for test in tests:
            assert (ROOT / test).is_file(), (module, test)
    core = {f"core/{p.name}" for p in (ROOT / "xlfuncs" / "core").glob("_*.py")}
    numerical = {"core/_metrics.py", "core/_beta.py", "core/_implied.py", "core/_hmm.py",
                 "core/_regime.py", "core/_optimise.py"}
    assert numerical <= set(modules) and numerical <= core


def test_every_equivalent_mutant_names_its_module_line_and_reason():
    modules, equivalent = load_bench().load_config()
    prefixes = tuple("xlfuncs." + m.removesuffix(".py").replace("/", ".") + "."
                     for m in modules)
    for name, eq in equivalent.items():
        assert name.startswith(prefixes) and "__mutmut_" in name, name
        assert eq.line and len(eq.reason) > 20, name


def test_the_score_leaves_out_equivalent_and_unrun_mutants():
    bench = load_bench()
    out = bench.Outcome("core/_x.py")
    out.counts.update({"killed": 90, "timeout": 0, "survived": 10, "equivalent": 5,
                       "not checked": 3})
    assert out.total == 108
    assert out.score == 0.9
    assert bench._mutated_line("--- a\n+++ b\n-    x = 1\n+    x = 2\n") == "x = 2"


def test_every_deselected_test_exists_in_a_file_of_its_module():
    bench = load_bench()
    modules, _ = bench.load_config()
    for module, nodes in bench.load_deselected().items():
        for node in nodes:
            path, _, name = node.partition("::")
            assert path in modules[module], (module, node)
            assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), (module, node)
