"""`python -m smartingest.sandbox`: run the sandbox in the foreground (options: `--help`)."""

from __future__ import annotations

from collections.abc import Sequence

from .options import parse_settings
from .server import serve


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m smartingest.sandbox`."""
    serve(parse_settings(argv))


if __name__ == "__main__":
    main()
