"""Tokens of the REST API: random, shown once when created, kept only as a SHA-256 digest.

A token is 32 random bytes (``secrets.token_urlsafe``) behind a ``si_`` prefix that makes it easy to
spot in a leaked file; with that much entropy an unsalted digest is enough to keep it (a slow password
hash protects guessable secrets, which these are not), and it lets a request's token be found by one
indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from smartingest.errors import ConfigError
from smartingest.store.tables import ApiToken

PREFIX = "si_"
USE_RECORDED_EVERY = timedelta(minutes=1)


def create_token(engine: Engine, name: str) -> str:
    """A new token named ``name``; returns it (it cannot be read back). ConfigError if the name is taken."""
    token = PREFIX + secrets.token_urlsafe(32)
    try:
        with engine.begin() as con:
            con.execute(insert(ApiToken).values(name=name, digest=_digest(token), created_at=datetime.now(UTC)))
    except IntegrityError:
        raise ConfigError(f"a token named {name!r} exists: revoke it first, or choose another name") from None
    return token


def revoke_token(engine: Engine, name: str) -> bool:
    """Delete the token ``name``; returns whether it existed."""
    with engine.begin() as con:
        return bool(con.execute(delete(ApiToken).where(ApiToken.name == name)).rowcount)


def token_names(engine: Engine) -> list[tuple[str, datetime, datetime | None]]:
    """Every token: its name, when it was created, when it was last used."""
    with engine.connect() as con:
        rows = con.execute(select(ApiToken.name, ApiToken.created_at, ApiToken.last_used_at).order_by(ApiToken.name))
        return [(row.name, row.created_at, row.last_used_at) for row in rows]


def token_owner(engine: Engine, token: str) -> str | None:
    """The name of the token ``token`` (recording its use), or None when it is no token of ours."""
    if not token.startswith(PREFIX):
        return None
    digest = _digest(token)
    now = datetime.now(UTC)
    with engine.connect() as con:
        row = con.execute(select(ApiToken.name, ApiToken.last_used_at).where(ApiToken.digest == digest)).first()
    if row is None:
        return None
    # Its use is recorded to the minute: pages that poll every few seconds need not write each time.
    last = (
        row.last_used_at.replace(tzinfo=UTC)
        if row.last_used_at and row.last_used_at.tzinfo is None
        else row.last_used_at
    )
    if last is None or now - last >= USE_RECORDED_EVERY:
        with engine.begin() as con:
            con.execute(update(ApiToken).where(ApiToken.name == row.name).values(last_used_at=now))
    return str(row.name)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
