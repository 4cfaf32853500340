"""Snowflake specifics, against the fakesnow emulator through the real snowflake-connector-python: how each
column type is read, names, settings, password and key-pair logins, what a login asks for, and errors that
name what to fix. Where the emulator cannot produce an error (a timeout, an unknown warehouse), its mapping is
tested on the driver's own error as Snowflake reports it."""

from __future__ import annotations

import datetime as dt
import re
import socket
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import pyarrow as pa
import pytest
import snowflake.connector.errors as sf_errors
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from snowflake.connector import platform_detection
from snowflake.connector.cursor import ResultMetadata

from smartingest.columns import is_json_text
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import ConfigError, ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.repository.project_file import ProjectFileRepository
from smartingest.sources._result_plan import ResultColumn
from smartingest.sources.registry import open_source, secret_keys
from smartingest.sources.snowflake import (
    SnowflakeSettings,
    SnowflakeSource,
    _conformed,
    _plan,
    map_snowflake_error,
    shown_name,
    stored_name,
)

from .snowflake_fixtures import PASSWORD, Emulator, admin_cursor


def source(emulator: Emulator, database: str, **overrides: Any) -> SnowflakeSource:
    return SnowflakeSource(SnowflakeSettings(**emulator.settings(database, **overrides)))


def table(name: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="sf", table=name, primary_key=pk)


def query(sql: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="sf", sql=sql, primary_key=pk)


def read_rows(src: SnowflakeSource, model: ModelConfig) -> tuple[pa.Schema, list[dict[str, Any]]]:
    with src.read(model) as stream:
        rows = pa.Table.from_batches(list(stream), schema=stream.schema).to_pylist()
        return stream.schema, sorted(rows, key=lambda r: r["id"])


# ------------------------------------------------------------------------------------------------------ types


@pytest.fixture(scope="module")
def typed(snowflake_emulator: Emulator, snowflake_database: str) -> str:
    """A table of every kind of column the connector reads, and a row of NULLs."""
    with admin_cursor(snowflake_emulator, snowflake_database) as cur:
        cur.execute(
            "CREATE TABLE typed (id NUMBER(38, 0), small NUMBER(5, 0), amount NUMBER(12, 2), wide NUMBER(38, 10),"
            " precise NUMBER(18, 8), ratio FLOAT, label TEXT, flag BOOLEAN, day DATE, local TIMESTAMP_NTZ,"
            " instant TIMESTAMP_TZ,"
            " session_time TIMESTAMP_LTZ, far TIMESTAMP_NTZ, doc VARIANT, obj OBJECT, list ARRAY, bytes BINARY,"
            " at TIME)"
        )
        cur.execute(
            "INSERT INTO typed SELECT 1, 7, -12.34, 123456789012.0123456789, 1234567890.12345678, 1.5, 'Zoë', TRUE,"
            " '2024-01-02'::DATE,"
            " '2024-01-02 03:04:05.123456789'::TIMESTAMP_NTZ, '2024-01-02 03:04:05.123456+02:00'::TIMESTAMP_TZ,"
            " '2024-01-02 03:04:05'::TIMESTAMP_LTZ, '9999-12-31 23:59:59'::TIMESTAMP_NTZ,"
            " PARSE_JSON('{\"a\": [1, 2]}'), OBJECT_CONSTRUCT('k', 1), ARRAY_CONSTRUCT(1, 2),"
            " TO_BINARY('00FF', 'HEX'), '13:14:15.123456'::TIME"
        )
        cur.execute("INSERT INTO typed (id) VALUES (2)")
    return snowflake_database


TYPED_TYPES = {
    "id": pa.int64(),
    "small": pa.int64(),
    "amount": pa.decimal128(12, 2),
    "wide": pa.decimal128(38, 10),
    "precise": pa.decimal128(18, 8),
    "ratio": pa.float64(),
    "label": pa.string(),
    "flag": pa.bool_(),
    "day": pa.date32(),
    "local": pa.timestamp("us"),
    "instant": pa.timestamp("us", tz="UTC"),
    "session_time": pa.timestamp("us", tz="UTC"),
    "far": pa.timestamp("us"),
    "doc": pa.string(),
    "obj": pa.string(),
    "list": pa.string(),
    "bytes": pa.binary(),
    "at": pa.time64("us"),
}


