r"""Keep a secret (the fund API token) out of every text xlfuncs shows: messages, logs, cells.

An API can echo the token back in many spellings: as sent, JSON-escaped
(``\u0053\u0065...``, any hex case, or only some characters escaped),
percent-encoded (``%2F`` or ``%2f``, ``+`` for a space), as HTML character
references (``&#83;``, ``&#x53;``), upper-cased, or base64-encoded alone or as
``user:token`` (standard or URL-safe alphabet, with or without padding), and it
may cut the token short. One rule covers them all, applied to the whole text
*before* any message is built from it or cut:

1. the plain spellings (the token, JSON-escaped as an encoder writes it,
   percent-encoded, HTML-escaped) are replaced by ``***``, so a message can
   still say ``Bearer ***``;
2. the text is then decoded every way it may have been encoded (JSON and
   ``\xHH`` escapes, percent-encoding with and without ``+`` as a space, HTML
   references), three layers deep (e.g. percent-encoded, then JSON-escaped
   twice), and every decoded form is searched, ignoring case, for a piece of
   the token or of its base64 (at each of the three byte alignments ``user:``
   can give it). A text in which any form still holds such a piece is **not
   echoed at all**: it is replaced by a fixed note (:data:`WITHHELD`; ``***``
   for a JSON value).

A piece is one of the secret's :data:`ANCHOR`-character slices that start at a
multiple of :data:`ANCHOR`, or its last :data:`ANCHOR` characters: so a prefix
of 6 characters is caught, and any stretch of :data:`PIECE` (11) or more,
wherever the API cut the token. The price of refusing rather than decoding
back is an error that shows less of the API's answer; none of it reaches a
message, a log, a cell or a file.

This module imports only the standard library.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

__all__ = ["ANCHOR", "PIECE", "WITHHELD", "Redactor"]

ANCHOR = 6  # characters of a searched slice of the secret
PIECE = 2 * ANCHOR - 1  # every run of the secret this long holds a whole slice
WITHHELD = "(not shown: it quotes the API token)"
_MASK = "***"
_DEPTH = 3  # layers of encoding undone (percent-encoded, JSON-escaped, then JSON-escaped again)

_ESCAPE = re.compile(r"\\(?:[uU]([0-9a-fA-F]{4})|[xX]([0-9a-fA-F]{2})|(.))", re.DOTALL)
_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape_match(match: re.Match[str]) -> str:
    hex4, hex2, char = match.groups()
    if hex4 or hex2:
        return chr(int(hex4 or hex2, 16))
    return _SIMPLE.get(char, char)  # \" \\ \/ and any other escaped character: itself


def _json_unescape(text: str) -> str:
    return _ESCAPE.sub(_unescape_match, text) if "\\" in text else text


def _percent(text: str) -> str:
    return unquote(text) if "%" in text else text


def _percent_plus(text: str) -> str:
    return unquote_plus(text) if "%" in text or "+" in text else text


def _html(text: str) -> str:
    return html.unescape(text) if "&" in text else text


_DECODERS: tuple[Callable[[str], str], ...] = (_json_unescape, _percent, _percent_plus, _html)


def _base64_cores(secret: str) -> set[str]:
    """The base64 characters that depend on ``secret`` alone, at each byte alignment.

    ``base64("user:" + secret)`` holds one of these whatever the user name, in
    the standard or the URL-safe alphabet.
    """
    data = secret.encode("utf-8")
    cores = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode("ascii")
        first = -(-8 * shift // 6)  # the first character made of the secret's bits only
        last = 8 * (shift + len(data)) // 6  # one past the last such character
        core = encoded[first:last]
        if core:
            cores.update({core, core.translate(str.maketrans("+/", "-_"))})
    return cores


def _anchors(secret: str) -> set[str]:
    """Slices of ``secret`` such that every run of :data:`PIECE` characters holds one."""
    if len(secret) <= ANCHOR:
        return {secret}
    found = {secret[i:i + ANCHOR] for i in range(0, len(secret) - ANCHOR + 1, ANCHOR)}
    found.add(secret[-ANCHOR:])
    return found


class Redactor:
    """Replaces or withholds secrets in text (see the module docstring for the rule).

    Parameters
    ----------
    secrets : iterable of str or None
        The secrets (the API token); blanks and ``None`` are ignored.

    """

    def __init__(self, secrets: Iterable[str | None]):
        kept = sorted({s for s in secrets if s}, key=len, reverse=True)
        spellings: set[str] = set()
        anchors: set[str] = set()
        for secret in kept:
            escaped = _json_escape(secret)
            spellings.update({secret, escaped, escaped.replace("/", "\\/"),
                              quote(secret, safe=""), quote(secret, safe="").lower(),
                              quote_plus(secret, safe=""), html.escape(secret)})
            for text in (secret, *_base64_cores(secret)):
                anchors.update(a.lower() for a in _anchors(text))
        self._spellings = tuple(sorted(spellings, key=len, reverse=True))
        self._anchors = tuple(sorted(anchors))

    def __bool__(self) -> bool:
        return bool(self._spellings)

    def __repr__(self) -> str:
        return "Redactor('***')" if self._spellings else "Redactor()"

    def quotes(self, text: str) -> bool:
        """Whether ``text``, decoded any way it may be encoded, holds a piece of a secret.

        Parameters
        ----------
        text : str
            Any text (a response body, a message).

        Returns
        -------
        bool

        """
        if not self._anchors:
            return False
        for form in _forms(text):
            low = form.lower()
            if any(anchor in low for anchor in self._anchors):
                return True
        return False

    def text(self, text: str, withheld: str = WITHHELD) -> str:
        """``text`` with the secrets' plain spellings as ``***``, or ``withheld`` if more remains.

        Parameters
        ----------
        text : str
            The text to show.
        withheld : str, default :data:`WITHHELD`
            What is shown instead of a text that still quotes a secret once its
            plain spellings are replaced.

        Returns
        -------
        str

        """
        if not self._spellings:
            return text
        for spelling in self._spellings:
            text = text.replace(spelling, _MASK)
        return withheld if self.quotes(text) else text

    def value(self, value: Any) -> Any:
        """A decoded JSON value with every string and key passed through :meth:`text`.

        A string that still quotes a secret becomes ``***``.

        Parameters
        ----------
        value : object
            Decoded JSON (dicts, lists, strings, numbers, booleans, None).

        Returns
        -------
        object
            The same structure, scrubbed.

        """
        if not self._spellings:
            return value
        return self._value(value, {})

    def _value(self, value: Any, done: dict[str, str]) -> Any:
        if isinstance(value, str):
            if value not in done:  # keys and tickers repeat: each is checked once
                done[value] = self.text(value, _MASK)
            return done[value]
        if isinstance(value, list):
            return [self._value(v, done) for v in value]
        if isinstance(value, dict):
            return {self._value(str(k), done): self._value(v, done) for k, v in value.items()}
        return value


def _json_escape(secret: str) -> str:
    return json.dumps(secret)[1:-1]


def _forms(text: str) -> Iterable[str]:
    """``text`` and every decoding of it, :data:`_DEPTH` layers deep."""
    seen = {text}
    yield text
    layer = [text]
    for _ in range(_DEPTH):
        following = []
        for form in layer:
            for decode in _DECODERS:
                decoded = decode(form)
                if decoded not in seen:
                    seen.add(decoded)
                    following.append(decoded)
                    yield decoded
        layer = following
