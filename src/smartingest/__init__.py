"""smartingest: self-hosted Smart Ingest into Iterable."""

__version__ = "0.1.0"