def test_each_column_type_is_read_as_its_values_are(snowflake_emulator: Emulator, typed: str) -> None:
    src = source(snowflake_emulator, typed)
    schema, rows = read_rows(src, table("typed"))
    assert dict(zip(schema.names, schema.types, strict=True)) == TYPED_TYPES
    assert [f.name for f in schema if is_json_text(f)] == ["doc", "obj", "list"]
    assert src.schema(table("typed")) == schema
    assert rows[1] == {name: None for name in TYPED_TYPES} | {"id": 2}
    first = rows[0]
    assert {k: first[k] for k in ("doc", "obj", "list")} == {"doc": '{"a":[1,2]}', "obj": '{"k":1}', "list": "[1,2]"}
    assert first | {"doc": None, "obj": None, "list": None} == {
        "id": 1,
        "small": 7,
        "amount": Decimal("-12.34"),
        "wide": Decimal("123456789012.0123456789"),  # beyond int64 scaled: sent as decimal128
        "precise": Decimal("1234567890.12345678"),  # sent as scaled int64: more digits than a float64 holds
        "ratio": 1.5,
        "label": "Zoë",
        "flag": True,
        "day": dt.date(2024, 1, 2),
        "local": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),  # nanoseconds cut to microseconds
        "instant": dt.datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=dt.UTC),  # +02:00, read as the UTC instant
        "session_time": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "far": dt.datetime(9999, 12, 31, 23, 59, 59),  # beyond nanoseconds' range (2262)
        "doc": None,
        "obj": None,
        "list": None,
        "bytes": b"\x00\xff",
        "at": dt.time(13, 14, 15, 123456),
    }


def test_expressions_have_the_types_of_their_numbers(snowflake_emulator: Emulator, typed: str) -> None:
    schema, rows = read_rows(
        source(snowflake_emulator, typed), query("SELECT id, 1 AS one, 1.5 AS lit, amount * 2 AS twice FROM typed")
    )
    assert schema.types == [pa.int64(), pa.int64(), pa.decimal128(2, 1), pa.decimal128(18, 2)]
    assert rows[0] == {"id": 1, "one": 1, "lit": Decimal("1.5"), "twice": Decimal("-24.68")}


def _one(values: pa.Array, column: ResultColumn) -> pa.Array:
    """One column of a chunk as the connector conforms it."""
    chunk = pa.table({column.name: values})
    return next(_conformed(iter([chunk]), [column], "model q")).column(0)


@pytest.mark.parametrize(
    ("values", "column"),
    [
        (pa.array([1, None, -3], pa.int8()), ResultColumn("n", pa.int64())),
        (pa.array([2**40], pa.int64()), ResultColumn("n", pa.int64())),
        (pa.array([Decimal(5)], pa.decimal128(38, 0)), ResultColumn("n", pa.int64())),
        (pa.array([Decimal("-12.34")], pa.decimal128(38, 2)), ResultColumn("n", pa.decimal128(12, 2))),
        (
            pa.array([1_700_000_000_123_456_789], pa.timestamp("ns", tz="Etc/UTC")),
            ResultColumn("t", pa.timestamp("us", "UTC")),
        ),
        (pa.array([50_000], pa.time32("s")), ResultColumn("t", pa.time64("us"))),
    ],
)
def test_batches_take_the_planned_type_whatever_width_the_driver_sends(values: pa.Array, column: ResultColumn) -> None:
    # Snowflake sends each chunk's integers in the narrowest width its values need, and scaled NUMBERs as
    # decimal128(38, s): every batch still has the one planned type.
    conformed = _one(values, column)
    assert conformed.type == column.type
    if not pa.types.is_temporal(column.type):
        assert conformed.to_pylist() == values.to_pylist()
    else:
        assert conformed.cast(pa.int64()).to_pylist() != [None]


def test_a_number_beyond_int64_fails_the_read_naming_the_column() -> None:
    with pytest.raises(ModelError, match=r"column 'big' holds a value that is not read as int64.*TO_VARCHAR\(BIG\)"):
        _one(pa.array([Decimal(2**70)], pa.decimal128(38, 0)), ResultColumn("big", pa.int64()))


def test_a_type_that_is_not_read_names_the_cast_that_reads_it() -> None:
    location = ResultMetadata("WHERE_ABOUTS", 14, None, None, None, None, True)  # GEOGRAPHY
    with pytest.raises(ModelError, match=r"column 'where_abouts' is of Snowflake type GEOGRAPHY.*ST_ASGEOJSON"):
        _plan([location], "model q")


# ------------------------------------------------------------------------------------------------------ names


