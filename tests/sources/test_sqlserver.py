"""SQL Server and Azure Synapse specifics, on the fake of mssql-python at the driver boundary
(``sqlserver_fixtures``): the Arrow types as the driver sends them, the logins each profile asks for, the
session's context and query timeout, the SQL the connector writes, and errors that name what to fix."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from mssql_python.exceptions import InterfaceError, OperationalError, ProgrammingError

from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import (
    ConfigError,
    MissingDriverError,
    ModelError,
    SourceAuthError,
    SourceConnectionError,
    SourceError,
)
from smartingest.sources._common import Normaliser
from smartingest.sources.registry import open_source
from smartingest.sources.sqlserver import (
    SqlServerSettings,
    SqlServerSource,
    SynapseSettings,
    SynapseSource,
    _leaf_rule,
    map_sqlserver_error,
)

from .conftest import NUMBERS_ROWS, tunnel_settings
from .driver_fakes import closed_port
from .sqlserver_fixtures import SQLSERVER_PASSWORD, FakeMssqlServer, error, sqlserver_settings
from .sshd import Bastion

PEOPLE = ModelConfig(source="mssql", table="people", primary_key="id")
NUMBERS = ModelConfig(source="mssql", table="numbers", primary_key="id")


def source(server: FakeMssqlServer, **overrides: Any) -> SqlServerSource:
    return SqlServerSource(SqlServerSettings(**sqlserver_settings(server, **overrides)))


def synapse(server: FakeMssqlServer, **overrides: Any) -> SynapseSource:
    return SynapseSource(SynapseSettings(**sqlserver_settings(server, **overrides)))


def query(sql: str) -> ModelConfig:
    return ModelConfig(source="mssql", sql=sql, primary_key="id")


# ------------------------------------------------------------------------------------------------- the types


def test_the_drivers_arrow_types_become_plain_ones() -> None:
    """What mssql-python sends (datetimeoffset as ``tsu:+00:00``, TIME(7) to the nanosecond, datetime2
    to the nanosecond, TINYINT unsigned) read as the project's plain types, values kept."""
    instant = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
    sent = pa.record_batch(
        {
            "offset": pa.array([instant, None], pa.timestamp("us", tz="+00:00")),
            "at": pa.array([instant.replace(tzinfo=None), None], pa.timestamp("ns")),
            "clock": pa.array([dt.time(1, 2, 3, 456789), None], pa.time64("ns")),
            "tiny": pa.array([255, None], pa.uint8()),
            "amount": pa.array([Decimal("-12.34"), None], pa.decimal128(12, 2)),
            "text": pa.array(["Zoë", None], pa.large_string()),
            "bytes": pa.array([b"\x00\xff", None], pa.large_binary()),
        }
    )
    normalise = Normaliser(sent.schema, _leaf_rule)
    read = normalise(sent)
    assert dict(zip(read.schema.names, read.schema.types, strict=True)) == {
        "offset": pa.timestamp("us", tz="UTC"),
        "at": pa.timestamp("us"),
        "clock": pa.time64("us"),
        "tiny": pa.uint8(),
        "amount": pa.decimal128(12, 2),
        "text": pa.string(),
        "bytes": pa.binary(),
    }
    assert read.to_pylist()[0] == {
        "offset": instant,
        "at": instant.replace(tzinfo=None),
        "clock": dt.time(1, 2, 3, 456789),
        "tiny": 255,
        "amount": Decimal("-12.34"),
        "text": "Zoë",
        "bytes": b"\x00\xff",
    }


def test_a_datetimeoffset_is_the_utc_instant(fake_mssql: FakeMssqlServer) -> None:
    table = source(fake_mssql).preview(query("SELECT id, updated_at FROM people WHERE id = 1"))
    assert table.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert table.column("updated_at").to_pylist() == [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)]


def test_reads_stream_in_batches_no_larger_than_asked(fake_mssql: FakeMssqlServer) -> None:
    with source(fake_mssql).read(NUMBERS, batch_rows=250) as stream:
        sizes = [batch.num_rows for batch in stream]
    assert sum(sizes) == NUMBERS_ROWS
    assert max(sizes) == 250


