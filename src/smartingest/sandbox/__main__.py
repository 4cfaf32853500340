"""`python -m smartingest.sandbox`: run the sandbox in the foreground."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .server import serve
from .settings import FaultSettings, SandboxSettings


def parse_args(argv: Sequence[str] | None = None) -> SandboxSettings:
    """Sandbox settings from command-line arguments."""
    defaults = SandboxSettings.model_fields
    parser = argparse.ArgumentParser(
        prog="python -m smartingest.sandbox", description="Run an Iterable-compatible sandbox server."
    )
    parser.add_argument("--host", default=defaults["host"].default, help="interface to listen on")
    parser.add_argument("--port", type=int, default=defaults["port"].default, help="port (0: any free port)")
    parser.add_argument("--api-key", default=None, help="the valid Api-Key (default: a random one)")
    parser.add_argument("--project-type", choices=["email", "userid", "hybrid"], default="email")
    parser.add_argument("--data-dir", type=Path, default=defaults["data_dir"].default)
    parser.add_argument("--no-rate-limits", action="store_true", help="do not enforce rate limits")
    parser.add_argument("--rate-limit-scale", type=float, default=1.0, help="multiply every rate limit")
    parser.add_argument("--error-rate", type=float, default=0.0, help="probability of HTTP 500")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to each /api request")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="probability of a dropped connection")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault RNG")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    args = parser.parse_args(argv)
    return SandboxSettings(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        project_type=args.project_type,
        data_dir=args.data_dir,
        rate_limits=not args.no_rate_limits,
        rate_limit_scale=args.rate_limit_scale,
        faults=FaultSettings(
            error_rate=args.error_rate, latency_ms=args.latency_ms, drop_rate=args.drop_rate, seed=args.seed
        ),
        log_level=args.log_level,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m smartingest.sandbox`."""
    serve(parse_args(argv))


if __name__ == "__main__":
    main()