def test_names_read_as_written_unquoted_and_resolved_back(
    snowflake_emulator: Emulator, snowflake_database: str
) -> None:
    with admin_cursor(snowflake_emulator, snowflake_database) as cur:
        cur.execute('CREATE TABLE "MixedCase" (id NUMBER(38, 0), "firstName" TEXT, last_name TEXT)')
        cur.execute("INSERT INTO \"MixedCase\" VALUES (1, 'Ada', 'Lovelace')")
    src = source(snowflake_emulator, snowflake_database)
    assert "public.MixedCase" in src.tables()
    assert {"public.people", "public.people_view", "public.numbers"} <= set(src.tables())
    schema, rows = read_rows(src, table("MixedCase"))
    assert schema.names == ["id", "firstName", "last_name"]
    assert rows == [{"id": 1, "firstName": "Ada", "last_name": "Lovelace"}]
    assert src.quote("people") == '"PEOPLE"' and src.quote("MixedCase") == '"MixedCase"'
    assert read_rows(src, table("PUBLIC.PEOPLE"))[0].names[:2] == ["id", "name"]


def test_names_that_differ_only_in_case_stay_apart() -> None:
    columns = _plan(
        [ResultMetadata("ID", 0, None, None, 38, 0, True), ResultMetadata("id", 0, None, None, 38, 0, True)], "q"
    )
    assert [c.name for c in columns] == ["ID", "id"]


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("EMAIL", "email"), ("FIRST_NAME$2", "first_name$2"), ("firstName", "firstName"), ("Order Lines", "Order Lines")],
)
def test_a_name_shown_is_resolved_to_the_name_stored(stored: str, shown: str) -> None:
    assert shown_name(stored) == shown
    assert stored_name(shown) == stored


# --------------------------------------------------------------------------------------------------- settings


def test_exactly_one_credential_is_required(snowflake_emulator: Emulator) -> None:
    base = {k: v for k, v in snowflake_emulator.settings("DB").items() if k != "password"}
    for extra in ({}, {"password": "x", "private_key_path": "/k.p8"}):
        with pytest.raises(ConfigError, match=r"sources\.sf: .*give exactly one of password and private_key_path"):
            open_source("sf", SourceConfig(type="snowflake", **base, **extra))
    with pytest.raises(ConfigError, match="private_key_passphrase is given without private_key_path"):
        open_source("sf", SourceConfig(type="snowflake", **base, password="x", private_key_passphrase="p"))
    with pytest.raises(ConfigError, match="protocol"):
        open_source("sf", SourceConfig(type="snowflake", **{**base, "protocol": "ftp"}, password="x"))
    built = open_source("sf", SourceConfig(type="snowflake", **base, password="x"))
    assert isinstance(built, SnowflakeSource) and built.settings.schema == "PUBLIC"


def test_secrets_are_known_and_never_shown() -> None:
    config = SourceConfig(type="snowflake", account="a", user="u", database="d", password="x")
    assert secret_keys(config) == {"password", "private_key_passphrase"}
    src = SnowflakeSource(SnowflakeSettings(account="a", user="u", database="d", password="hunter2-secret"))
    assert "hunter2-secret" not in repr(src) and "hunter2-secret" not in repr(src.settings)


# ---------------------------------------------------------------------------------------------------- logins


def test_the_login_asks_for_what_the_settings_say(snowflake_emulator: Emulator, snowflake_database: str) -> None:
    src = source(
        snowflake_emulator,
        snowflake_database,
        warehouse="WH_ONE",
        role="READER",
        schema="PUBLIC",
        query_timeout_seconds=7,
    )
    src.test_connection()
    login = snowflake_emulator.logins[-1]
    assert (
        login["URL_PARAMETERS"].items()
        >= {
            "databaseName": snowflake_database,
            "schemaName": "PUBLIC",
            "warehouse": "WH_ONE",
            "roleName": "READER",
        }.items()
    )
    assert (
        login["SESSION_PARAMETERS"].items()
        >= {
            "STATEMENT_TIMEOUT_IN_SECONDS": 7,
            "TIMEZONE": "UTC",
            "QUERY_TAG": "smartingest",
            "CLIENT_VALIDATE_DEFAULT_PARAMETERS": True,
        }.items()
    )
    source(snowflake_emulator, snowflake_database).test_connection()
    assert "STATEMENT_TIMEOUT_IN_SECONDS" not in snowflake_emulator.logins[-1]["SESSION_PARAMETERS"]