# ------------------------------------------------------------------------------------------------- settings


def test_each_authentication_asks_for_its_own_credentials() -> None:
    base = {"host": "h", "database": "d"}
    SqlServerSettings(**base, user="u", password="p")
    SqlServerSettings(**base, authentication="service_principal", user="client-id", password="secret")
    SqlServerSettings(**base, authentication="managed_identity")
    with pytest.raises(ValueError, match="authentication sql needs user and password"):
        SqlServerSettings(**base, user="u")
    with pytest.raises(ValueError, match=r"user \(client ID\) and password \(secret\)"):
        SqlServerSettings(**base, authentication="service_principal", user="client-id")
    with pytest.raises(ValueError, match="without a password"):
        SqlServerSettings(**base, authentication="managed_identity", password="p")


def test_synapse_has_no_key_it_could_not_honour() -> None:
    config = SourceConfig(type="synapse", host="w.sql.azuresynapse.net", database="d", user="u", password="p")
    assert isinstance(open_source("dw", config), SynapseSource)
    for key, value in (("encrypt", False), ("application_name", "x"), ("application_intent", "ReadWrite")):
        with pytest.raises(ConfigError, match=key):
            open_source("dw", config.model_copy(update={key: value}))


def test_the_password_is_secret_and_never_shown(fake_mssql: FakeMssqlServer) -> None:
    from smartingest.sources.registry import secret_keys

    assert secret_keys(SourceConfig(type="sqlserver")) == {"password", "ssh_private_key", "ssh_private_key_passphrase"}
    assert SQLSERVER_PASSWORD not in repr(source(fake_mssql))


# --------------------------------------------------------------------------------------- logins and sessions


def test_a_sql_server_login_is_encrypted_read_intent_and_names_the_application(fake_mssql: FakeMssqlServer) -> None:
    source(fake_mssql, application_name="nightly 'sync'", query_timeout_seconds=30).test_connection()
    login = fake_mssql.logins_seen[-1]
    assert login["Encrypt"] == "yes"
    assert login["TrustServerCertificate"] == "yes"
    assert login["ApplicationIntent"] == "ReadOnly"
    assert login["Server"] == f"tcp:127.0.0.1,{fake_mssql.port}"
    assert "Authentication" not in login and "HostnameInCertificate" not in login
    assert (
        "EXEC sys.sp_set_session_context @key = N'application_name', @value = N'nightly ''sync''', @read_only = 1"
        in fake_mssql.received
    )


def test_tls_may_be_turned_off_on_sql_server(fake_mssql: FakeMssqlServer) -> None:
    source(fake_mssql, encrypt=False, trust_server_certificate=False).test_connection()
    assert fake_mssql.logins_seen[-1]["Encrypt"] == "no"
    assert fake_mssql.logins_seen[-1]["TrustServerCertificate"] == "no"


def test_a_synapse_login_always_encrypts_and_sets_no_session_context(fake_synapse: FakeMssqlServer) -> None:
    source_ = synapse(fake_synapse)
    source_.test_connection()  # the fake pool refuses sp_set_session_context, as dedicated pools do
    login = fake_synapse.logins_seen[-1]
    assert login["Encrypt"] == "yes" and "ApplicationIntent" not in login
    assert not any("sp_set_session_context" in s for s in fake_synapse.received)
    assert source_.preview(PEOPLE).num_rows == 3


def test_a_service_principal_logs_in_through_the_odbc_drivers_entra_support(fake_mssql: FakeMssqlServer) -> None:
    fake_mssql.logins["app-client-id"] = "app-secret"
    try:
        source(fake_mssql, authentication="service_principal", user="app-client-id", password="app-secret").preview(
            PEOPLE
        )
        assert fake_mssql.logins_seen[-1]["Authentication"] == "ActiveDirectoryServicePrincipal"
        assert fake_mssql.logins_seen[-1]["UID"] == "app-client-id"
        wrong = source(fake_mssql, authentication="service_principal", user="app-client-id", password="nope")
        with pytest.raises(SourceAuthError, match="check the client ID and secret") as err:
            wrong.test_connection()
        assert "AADSTS7000215" in str(err.value)
    finally:
        del fake_mssql.logins["app-client-id"]


