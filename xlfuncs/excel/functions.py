"""Registration of worksheet functions: xlwings decorators, error guard, registry.

One decorator, :func:`worksheet_function`, turns a plain Python function into
an xlfuncs UDF: it records the function in :data:`REGISTRY` (used by the
workbook builder, the doctor and the tests), wraps it so every error becomes
one text cell, and applies ``xw.func``/``xw.arg`` with the argument docs that
Excel's Function Wizard shows.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import xlwings as xw

from xlfuncs.excel.cells import udf

__all__ = ["REGISTRY", "WIZARD_MAX", "Argument", "WorksheetFunction", "worksheet_function"]

#: Excel's Function Wizard cuts help texts (description, each argument) at 255 characters.
WIZARD_MAX = 255


@dataclass(frozen=True)
class Argument:
    """One argument of a worksheet function."""

    name: str
    doc: str
    optional: bool
    is_range: bool


@dataclass(frozen=True)
class WorksheetFunction:
    """A registered worksheet function and what Excel needs to know about it."""

    name: str
    func: Callable[..., Any]
    doc: str
    args: tuple[Argument, ...]

    @property
    def min_args(self) -> int:
        """Number of required arguments."""
        return sum(not a.optional for a in self.args)

    @property
    def max_args(self) -> int:
        """Number of arguments, optional ones included."""
        return len(self.args)


REGISTRY: dict[str, WorksheetFunction] = {}


def worksheet_function(
    *, ranges: tuple[str, ...] = (), **docs: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a worksheet function.

    Parameters
    ----------
    ranges : tuple of str
        Arguments that are cell ranges: xlwings hands them as 2-D lists
        (``ndim=2``); the others are single cells.
    **docs : str
        Function Wizard help for each argument (every argument needs one).

    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func)
        args = []
        for p in sig.parameters.values():
            if p.name not in docs:
                raise TypeError(f"{func.__name__}: argument {p.name} has no doc")
            args.append(
                Argument(p.name, docs[p.name][:WIZARD_MAX], p.default is not p.empty,
                         p.name in ranges)
            )
        doc = inspect.getdoc(func) or ""
        summary = doc.split("\n\n")[0].replace("\n", " ")[:WIZARD_MAX]
        guarded = udf(func)
        guarded.__doc__ = summary
        wrapped: Callable[..., Any] = guarded
        for a in reversed(args):
            options: dict[str, Any] = {"doc": a.doc, "err_to_str": True}
            if a.is_range:
                options["ndim"] = 2
            wrapped = xw.arg(a.name, **options)(wrapped)
        wrapped = xw.func(category="xlfuncs")(wrapped)
        REGISTRY[func.__name__] = WorksheetFunction(func.__name__, wrapped, summary, tuple(args))
        return wrapped

    return decorate
