"""The fixtures of the connectors faked at the driver boundary (SQL Server and Synapse, Oracle, Teradata), for
the suite's conftest to import in one line once the contract dataset is defined."""

from .oracle_fixtures import fake_oracle, oracle_case, oracle_server
from .sqlserver_fixtures import fake_mssql, fake_synapse, sqlserver_case, sqlserver_server, synapse_case, synapse_server
from .teradata_fixtures import fake_teradata, teradata_case, teradata_server

__all__ = [
    "fake_mssql",
    "fake_oracle",
    "fake_synapse",
    "fake_teradata",
    "oracle_case",
    "oracle_server",
    "sqlserver_case",
    "sqlserver_server",
    "synapse_case",
    "synapse_server",
    "teradata_case",
    "teradata_server",
]