def test_a_query_over_its_timeout_is_stopped_and_says_which_setting(fake_mssql: FakeMssqlServer) -> None:
    fake_mssql.statement_seconds = 2
    with pytest.raises(SourceError, match=r"ran longer than query_timeout_seconds \(1\)") as err:
        source(fake_mssql, query_timeout_seconds=1).preview(PEOPLE)
    assert err.value.transient is False
    assert fake_mssql.released()


def test_a_read_through_an_ssh_tunnel_checks_the_certificate_against_the_server_name(
    fake_mssql: FakeMssqlServer, bastion: Bastion
) -> None:
    through = source(fake_mssql, host="localhost", **tunnel_settings(bastion))
    with through.read(NUMBERS, batch_rows=1000) as stream:
        assert sum(batch.num_rows for batch in stream) == NUMBERS_ROWS
    login = fake_mssql.logins_seen[-1]
    assert login["HostnameInCertificate"] == "localhost"
    assert login["Server"].startswith("tcp:127.0.0.1,") and login["Server"] != f"tcp:127.0.0.1,{fake_mssql.port}"
    assert fake_mssql.released()


# ----------------------------------------------------------------------------------------------- the SQL written


def test_the_sql_written_is_t_sql(fake_mssql: FakeMssqlServer) -> None:
    source_ = source(fake_mssql)
    source_.preview(ModelConfig(source="mssql", table="dbo.people", primary_key="id"), limit=2)
    assert "SELECT TOP 2 * FROM (\nSELECT * FROM [dbo].[people]\n) m" in fake_mssql.received
    source_.schema(PEOPLE)
    assert "SELECT TOP 0 * FROM (\nSELECT * FROM [people]\n) m" in fake_mssql.received
    assert source_.tables() == ["dbo.numbers", "dbo.people", "dbo.people_view"]
    assert any(s.startswith("SELECT TOP (2000) CONCAT(TABLE_SCHEMA, '.', TABLE_NAME)") for s in fake_mssql.received)


# ----------------------------------------------------------------------------------------------------- errors


def test_a_wrong_password_is_an_auth_error_that_does_not_show_it(fake_mssql: FakeMssqlServer) -> None:
    with pytest.raises(SourceAuthError, match="Login failed for user 'reader'") as err:
        source(fake_mssql, password="wrong-Pa55").test_connection()
    assert "check user and password" in str(err.value) and "wrong-Pa55" not in str(err.value)
    assert fake_mssql.released()


def test_a_database_the_login_cannot_open_is_named(fake_mssql: FakeMssqlServer) -> None:
    with pytest.raises(SourceConnectionError, match="has no database 'nosuch' that the login may open") as err:
        source(fake_mssql, database="nosuch").test_connection()
    assert err.value.transient is False
    assert "CREATE USER [reader] FOR LOGIN [reader]" in str(err.value)


def test_an_unreachable_server_is_a_transient_connection_error(fake_mssql: FakeMssqlServer) -> None:
    port = closed_port()
    with pytest.raises(SourceConnectionError, match=f"cannot reach SQL Server at 127.0.0.1:{port}") as err:
        source(fake_mssql, port=port, connect_timeout_seconds=2).test_connection()
    assert err.value.transient is True


