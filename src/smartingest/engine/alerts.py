"""Alerts: a sync that fails, that rejects more than ``alert_rejected_percent`` of the rows it sent, and
that recovers, told to the project's channels (``alerts:``: signed webhooks, Slack, email), once per
change of state rather than once per run.

After each run the sync's state is ``failed`` (the run failed), ``rejecting`` (over its threshold) or
``ok``; the state last alerted is kept in the metadata database (``alert_states``), and an alert goes out
only when the new state differs: the first failure, not the ten that follow; the recovery, once. A run
cancelled by a user changes nothing. A channel that cannot be reached is logged and the others still
get the alert: an alert never fails a run.

A webhook's body is JSON, signed with HMAC-SHA256 under the channel's secret:
``X-Smartingest-Signature: sha256=<hex of hmac(secret, body)>``; a receiver recomputes it over the bytes
it received and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal

import httpx
import orjson
from sqlalchemy import Engine, insert, select, update

from smartingest.codes import RunStatus
from smartingest.config.models import EmailAlert, SlackAlert, WebhookAlert
from smartingest.store.tables import AlertState

log = logging.getLogger(__name__)

State = Literal["ok", "failed", "rejecting"]
Channel = WebhookAlert | SlackAlert | EmailAlert
SIGNATURE_HEADER = "X-Smartingest-Signature"


@dataclass(frozen=True)
class Alert:
    """A change of a sync's state, as every channel receives it."""

    sync: str
    sync_id: str
    state: State
    previous: State
    run_id: int
    message: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "sync": self.sync,
            "sync_id": self.sync_id,
            "state": self.state,
            "previous": self.previous,
            "run_id": self.run_id,
            "message": self.message,
            "at": self.at.isoformat(),
        }


def state_of(status: str, counts: dict[str, int], threshold: float) -> State:
    """A finished run's verdict on its sync."""
    if status == RunStatus.FAILED:
        return "failed"
    sent = counts.get("synced", 0) + counts.get("rejected", 0)
    if sent and counts.get("rejected", 0) * 100 / sent > threshold:
        return "rejecting"
    return "ok"


def after_run(
    engine: Engine,
    sync_id: str,
    name: str,
    run_id: int,
    status: str,
    counts: dict[str, int],
    error: str | None,
    threshold: float,
    channels: list[Channel],
) -> Alert | None:
    """Record the sync's state after a run and, when it changed, send the alert; returns it (None: no
    change). Channels that fail are logged, never raised."""
    state = state_of(status, counts, threshold)
    now = datetime.now(UTC)
    with engine.begin() as con:
        stored = con.execute(select(AlertState.state).where(AlertState.sync_id == sync_id)).scalar()
        previous: State = "failed" if stored == "failed" else "rejecting" if stored == "rejecting" else "ok"
        if previous == state:
            return None
        if stored is None:
            con.execute(insert(AlertState).values(sync_id=sync_id, state=state, changed_at=now))
        else:
            con.execute(update(AlertState).where(AlertState.sync_id == sync_id).values(state=state, changed_at=now))
    alert = Alert(name, sync_id, state, previous, run_id, _message(name, state, counts, error, threshold), now)
    for channel in channels:
        try:
            send(channel, alert)
        except Exception as exc:  # one channel down must not keep the alert from the others, nor fail the run
            log.warning("alert for sync %s not sent to %s: %s", name, channel.type, exc)
    return alert


def _message(name: str, state: State, counts: dict[str, int], error: str | None, threshold: float) -> str:
    if state == "failed":
        return f"sync {name!r} failed: {error}"
    if state == "rejecting":
        sent = counts.get("synced", 0) + counts.get("rejected", 0)
        rejected = counts.get("rejected", 0)
        return (
            f"sync {name!r} had {rejected:,} of {sent:,} rows rejected ({rejected * 100 / sent:.1f}%, over its "
            f"alert_rejected_percent of {threshold:g}%): see `smartingest runs show` for their reasons"
        )
    return f"sync {name!r} recovered: its last run succeeded"


def send(channel: Channel, alert: Alert) -> None:
    """Tell one channel; raises what the channel's transport raised."""
    match channel:
        case WebhookAlert():
            body = orjson.dumps(alert.as_dict())
            signature = hmac.new(channel.secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: f"sha256={signature}"}
            httpx.post(channel.url, content=body, headers=headers, timeout=10).raise_for_status()
        case SlackAlert():
            emoji = {"failed": ":red_circle:", "rejecting": ":warning:", "ok": ":large_green_circle:"}[alert.state]
            text = f"{emoji} smartingest: {alert.message} (run #{alert.run_id})"
            httpx.post(channel.url.get_secret_value(), json={"text": text}, timeout=10).raise_for_status()
        case EmailAlert():
            _send_email(channel, alert)


def _send_email(channel: EmailAlert, alert: Alert) -> None:
    message = EmailMessage()
    message["Subject"] = f"smartingest: sync {alert.sync} is {alert.state}"
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message.set_content(f"{alert.message}\n\nRun #{alert.run_id}, {alert.at:%Y-%m-%d %H:%M:%S} UTC.")
    # The server's certificate and name are verified (smtplib's own default context would not verify).
    context = ssl.create_default_context(cafile=channel.ca_file)
    timeout = channel.timeout_seconds
    smtp = (
        smtplib.SMTP_SSL(channel.host, channel.port, timeout=timeout, context=context)
        if channel.security == "tls"
        else smtplib.SMTP(channel.host, channel.port, timeout=timeout)
    )
    with smtp:
        if channel.security == "starttls":
            smtp.starttls(context=context)
        if channel.username and channel.password:
            smtp.login(channel.username, channel.password.get_secret_value())
        smtp.send_message(message)
