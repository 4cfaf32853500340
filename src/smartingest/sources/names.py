"""Names in databases that store an identifier written unquoted in upper case (Snowflake, Oracle).

``CREATE TABLE users (email ...)`` is stored as ``USERS`` with a column ``EMAIL``; a model's
``primary_key: email`` and the mappings should not have to shout. So a connector of such a database shows a
name stored in upper case (and valid unquoted) in lower case, and resolves a name written in lower case
back to the upper case it is stored in when it writes SQL. Names stored in mixed or lower case (created
quoted) stay as they are; a lower-case name that was created quoted needs a ``sql`` model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class UpperCaseNames:
    """How one database stores names written unquoted: ``stored`` matches such a stored name, ``written``
    the lower-case name shown for it."""

    stored: re.Pattern[str]
    written: re.Pattern[str]

    def shown(self, stored: str) -> str:
        """The name shown for a name as the database stores it (``EMAIL`` -> ``email``)."""
        return stored.lower() if self.stored.fullmatch(stored) else stored

    def resolved(self, shown: str) -> str:
        """The name the database stores for a name as shown (``email`` -> ``EMAIL``)."""
        return shown.upper() if self.written.fullmatch(shown) else shown

    def shown_all(self, stored: list[str]) -> list[str]:
        """The names of a result as shown; one that would collide with another stored name (a result holding
        both ``ID`` and ``"id"``) keeps its stored form, so the two stay apart."""
        taken = set(stored)
        return [shown if (shown := self.shown(name)) == name or shown not in taken else name for name in stored]

    def shown_qualified(self, stored: str) -> str:
        """``SCHEMA.NAME`` as shown, each part on its own."""
        return ".".join(self.shown(part) for part in stored.split(".", 1))


SNOWFLAKE = UpperCaseNames(re.compile(r"[A-Z_][A-Z0-9_$]*"), re.compile(r"[a-z_][a-z0-9_$]*"))
ORACLE = UpperCaseNames(re.compile(r"[A-Z][A-Z0-9_$#]*"), re.compile(r"[a-z][a-z0-9_$#]*"))

__all__ = ["ORACLE", "SNOWFLAKE", "UpperCaseNames"]