def test_a_missing_privilege_names_the_grant_that_fixes_it(fake_mssql: FakeMssqlServer) -> None:
    fake_mssql.denied.add("people")
    with pytest.raises(SourceAuthError, match=r"GRANT SELECT ON SCHEMA::\[dbo\] TO \[reader\]") as err:
        source(fake_mssql).preview(PEOPLE)
    assert "The SELECT permission was denied on the object 'people'" in str(err.value)
    assert source(fake_mssql).preview(NUMBERS, 1).num_rows == 1


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT id FROM nosuch_table", "cannot be read: .*Invalid object name 'nosuch_table'"),
        ("SELECT no_such_column AS id FROM people", "cannot be read: .*Invalid column name 'no_such_column'"),
        ("SELECT id FROM people WHERE", "has a syntax error: .*Incorrect syntax near"),
    ],
)
def test_model_errors_carry_sql_servers_text(fake_mssql: FakeMssqlServer, sql: str, message: str) -> None:
    with pytest.raises(ModelError, match=message) as err, source(fake_mssql).read(query(sql)):
        pass
    assert f'model query "{sql}"' in str(err.value)


SETTINGS = SqlServerSettings(host="db.example.com", database="sales", user="reader", password="s3cret")


@pytest.mark.parametrize(
    ("exc", "connecting", "kind", "transient", "says"),
    [
        (error("42000", "Database 'sales' on server 'x' is not currently available."), False, SourceError, True, ""),
        (
            error("42000", "The service is currently busy. Retry the request after 10 seconds."),
            True,
            SourceError,
            True,
            "",
        ),
        (error("40001", "Transaction (Process ID 51) was deadlocked on lock resources."), False, SourceError, True, ""),
        (
            error("08S01", "TCP Provider: An existing connection was forcibly closed", server=False),
            False,
            SourceError,
            True,
            "",
        ),
        (
            error("08001", "SSL Provider: [error:0A000086:certificate verify failed]", server=False),
            True,
            SourceConnectionError,
            False,
            "trust_server_certificate",
        ),
        (error("HYT00", "Login timeout expired", server=False), True, SourceConnectionError, True, "cannot reach"),
        (
            error(
                "42000",
                "The SELECT permission was denied on the column 'x' of the object 'people', database 'sales',"
                " schema 'crm'.",
            ),
            False,
            SourceAuthError,
            False,
            "SCHEMA::[crm]",
        ),
        (
            error("42000", "CREATE TABLE permission denied in database 'sales'."),
            False,
            ModelError,
            False,
            "would write",
        ),
        (error("42000", "Incorrect syntax near the keyword 'FROM'."), False, ModelError, False, "syntax error"),
        (
            error("22003", "Arithmetic overflow error converting expression to data type int."),
            False,
            ModelError,
            False,
            "",
        ),
    ],
)
def test_sql_servers_errors_map_to_what_fixes_them(
    exc: Exception, connecting: bool, kind: type[SourceError], transient: bool, says: str
) -> None:
    mapped = map_sqlserver_error(exc, SETTINGS, PEOPLE, connecting=connecting)
    assert type(mapped) is kind
    assert mapped.transient is transient
    assert says in str(mapped)


def test_errors_not_the_drivers_are_left_alone_and_the_password_is_never_shown() -> None:
    assert map_sqlserver_error(ValueError("bug"), SETTINGS) is None
    leaked = OperationalError("General error", "[Microsoft][SQL Server]oops s3cret")
    assert "s3cret" not in str(map_sqlserver_error(leaked, SETTINGS))
    assert isinstance(map_sqlserver_error(InterfaceError("Connection is closed", ""), SETTINGS), SourceError)
    assert isinstance(map_sqlserver_error(ProgrammingError("x", "y"), SETTINGS, PEOPLE), ModelError)


def test_a_driver_that_cannot_load_its_odbc_library_names_the_package() -> None:
    # What mssql-python raises at connect on a Linux machine without libltdl (its wheel's ODBC driver needs it).
    failed = OperationalError(
        "Driver Error: Connection operation failed",
        "DDBC Error: Failed to load the driver. Please read the documentation to install the required dependencies.",
    )
    settings = SqlServerSource.Settings(host="db.internal", database="app", user="reader", password="x")
    mapped = map_sqlserver_error(failed, settings, connecting=True)
    assert isinstance(mapped, MissingDriverError) and "apt-get install libltdl7" in str(mapped)
