"""Sources reached through an SSH tunnel: a real OpenSSH server on loopback as the bastion, key auth, the
real PostgreSQL, MariaDB and (Redshift's protocol) PostgreSQL behind it; errors that name the setting to fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pytest

from smartingest.config.models import ModelConfig
from smartingest.errors import ConfigError, MissingDriverError, SourceAuthError, SourceConnectionError
from smartingest.sources.mysql import MySQLSource
from smartingest.sources.postgres import PostgresSource
from smartingest.sources.redshift import RedshiftSource
from smartingest.sources.tunnel import SshTunnelSettings

from .conftest import NUMBERS_ROWS, Case, tunnel_settings, tunnelled
from .sshd import Bastion

NUMBERS = ModelConfig(source="src", table="numbers", primary_key="id")


def read_all(source: Any, model: ModelConfig, batch_rows: int = 1000) -> pa.Table:
    with source.read(model, batch_rows) as stream:
        return pa.Table.from_batches(list(stream), schema=stream.schema)


@pytest.mark.parametrize("name", ["postgres", "mysql", "redshift", "clickhouse"])
def test_a_model_reads_the_same_through_the_tunnel(name: str, bastion: Bastion, request: pytest.FixtureRequest) -> None:
    direct: Case = request.getfixturevalue(f"{name}_case")
    through = tunnelled(direct, bastion)
    through.source.test_connection()
    assert read_all(through.source, NUMBERS).equals(read_all(direct.source, NUMBERS))
    assert read_all(through.source, NUMBERS).num_rows == NUMBERS_ROWS
    assert through.source.preview(NUMBERS, 3).num_rows == 3
    assert "numbers" in {t.split(".")[-1] for t in through.source.tables()}


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_a_read_left_early_through_the_tunnel_releases_everything(
    name: str, bastion: Bastion, request: pytest.FixtureRequest
) -> None:
    case = tunnelled(request.getfixturevalue(f"{name}_case"), bastion)
    with case.source.read(NUMBERS, 100) as stream:
        next(stream)
    assert case.is_released()
    assert not _forwarders(), "the tunnel's process outlived the read"


def _forwarders() -> list[psutil.Process]:
    """This process's tunnel children still alive."""
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if child.is_running() and "smartingest.sources.ssh_forwarder" in " ".join(child.cmdline())
    ]


def test_the_private_key_may_be_given_as_text_and_encrypted(
    bastion: Bastion, postgres_case: Case, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_bytes(bastion.key_path.read_bytes())
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "open sesame", "-f", str(key)], check=True)
    settings = postgres_case.settings | tunnel_settings(bastion)
    del settings["ssh_private_key_path"]
    settings |= {"ssh_private_key": key.read_text(), "ssh_private_key_passphrase": "open sesame"}
    PostgresSource(PostgresSource.Settings(**settings)).test_connection()
    with pytest.raises(SourceAuthError, match="cannot be opened with ssh_private_key_passphrase"):
        PostgresSource(PostgresSource.Settings(**settings | {"ssh_private_key_passphrase": "wrong"})).test_connection()


def test_a_key_the_bastion_does_not_know_is_an_auth_error(bastion: Bastion, postgres_case: Case) -> None:
    settings = postgres_case.settings | tunnel_settings(bastion) | {"ssh_private_key_path": str(bastion.other_key_path)}
    with pytest.raises(SourceAuthError, match="authorized_keys") as err:
        PostgresSource(PostgresSource.Settings(**settings)).test_connection()
    assert f"SSH bastion 127.0.0.1:{bastion.port} refused user {bastion.user!r}" in str(err.value)


def test_a_bastion_with_another_host_key_is_refused(bastion: Bastion, postgres_case: Case) -> None:
    other = " ".join(bastion.other_key_path.with_suffix(".pub").read_text().split()[:2])
    settings = postgres_case.settings | tunnel_settings(bastion) | {"ssh_host_key": other}
    with pytest.raises(SourceAuthError, match="host key other than ssh_host_key"):
        PostgresSource(PostgresSource.Settings(**settings)).test_connection()


def test_an_unreachable_bastion_is_a_transient_connection_error(bastion: Bastion, mysql_case: Case) -> None:
    settings = mysql_case.settings | tunnel_settings(bastion) | {"ssh_port": _closed_port()}
    with pytest.raises(SourceConnectionError, match="cannot reach SSH bastion") as err:
        MySQLSource(MySQLSource.Settings(**settings)).test_connection()
    assert err.value.transient is True


def test_a_database_the_bastion_cannot_reach_is_named(bastion: Bastion, mysql_case: Case) -> None:
    port = _closed_port()
    settings = mysql_case.settings | tunnel_settings(bastion) | {"port": port}
    with pytest.raises(SourceConnectionError, match=f"cannot reach the database at 127.0.0.1:{port}"):
        MySQLSource(MySQLSource.Settings(**settings)).test_connection()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"ssh_user": "u", "ssh_private_key": "k"}, "without ssh_host"),
        ({"ssh_host": "b", "ssh_private_key": "k"}, "ssh_user is needed"),
        ({"ssh_host": "b", "ssh_user": "u"}, "exactly one of ssh_private_key, ssh_private_key_path"),
        ({"ssh_host": "b", "ssh_user": "u", "ssh_private_key": "k", "ssh_private_key_path": "p"}, "exactly one"),
    ],
)
def test_tunnel_settings_that_cannot_work_are_refused(given: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SshTunnelSettings(**given)


def test_hostname_verification_through_a_tunnel_is_refused_where_the_driver_cannot_do_it() -> None:
    from smartingest.config.models import SourceConfig
    from smartingest.sources.registry import open_source

    tunnel = {"ssh_host": "b", "ssh_user": "u", "ssh_private_key": "k"}
    config = SourceConfig(type="mysql", database="d", user="u", ssl_mode="verify_identity", **tunnel)
    with pytest.raises(ConfigError, match=r"verify_identity .* use verify_ca"):
        open_source("warehouse", config)
    # libpq checks the certificate against host while connecting to the tunnel's hostaddr: allowed.
    RedshiftSource.Settings(host="c.example.com", user="u", sslmode="verify-full", **tunnel)


def test_without_the_ssh_extra_a_tunnel_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, postgres_case: Case, bastion: Bastion
) -> None:
    monkeypatch.setitem(sys.modules, "asyncssh", None)  # what Python does with a package not installed
    settings = postgres_case.settings | tunnel_settings(bastion)
    with pytest.raises(MissingDriverError, match=re.escape("pip install 'smartingest[ssh]'")):
        PostgresSource(PostgresSource.Settings(**settings)).test_connection()
