"""What every config model shares: strictness about unknown keys, and the form of names."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

_NAME = r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$"
Name = Annotated[str, Field(pattern=_NAME)]
ID_DESCRIPTION = (
    "Stable id (default: the name). What belongs to the object (a sync's runs, CDC snapshot and lock) hangs off "
    "it, so a rename that keeps the id keeps them."
)


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
