"""How the package's modules import each other: no import circle; cli.py reads no file itself."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "xlfuncs"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The package's modules that ``name`` imports anywhere in its code, with a line each."""
    found: dict[str, int] = {}
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*here[: len(here) - node.level + 1], *([base] if base else [])])
            # ``from pkg import sub`` imports the module pkg.sub; ``from mod import name`` mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        for target in targets:
            while target and target not in modules:  # import a.b.c runs a.b.c (when ours)
                target = target.rpartition(".")[0]
            if target and target != name:
                found.setdefault(target, node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return groups


def test_no_module_imports_in_a_circle():
    """No two modules of the package import each other, directly or through others.

    Every ``import`` counts as an edge, at module level and inside functions alike:
    a module-level circle is the one that breaks at import time (a name not yet
    defined), and an import moved into a function to dodge that is the same circle
    in the design (two modules that each need the other), only hidden until the
    function runs. The one exception is an ``if TYPE_CHECKING:`` block, which
    never runs. ``from pkg import sub`` is an edge to the module ``pkg.sub``; an
    import of a submodule is not counted as an import of its parent package.
    Every circle is reported, each with the line of every import in it.
    """
    modules = _modules()
    edges = {name: _imports(name, path, modules) for name, path in modules.items()}
    found = []
    for group in _cycles(edges):
        links = [f"{a} -> {b} ({modules[a].relative_to(PACKAGE.parent)}:{edges[a][b]})"
                 for a in group for b in sorted(edges[a]) if b in group]
        found.append("; ".join(links))
    assert not found, "import circles:\n" + "\n".join(found)


def test_the_import_walk_sees_function_level_and_relative_imports(tmp_path):
    """The walk finds an import inside a function and a relative one (the test can fail)."""
    (tmp_path / "a.py").write_text("def f():\n    from . import b\n", encoding="utf-8")
    (tmp_path / "b.py").write_text("from .a import f\n"
                                   "from typing import TYPE_CHECKING\n"
                                   "if TYPE_CHECKING:\n    import pkg.c\n", encoding="utf-8")
    modules = {"pkg.a": tmp_path / "a.py", "pkg.b": tmp_path / "b.py",
               "pkg.c": tmp_path / "c.py"}
    edges = {n: _imports(n, p, modules) for n, p in modules.items() if p.exists()}
    edges["pkg.c"] = {}
    assert edges["pkg.a"] == {"pkg.b": 2}
    assert edges["pkg.b"] == {"pkg.a": 1}  # the TYPE_CHECKING import is not an edge
    assert _cycles(edges) == [["pkg.a", "pkg.b"]]


def test_the_command_reads_no_file_of_its_own():
    """``cli.py`` is arguments and commands: CSV and workbook reading is in ``xlfuncs.data``."""
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    called = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not imported & {"csv", "io"}  # (openpyxl makes the demo workbook: writing)
    assert not called & {"read_csv", "load_workbook", "read_excel", "reader"}
