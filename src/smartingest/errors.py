"""The one error tree of smartingest.

Every error we raise on purpose derives from :class:`SmartIngestError` and carries a message that
says what to fix. Driver and HTTP errors are translated into this tree once, at the boundary that
met them (a connector's error mapping, the Iterable client), and re-raised with ``from``.

    SmartIngestError
    ├── ConfigError                  the project file or a setting is wrong
    │   ├── UnknownNameError         a reference to a source/model/destination/sync that is not defined
    │   ├── DefinitionInUseError     a definition others refer to cannot be deleted
    │   └── QuotaError               more production syncs than the sync quota allows
    ├── SourceError                  anything a source reported
    │   ├── SourceConnectionError    cannot reach the source (host, port, network) - transient
    │   ├── SourceAuthError          the source refused the credentials - permanent
    │   ├── ModelError               the model's SQL/table is wrong (bad SQL, missing table or column)
    │   └── MissingDriverError       the connector's optional dependency is not installed
    ├── StateError                   the CDC state store is unreadable or locked
    │   ├── SyncLockedError          another run of the same sync is in progress
    │   └── RunNotQueuedError        a run asked to execute was claimed by another process, or ended
    ├── MappingError                 a field mapping cannot be compiled against the model
    └── DestinationError             anything Iterable answered that ends the run
        ├── DestinationAuthError     Iterable refused the API key (401)
        └── DestinationUnavailableError  Iterable kept failing past the retry budget
"""

from __future__ import annotations


class SmartIngestError(Exception):
    """Root of every error smartingest raises on purpose; ``str()`` is the user-facing message."""


class ConfigError(SmartIngestError):
    """The project file or a setting is invalid; the message names the key to fix."""


class UnknownNameError(ConfigError):
    """A name refers to nothing defined in the project."""


class DefinitionInUseError(ConfigError):
    """A definition cannot be deleted while another refers to it."""


class QuotaError(ConfigError):
    """The change would take the organization's production syncs over the sync quota."""


class SourceError(SmartIngestError):
    """A data source failed; ``transient`` says whether retrying later may help."""

    transient: bool = False


class SourceConnectionError(SourceError):
    """The source could not be reached (wrong host or port, server down, network)."""

    transient = True


class SourceAuthError(SourceError):
    """The source refused the credentials or the database does not exist."""


class ModelError(SourceError):
    """The model cannot be read: bad SQL, missing table, missing primary-key column."""


class MissingDriverError(SourceError):
    """The connector's optional dependency is not installed."""


class StateError(SmartIngestError):
    """The CDC state store cannot be read or written."""


class SyncLockedError(StateError):
    """Another run of the same sync holds its lock."""


class RunNotQueuedError(StateError):
    """A run asked to execute is not queued: another process claimed it, or it ended."""


class MappingError(SmartIngestError):
    """A field mapping does not fit the model (missing column, bad static value)."""


class DestinationError(SmartIngestError):
    """Iterable answered in a way that ends the run."""


class DestinationAuthError(DestinationError):
    """Iterable refused the API key."""


class DestinationUnavailableError(DestinationError):
    """Iterable kept failing (429, 5xx, timeouts) past the retry budget."""
