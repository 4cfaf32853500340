"""What every config model shares: strictness about unknown keys, and the form of names."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

_NAME = r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$"
Name = Annotated[str, Field(pattern=_NAME)]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
