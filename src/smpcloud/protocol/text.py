"""Free text that the service stores and shows again: printable, no control or bidi characters.

A task's name is stored by the server and echoed to every participant (task info, listings,
the CLI's tables, logs). A name holding NUL, a line break, a terminal escape sequence or a
bidirectional override (U+202E "RIGHT-TO-LEFT OVERRIDE" turns ``gnp.exe`` into what reads as
``exe.png``) can corrupt logs and terminals or mislead whoever reads it, so such text is
refused on the wire (HTTP 422) before it is stored.

Refused: control characters (Unicode category Cc: C0, DEL, C1), surrogates (Cs), line and
paragraph separators (Zl, Zp) and format characters (Cf: bidirectional embeddings, overrides,
isolates and marks, zero-width spaces, the byte order mark, invisible operators, tags) except
ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER (U+200C, U+200D), which Persian, the Indic
scripts and emoji sequences need. Text made only of spaces is refused as well. Every script,
emoji and punctuation is accepted.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Final

from pydantic import AfterValidator

_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp", "Cf"})
_ALLOWED_FORMAT: Final = frozenset({"\u200c", "\u200d"})


def check_display_text(value: str) -> str:
    """Return ``value`` if it is printable free text; raise otherwise.

    Args:
        value: the text (already a ``str``).

    Returns:
        The same text, unchanged.

    Raises:
        ValueError: the first refused character, by code point and position (never the text
            itself), or text made only of whitespace. Pydantic turns it into a validation
            error, which the service answers with 422.
    """
    for position, char in enumerate(value):
        if char in _ALLOWED_FORMAT:
            continue
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            name = unicodedata.name(char, "")
            label = f"U+{ord(char):04X}" + (f" {name}" if name else "")
            raise ValueError(
                f"character {position} is {label}: control, line-separator and "
                "bidirectional-formatting characters are not allowed"
            )
    if not value.strip():
        raise ValueError("must contain a visible character")
    return value


DisplayText = Annotated[str, AfterValidator(check_display_text)]
"""A ``str`` field checked by :func:`check_display_text` (use with ``Field(max_length=...)``)."""

__all__ = ["DisplayText", "check_display_text"]
