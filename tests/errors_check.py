"""One check for a documented error: its exact text and the argument it names."""

from __future__ import annotations

import pytest

from xlfuncs.errors import InputError, XlfuncsError


def raises_exactly(text: str, argument: str | None, func, *args,
                   kind: type[XlfuncsError] = InputError, **kwargs) -> XlfuncsError:
    """Call ``func``: it must raise ``kind`` with exactly ``text``, naming ``argument``."""
    with pytest.raises(kind) as info:
        func(*args, **kwargs)
    assert type(info.value) is kind
    assert str(info.value) == text
    assert info.value.argument == argument
    return info.value
