"""Assets identified by label (ticker): alignment of inputs given in different orders.

Labels decide, never position: inputs that carry tickers are matched by
ticker; an input without tickers is taken in the common order only when that
order is unambiguous.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xlfuncs.core._tickers import normalise_ticker
from xlfuncs.errors import InputError

__all__ = ["Labelled", "align", "align_all"]


@dataclass(frozen=True)
class Labelled:
    """Numbers with optional labels (tickers) along their assets."""

    values: np.ndarray
    labels: tuple[str, ...] | None = None


def align(
    target: Sequence[str], source: Sequence[str], target_name: str, source_name: str,
    *, allow_extra: bool = False,
) -> list[int]:
    """Positions in ``source`` of each label of ``target``, matched as tickers.

    Labels are compared through :func:`normalise_ticker` (``BRK B`` is ``BRK.B``).
    With ``allow_extra``, ``source`` may hold more labels than ``target`` (a
    correlation matrix of a wider universe); they are left out.

    Raises
    ------
    InputError
        When the two sets of labels differ, naming a label that is missing.

    """
    pos = {normalise_ticker(lab): i for i, lab in enumerate(source)}
    missing = [t for t in target if normalise_ticker(t) not in pos]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"{missing[0]}{more} in {target_name} but not in {source_name}",
                         source_name.split()[0])
    extra = set(pos) - {normalise_ticker(t) for t in target}
    if extra and not allow_extra:
        first = next(lab for lab in source if normalise_ticker(lab) in extra)
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        raise InputError(f"{first}{more} in {source_name} but not in {target_name}",
                         source_name.split()[0])
    return [pos[normalise_ticker(t)] for t in target]


def _count(n: int, matrix: bool) -> str:
    unit = "asset" if matrix else "value"
    return f"{n} {unit}{'' if n == 1 else 's'}"


def align_all(
    *, wider: Sequence[str] = (), **named: Labelled
) -> tuple[tuple[str, ...] | None, dict[str, np.ndarray]]:
    """Bring vectors/matrices to one asset order: labels decide, never position.

    The reference order is that of the first labelled argument. An unlabelled
    argument is taken in that order only when every labelled argument lists
    its tickers in the same order; otherwise its order would be a guess. An
    argument named in ``wider`` may carry more tickers than the reference when
    both are labelled (a correlation matrix of a wider universe): the
    reference's tickers are taken from it.
    """
    items = list(named.items())
    first_name, first = items[0]
    n_first = first.values.shape[0]
    ref_labelled = next((v for _, v in items if v.labels is not None), None)
    for name, item in items[1:]:
        n = item.values.shape[0]
        if (n > n_first and name in wider and item.labels is not None
                and ref_labelled is not None and ref_labelled is not item):
            continue  # checked by ticker below
        if n != n_first:
            raise InputError(
                f"{first_name} has {_count(n_first, first.values.ndim == 2)} but {name} has "
                f"{_count(n, item.values.ndim == 2)}",
                name,
            )
    labelled = [(k, v) for k, v in items if v.labels is not None]
    if not labelled:
        return None, {k: v.values for k, v in items}
    ref_name, ref = labelled[0]
    unlabelled = [k for k, v in items if v.labels is None]
    out: dict[str, np.ndarray] = {}
    for name, item in items:
        vals = item.values
        if item.labels is not None and name != ref_name:
            idx = align(ref.labels, item.labels, ref_name, name, allow_extra=name in wider)
            if unlabelled and idx != sorted(idx):  # not in the same order
                raise InputError(
                    f"{unlabelled[0]} has no tickers but {ref_name} and {name} list theirs in "
                    f"different orders; add tickers to {unlabelled[0]}",
                    unlabelled[0],
                )
            vals = vals[np.ix_(idx, idx)] if vals.ndim == 2 else vals[idx]
        out[name] = vals
    return ref.labels, out
