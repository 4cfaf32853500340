"""Metadata database: SQLAlchemy tables and Alembic migrations (SQLite by default, PostgreSQL by URL)."""
