"""smartingest: self-hosted Smart Ingest into Iterable."""
