"""What PostgreSQL text can hold: every check of client text for NUL and lone surrogates uses this one rule."""
from __future__ import annotations

import re

# NUL cannot be in PostgreSQL text; a lone surrogate (U+D800-U+DFFF) is not text and has no UTF-8 encoding.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def first_unstorable(text: str) -> str | None:
    """The first character of text that PostgreSQL cannot store, or None."""
    found = UNSTORABLE.search(text)
    return found.group() if found else None


def is_storable(text: str) -> bool:
    """Whether text can be sent to PostgreSQL as it is (a name with NUL or a surrogate matches nothing)."""
    return UNSTORABLE.search(text) is None