def test_a_login_probes_no_cloud_metadata_service(
    snowflake_emulator: Emulator, snowflake_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver would ask 169.254.169.254 and the clouds' identity services what it runs on, for its
    # telemetry; the probes are replaced by recorders here, so that nothing leaves the machine either way.
    probed: list[str] = []
    for name in _NETWORK_PROBES:
        monkeypatch.setattr(platform_detection, name, lambda *a, _name=name, **k: probed.append(_name))
    source(snowflake_emulator, snowflake_database).test_connection()
    assert probed == []


_NETWORK_PROBES = (
    "is_ec2_instance",
    "has_aws_identity",
    "is_azure_vm",
    "has_azure_managed_identity",
    "is_gce_vm",
    "has_gcp_identity",
)


def test_a_wrong_password_is_an_auth_error_that_does_not_show_it(
    snowflake_emulator: Emulator, snowflake_database: str
) -> None:
    src = source(snowflake_emulator, snowflake_database, password="n0t-the-Pa55word")
    with pytest.raises(SourceAuthError, match="refused user 'smartingest' \\(check user and password\\)") as err:
        src.test_connection()
    assert err.value.transient is False
    assert "Incorrect username or password" in str(err.value)
    assert "n0t-the-Pa55word" not in str(err.value) and "n0t-the-Pa55word" not in repr(src)
    assert source(snowflake_emulator, snowflake_database, password=PASSWORD).preview(table("people")).num_rows == 3


def _write_key(path: Path, key: Any, passphrase: bytes | None) -> Path:
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return path


def test_a_key_pair_login_signs_with_the_configured_key(
    snowflake_emulator: Emulator, snowflake_database: str, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = _write_key(tmp_path / "key.p8", key, b"open sesame")
    src = source(
        snowflake_emulator,
        snowflake_database,
        password=None,
        private_key_path=str(path),
        private_key_passphrase="open sesame",
    )
    assert src.preview(table("people")).num_rows == 3
    login = snowflake_emulator.logins[-1]
    assert login["AUTHENTICATOR"] == "SNOWFLAKE_JWT" and "PASSWORD" not in login
    claims = jwt.decode(login["TOKEN"], key.public_key(), algorithms=["RS256"])  # fails unless signed by our key
    assert claims["sub"] == "FAKESNOW.SMARTINGEST"


def test_a_key_that_cannot_be_opened_names_the_setting_not_the_passphrase(
    snowflake_emulator: Emulator, snowflake_database: str, tmp_path: Path
) -> None:
    rsa_key = _write_key(tmp_path / "rsa.p8", rsa.generate_private_key(public_exponent=65537, key_size=2048), b"right")
    ec_key = _write_key(tmp_path / "ec.p8", ec.generate_private_key(ec.SECP256R1()), None)
    cases = [
        (rsa_key, "wr0ng-passphrase", "is not a PEM private key that private_key_passphrase opens"),
        (rsa_key, None, "is not a PEM private key that private_key_passphrase opens"),
        (tmp_path / "missing.p8", None, "cannot read private_key_path"),
        (ec_key, None, "holds no RSA key"),
    ]
    for path, passphrase, message in cases:
        src = source(
            snowflake_emulator,
            snowflake_database,
            password=None,
            private_key_path=str(path),
            private_key_passphrase=passphrase,
        )
        with pytest.raises(SourceAuthError, match=message) as err:
            src.test_connection()
        assert str(path) in str(err.value)
        assert "wr0ng-passphrase" not in str(err.value)


def test_an_unreachable_host_is_a_transient_connection_error(snowflake_emulator: Emulator) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = source(snowflake_emulator, "DB", port=port, login_timeout_seconds=1)
    started = time.monotonic()
    with pytest.raises(
        SourceConnectionError, match=r"cannot reach Snowflake account 'fakesnow' at 127\.0\.0\.1"
    ) as err:
        src.test_connection()
    assert err.value.transient is True
    assert time.monotonic() - started < 30


# ---------------------------------------------------------------------------------------------------- errors


def test_model_errors_carry_snowflakes_text(snowflake_emulator: Emulator, snowflake_database: str) -> None:
    src = source(snowflake_emulator, snowflake_database)
    with pytest.raises(ModelError, match=r"table \"nosuch\" cannot be read: .*NOSUCH.*GRANT SELECT ON ALL TABLES"):
        src.schema(table("nosuch"))
    with pytest.raises(ModelError, match=r"has a syntax error: .*SELEC"):
        src.schema(query("SELEC id FROM people"))
    with pytest.raises(ModelError, match=r"cannot be read: .*NO_SUCH_COLUMN"):
        src.preview(query("SELECT no_such_column FROM people"))
    with (
        pytest.raises(ModelError, match=r"cannot be read: .*Could not convert string 'Ada'"),
        src.read(query("SELECT id, name::INT AS n FROM people")) as stream,
    ):
        list(stream)


def _driver_error(errno: int, sqlstate: str, msg: str) -> sf_errors.Error:
    return sf_errors.ProgrammingError(msg=msg, errno=errno, sqlstate=sqlstate, send_telemetry=False)


SETTINGS = SnowflakeSettings(
    account="acme-prod",
    user="SYNC",
    password="s3cret-pw",
    warehouse="WH",
    database="ANALYTICS",
    schema="MARTS",
    role="READER",
    query_timeout_seconds=30,
)


@pytest.mark.parametrize(
    ("errno", "sqlstate", "msg", "kind", "transient", "says"),
    [
        (
            630,
            "57014",
            "Statement reached its statement or warehouse timeout of 30 second(s) and was canceled.",
            SourceError,
            False,
            r"ran longer than query_timeout_seconds \(30\)",
        ),
        (604, "57014", "SQL execution canceled", SourceError, True, "Snowflake cancelled"),
        (
            250001,
            "08001",
            "Failed to connect to DB: acme-prod.snowflakecomputing.com:443. The requested warehouse does not exist "
            "or not authorized.",
            SourceConnectionError,
            False,
            "no warehouse 'WH' that the role may use.*check warehouse.*GRANT USAGE ON WAREHOUSE WH TO ROLE READER",
        ),
        (
            390201,
            "08004",
            "The requested database does not exist or not authorized.",
            SourceConnectionError,
            False,
            "no database 'ANALYTICS' that the role may use.*check database",
        ),
        (
            606,
            "57P03",
            "No active warehouse selected in the current session.",
            SourceConnectionError,
            False,
            "check warehouse",
        ),
        (
            90105,
            "22000",
            "Cannot perform SELECT. This session does not have a current database.",
            SourceConnectionError,
            False,
            "check database",
        ),
        (
            390189,
            "08004",
            "Role 'READER' specified in the connect string is not granted to this user.",
            SourceAuthError,
            False,
            "GRANT ROLE READER TO USER SYNC",
        ),
        (
            3001,
            "42501",
            "SQL access control error: Insufficient privileges to operate on table 'USERS'",
            SourceAuthError,
            False,
            "GRANT USAGE ON DATABASE ANALYTICS TO ROLE READER; GRANT USAGE ON SCHEMA ANALYTICS.MARTS",
        ),
        (
            2003,
            "42S02",
            "SQL compilation error: Object 'USERS' does not exist or not authorized.",
            ModelError,
            False,
            "GRANT SELECT ON ALL TABLES IN SCHEMA ANALYTICS.MARTS TO ROLE READER",
        ),
        (
            904,
            "42000",
            "SQL compilation error: error line 1 at position 7 invalid identifier 'NOPE'",
            ModelError,
            False,
            "invalid identifier 'NOPE'",
        ),
        (
            250001,
            "08001",
            "Could not connect to Snowflake backend after 2 attempt(s).Aborting",
            SourceConnectionError,
            True,
            "cannot reach Snowflake account 'acme-prod'",
        ),
        (
            250001,
            "08001",
            "Failed to connect to DB. Verify the account name is correct: acme-prod.snowflakecomputing.com:443.",
            SourceConnectionError,
            False,
            r"check account",
        ),
        (390114, "08001", "Authentication token has expired.", SourceConnectionError, True, "cannot reach"),
        (390100, "28000", "Incorrect username or password was specified.", SourceAuthError, False, "check user"),
        (390318, "08001", "User temporarily locked.", SourceAuthError, False, "refused the login of user 'SYNC'"),
    ],
)
def test_snowflakes_errors_map_to_what_fixes_them(
    errno: int, sqlstate: str, msg: str, kind: type[SourceError], transient: bool, says: str
) -> None:
    mapped = map_snowflake_error(_driver_error(errno, sqlstate, msg), SETTINGS, query("SELECT * FROM users"))
    assert type(mapped) is kind
    assert mapped.transient is transient
    assert re.search(says, str(mapped)), str(mapped)


def test_errors_not_the_drivers_are_left_alone_and_secrets_never_shown() -> None:
    assert map_snowflake_error(ValueError("a bug"), SETTINGS) is None
    leaked = _driver_error(2003, "42S02", "Object 's3cret-pw' does not exist or not authorized.")
    assert "s3cret-pw" not in str(map_snowflake_error(leaked, SETTINGS))


def test_a_relative_key_path_in_a_project_file_is_relative_to_the_file(tmp_path: Path) -> None:
    project = tmp_path / "project" / "smartingest.yml"
    project.parent.mkdir()
    settings = {"account": "a", "user": "u", "database": "d", "private_key_path": "keys/snowflake.p8"}
    project.write_text(yaml.safe_dump({"sources": {"sf": {"type": "snowflake", **settings}}}))
    config = ProjectFileRepository(project).load()
    assert config.sources["sf"].connector_settings()["private_key_path"] == str(project.parent / "keys/snowflake.p8")
