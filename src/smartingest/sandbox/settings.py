"""Settings of a sandbox server: where it listens, how its project identifies users, its faults."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ProjectType = Literal["email", "userid", "hybrid"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]  # uvicorn's levels


class StatusBurst(BaseModel):
    """The next `count` /api requests answer HTTP `status` without being processed."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0, description="How many of the next /api requests get this status.")
    status: int = Field(503, ge=400, le=599, description="HTTP status to answer (e.g. 429, 500, 503).")
    retry_after: int | None = Field(None, ge=0, description="Seconds to send in a Retry-After header; none when unset.")


class FaultSettings(BaseModel):
    """Faults injected into /api requests (admin routes never fault).

    Per request, in this order: `latency_ms` is waited; then `drop_next`, a `status_burst`,
    `drop_rate` and `error_rate` are tried in turn and the first that fires decides the answer.
    """

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.0, ge=0.0, le=1.0, description="Probability of HTTP 500 GenericError.")
    latency_ms: float = Field(0.0, ge=0.0, description="Delay added before answering each request.")
    drop_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="Probability that the connection is dropped mid-response."
    )
    drop_next: int = Field(0, ge=0, description="Drop the connection of the next N requests.")
    drop_after_processing: bool = Field(
        False,
        description="Drops happen after the request was applied (a lost acknowledgement) instead of "
        "before it was processed.",
    )
    status_burst: StatusBurst | None = Field(None, description="Answer the next N requests with a status.")
    seed: int | None = Field(None, description="Seed of the fault RNG, for deterministic tests.")
    endpoint: str | None = Field(
        None,
        description="Only requests to this endpoint fault, e.g. 'POST /api/users/bulkUpdate' (default: every "
        "/api request).",
    )


class SandboxSettings(BaseModel):
    """Everything a sandbox server needs to start."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8765, ge=0, le=65535, description="Port to listen on; 0 picks a free one.")
    api_key: str | None = Field(
        None,
        validate_default=True,
        description="The one valid Api-Key; generated with secrets.token_hex(16) when not given.",
    )
    project_type: ProjectType = Field("email", description="How the project identifies users.")
    data_dir: Path = Field(Path(".smartingest/sandbox"), description="Directory of the SQLite database.")
    rate_limits: bool = Field(True, description="Enforce Iterable's per-endpoint rate limits.")
    rate_limit_scale: float = Field(
        1.0, gt=0.0, description="Multiplier of every rate limit (and burst); 2.0 allows twice as much."
    )
    faults: FaultSettings = Field(default_factory=FaultSettings, description="Faults active at start.")
    gdpr_daily_cap: int | None = Field(
        1000,
        ge=0,
        description="Requests per 24 hours allowed to each of users/forget and users/unforget (Iterable's "
        "daily cap); none: no cap. Holds even without rate limits.",
    )
    disallowed_event_names: list[str] = Field(
        default_factory=list,
        description="Custom event names the project refuses to track (Iterable's Manage Custom Events).",
    )
    record_requests: int = Field(
        0,
        ge=0,
        description="Keep the last N requests received per /api endpoint (path, query, body), readable at "
        "GET /_sandbox/requests; 0: keep none.",
    )
    log_level: LogLevel = Field("warning", description="uvicorn log level.")

    @field_validator("api_key")
    @classmethod
    def _generate_api_key(cls, value: str | None) -> str:
        if value is None:
            return secrets.token_hex(16)
        if not value:
            raise ValueError("api_key must not be empty")
        return value
