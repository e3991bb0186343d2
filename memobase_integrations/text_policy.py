"""What happens to text that a store cannot keep: one rule for both backends.

PostgreSQL ``text`` and ``jsonb`` refuse U+0000, and UTF-8 cannot encode a lone surrogate
(U+D800..U+DFFF, what a bad decode or a split emoji pair leaves in a Python ``str``). A turn
carrying either would fail every attempt to store or deliver it, and - since a user's turns
are processed in order - hold back every later turn of that user. So:

* in **text** (message content, a message's name/alias, its ``created_at`` string, profile
  memos, topics, queries) each such character becomes U+FFFD REPLACEMENT CHARACTER, the
  standard mark for "a character was lost here". The turn is kept, everything else in it is
  exactly as given, and the number of replaced characters is logged at debug level (never
  the text itself);
* in **ids** (user id, turn id) they are refused with the package's invalid-input error:
  an id must come back exactly as it was given, and a silently altered id would name a
  different user or defeat the de-duplication of a replayed turn.

Every other character (emoji, right-to-left scripts, combining marks, private-use and
non-characters) is valid UTF-8 that both stores keep byte for byte.
"""

from __future__ import annotations

import logging
import re

__all__ = ["REPLACEMENT", "first_unstorable", "storable_text"]

logger = logging.getLogger(__name__)

#: What an unstorable character becomes in text.
REPLACEMENT = "\ufffd"

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str, what: str) -> str:
    """``text`` with U+0000 and lone surrogates replaced by U+FFFD.

    ``what`` names the field for the debug log line (e.g. ``"user message content"``); the
    text itself is never logged. Linear in the length of ``text``, and free of copies when
    there is nothing to replace.
    """
    if _UNSTORABLE.search(text) is None:
        return text
    cleaned, count = _UNSTORABLE.subn(REPLACEMENT, text)
    logger.debug(
        "memobase: replaced %d character(s) no store can keep (U+0000, lone surrogates) "
        "with U+FFFD in the %s",
        count,
        what,
    )
    return cleaned


def first_unstorable(text: str) -> str | None:
    """A description of the first unstorable character in ``text`` (for an error message
    about an id, which must not be altered), or ``None`` when there is none."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    kind = "U+0000 (NUL)" if char == "\x00" else f"a lone surrogate U+{ord(char):04X}"
    return f"{kind} at position {found.start()}"
