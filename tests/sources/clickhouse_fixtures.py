"""ClickHouse fixtures: the real ClickHouse engine (chdb) behind a loopback HTTP server that speaks the part
of ClickHouse's HTTP interface clickhouse-connect uses (see ``chdb_http``), holding the contract's dataset."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smartingest.sources.clickhouse import ClickHouseSource

from .chdb_http import ClickHouseHttpShim, engine
from .loopback import released

CLICKHOUSE_USER, CLICKHOUSE_PASSWORD = "reader", "r3ader-Pa55"


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[ClickHouseHttpShim]:
    shim = ClickHouseHttpShim({"default": "", CLICKHOUSE_USER: CLICKHOUSE_PASSWORD})
    try:
        yield shim
    finally:
        shim.close()


def clickhouse_settings(server: ClickHouseHttpShim, database: str, **overrides: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "database": database,
        "user": CLICKHOUSE_USER,
        "password": CLICKHOUSE_PASSWORD,
    } | overrides


def sql_text(value: Any) -> str:
    """A ClickHouse literal for a fixture value (None, numbers, text)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.fixture(scope="session")
def clickhouse_database() -> Iterator[str]:
    """A fresh database holding people, people_view and numbers; dropped after the session."""
    from .conftest import NUMBERS_ROWS, PEOPLE

    database = f"smartingest_src_{secrets.token_hex(4)}"
    ch = engine()
    ch.query(f"CREATE DATABASE {database}")
    # updated_at is in Berlin's zone: read as the UTC instant whatever the column's zone.
    ch.query(
        f"CREATE TABLE {database}.people (id Int64, name Nullable(String), balance Nullable(Decimal(12, 2)),"
        " score Nullable(Float64), active Nullable(Bool), born Nullable(Date),"
        " updated_at Nullable(DateTime('Europe/Berlin')), attrs Nullable(String)) ENGINE = MergeTree ORDER BY id"
    )
    rows = [
        (i, n, b and float(b), s, a, d and d.isoformat(), u and int(u.timestamp()), j)
        for i, n, b, s, a, d, u, j in PEOPLE
    ]
    values = ", ".join("(" + ", ".join(sql_text(v) for v in row) + ")" for row in rows)
    ch.query(f"INSERT INTO {database}.people VALUES {values}")
    ch.query(f"CREATE VIEW {database}.people_view AS SELECT id, name, balance FROM {database}.people")
    ch.query(
        f"CREATE TABLE {database}.numbers ENGINE = MergeTree ORDER BY id AS SELECT toInt32(number + 1) AS id,"
        f" concat('n', toString(number + 1)) AS label FROM numbers({NUMBERS_ROWS})"
    )
    try:
        yield database
    finally:
        ch.query(f"DROP DATABASE {database}")


def clickhouse_released(server: ClickHouseHttpShim, wait: float = 2.0) -> bool:
    """Whether no client connection to ``server`` is open (after a moment to notice a close)."""
    return released(server.open_connections, wait)


@pytest.fixture
def clickhouse_case(clickhouse_server: ClickHouseHttpShim, clickhouse_database: str) -> Any:
    from .conftest import Case, _expected_rows

    settings = clickhouse_settings(clickhouse_server, clickhouse_database)
    return Case(
        name="clickhouse",
        source=ClickHouseSource(ClickHouseSource.Settings(**settings)),
        schema_name=clickhouse_database,
        types={
            "id": pa.int64(),
            "name": pa.string(),
            "balance": pa.decimal128(12, 2),
            "score": pa.float64(),
            "active": pa.bool_(),
            "born": pa.date32(),
            "updated_at": pa.timestamp("us", tz="UTC"),
            "attrs": pa.string(),  # JSON text in a String column: the server does not say it holds JSON
        },
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: clickhouse_released(clickhouse_server, wait),
        settings=settings,
        released_means=(
            "no HTTP connection of the source's to the server is open (the test server computes a result"
            " before it sends it, so whether ClickHouse stops a query whose client left is not shown here)"
        ),
        # Date32 spans 1900-01-01 to 2299-12-31: its edges are ClickHouse's.
        values=(
            "SELECT 1 AS id, toDecimal128('12345678901234567890.123456789', 9) AS exact,"
            " toDate32('2299-12-31') AS last_day, toDate32('1900-01-01') AS first_day, nan AS nan,"
            " [[1, 2], [3, 4]] AS nested",
            {
                "exact": Decimal("12345678901234567890.123456789"),
                "last_day": dt.date(2299, 12, 31),
                "first_day": dt.date(1900, 1, 1),
                "nan": float("nan"),
                "nested": [[1, 2], [3, 4]],
            },
        ),
    )


@dataclass(frozen=True)
class Tls:
    """A CA, and a server certificate it signed for 127.0.0.1, as PEM files."""

    ca_cert: Path
    server: ssl.SSLContext


def make_tls(directory: Path) -> Tls:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)

    def certificate(subject: str, issuer: str, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(names, critical=False)
        return builder.sign(key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(certificate("smartingest test CA", "smartingest test CA", True).public_bytes(pem))
    cert_path.write_bytes(certificate("127.0.0.1", "smartingest test CA", False).public_bytes(pem))
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return Tls(ca_path, context)
