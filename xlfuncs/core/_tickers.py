"""One spelling per share class: ticker normalisation used wherever tickers are matched.

Issuers, brokers and data vendors write the same share class differently:
``BRK B`` (IBKR), ``BRK.B`` (most issuers), ``BRK-B`` (Yahoo), ``BRK/B``
(Bloomberg-like), and some append an exchange code such as ``NVDA US``. A
ticker is compared through :func:`normalise_ticker`, never by its raw text.
"""

from __future__ import annotations

import re

__all__ = ["normalise_ticker"]

# root, one separator, one class letter: BRK B, BRK.B, BRK-B, BRK/B, BF-B
_SHARE_CLASS = re.compile(r"^([A-Z0-9&]+)[ .\-/]([A-Z])$")
# US share classes that some issuers (iShares) write with no separator at all.
# Only well-known dual-class names: a general rule would turn real tickers such
# as FOXA or NWSA into something else.
_JOINED_CLASSES = {
    "BRKA": "BRK.A", "BRKB": "BRK.B", "BFA": "BF.A", "BFB": "BF.B", "LENB": "LEN.B",
    "HEIA": "HEI.A", "MOGA": "MOG.A", "MOGB": "MOG.B", "GEFB": "GEF.B", "CRDA": "CRD.A",
    "CRDB": "CRD.B", "UHALB": "UHAL.B",
}
# the only exchange suffix dropped: the US composite code (other suffixes such
# as "SAP GY" or "7203 JP" identify a different listing and are kept)
_US_SUFFIX = " US"


def normalise_ticker(text: object) -> str:
    """The canonical form of a ticker: upper case, share class as ``ROOT.CLASS``.

    Parameters
    ----------
    text : object
        A ticker as written anywhere (cell, issuer file, API).

    Returns
    -------
    str
        Upper case with single spaces; a trailing `` US`` exchange code
        removed; a one-letter share class after a space, dot, dash or slash
        written with a dot (``BRK B`` -> ``BRK.B``); a few dual-class names
        that iShares writes joined (``BRKB``, ``BFB``) likewise. Other
        suffixes are kept.

    Examples
    --------
    >>> [normalise_ticker(t) for t in ("brk b", "BRK-B", "BRKB", "NVDA US", "SAP GY")]
    ['BRK.B', 'BRK.B', 'BRK.B', 'NVDA', 'SAP GY']

    """
    ticker = " ".join(str(text).upper().split())
    while ticker.endswith(_US_SUFFIX) and len(ticker) > len(_US_SUFFIX):
        ticker = ticker[: -len(_US_SUFFIX)].rstrip()
    match = _SHARE_CLASS.match(ticker)
    if match:
        ticker = f"{match[1]}.{match[2]}"
    return _JOINED_CLASSES.get(ticker, ticker)
