"""The exception tree: every error the fetcher raises on purpose.

    FetcherError                      base; `kind` names the class for the run ledger
    ├── ConfigError                   bad configuration file or option           (exit 2)
    ├── DatabaseError                 the database refused or is unusable         (exit 3)
    │   ├── DatabaseUnavailable       cannot connect
    │   ├── SchemaOutOfDate           behind the code's migration: run `fetcher migrate`
    │   │   └── SchemaTooNew          at a revision this fetcher does not ship: upgrade the fetcher
    │   ├── SchemaDamaged             alembic_version unusable: several rows, no row beside the tables, garbage;
    │   │                             or a table or view of the head revision missing (found so at start, or
    │   │                             met so by a statement: dropped while the command ran)
    │   ├── ForeignDatabase           tables, none of them the fetcher's: another program's database
    │   ├── DatabaseGone              SQLite: the file was deleted or replaced while open
    │   ├── LockHeld                  another run holds the database's run lock
    │   ├── DatabaseLocked            SQLite: another writer outlasted busy_timeout_seconds
    │   ├── ArchiveUnreadable         an archived body cannot be decompressed (unknown dictionary, damage)
    │   └── NotEnoughDisk             a migration would not fit on the database's disk
    ├── PayloadError                  a secureScore object we refuse to store
    │   ├── MissingField              no `id`, `azureTenantId` or `createdDateTime`
    │   └── WrongTenant               `azureTenantId` is not the tenant that was asked
    ├── GraphError                    Graph or Entra ID said no; carries tenant, status, url
    │   ├── AuthenticationError       Entra ID refused a token, or Graph refused it twice (401)
    │   ├── PermissionDenied          403: SecurityEvents.Read.All not consented
    │   ├── NotFound                  404
    │   ├── BadRequest                400
    │   ├── UnsafeResponse            hostile answer: too large, foreign next link, ...
    │   ├── RetryWaitTooLong          Retry-After beyond max_retry_wait_seconds
    │   ├── ProviderRefused           206 without data, the provider's status a 4xx: not retried
    │   └── TransientError            retried; raised once attempts run out
    │       ├── Throttled             429
    │       ├── ServerError           500, 502, 503, 504
    │       ├── ProviderUnavailable   206 without data, the provider failed or timed out
    │       ├── ConnectionFailed      refused, reset, TLS or DNS failure
    │       ├── RequestTimedOut       no answer within timeout_seconds
    │       └── InvalidResponse       a 2xx whose body is not valid JSON (carries the body)
    ├── LocalResourceError            this machine ran out of open files, memory or disk (EMFILE, ...)
    ├── OutputUnwritable              an --output or --html file, or standard output, cannot be
    │                                 written (the disk full, no folder)          (exit 3)
    ├── StandardOutputClosed          the reader of standard output went away: said nothing (exit 141)
    ├── DiscoveryFailed               partner discovery: Graph or Entra ID refused or failed, or listed
    │   │                             no customer                                 (exit 4)
    │   └── NoCustomerList            tenants_source = "partner": discovery failed, no list cached
    └── Interrupted                   SIGINT or SIGTERM stopped the run

Messages are one line, name the tenant (and file or field) at fault, say what to do, and never
contain a secret or a token.
"""

from __future__ import annotations


class FetcherError(Exception):
    """Base of every error the fetcher raises on purpose."""

    kind = "error"
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(FetcherError):
    """The configuration file, an option or a referenced file is wrong."""

    kind = "config"
    exit_code = 2


class DatabaseError(FetcherError):
    """The database cannot be used."""

    kind = "database"
    exit_code = 3


class DatabaseUnavailable(DatabaseError):
    """No connection could be made to the database."""

    kind = "database_unavailable"


class SchemaOutOfDate(DatabaseError):
    """The database's schema revision is not the one this code expects."""

    kind = "schema_out_of_date"


class SchemaTooNew(SchemaOutOfDate):
    """The database is at a revision this code does not ship (a newer fetcher migrated it)."""

    kind = "schema_too_new"


class SchemaDamaged(DatabaseError):
    """`alembic_version` holds no revision this fetcher can act on: several rows, none while the fetcher's
    tables are there, or one no fetcher made. Migrating could not be right, so nothing is migrated. Also a
    table or view of the head revision that is missing: at start-up, or met by a statement (dropped while the
    command ran); no migration makes it again."""

    kind = "schema_damaged"


class ForeignDatabase(DatabaseError):
    """The database has tables but none of the fetcher's and no schema revision: another program's."""

    kind = "foreign_database"


class DatabaseGone(DatabaseError):
    """SQLite: the database file was deleted or replaced while the fetcher had it open."""

    kind = "database_gone"


class LockHeld(DatabaseError):
    """Another run holds the run lock of this database."""

    kind = "lock_held"


class DatabaseLocked(DatabaseError):
    """SQLite: another writer held the database for longer than `busy_timeout_seconds`."""

    kind = "database_locked"


class ArchiveUnreadable(DatabaseError):
    """An archived body cannot be read: its zstd dictionary is not in `archive_dictionaries`, or it is damaged."""

    kind = "archive_unreadable"


class NotEnoughDisk(DatabaseError):
    """A migration refused to start: the database's disk has less free space than it needs."""

    kind = "not_enough_disk"


class PayloadError(FetcherError):
    """A secureScore object that cannot be stored as it is."""

    kind = "invalid_payload"

    def __init__(self, message: str, *, tenant_id: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.tenant_id = tenant_id
        self.field = field


class MissingField(PayloadError):
    """A required property (`id`, `azureTenantId`, `createdDateTime`) is missing or unusable."""

    kind = "missing_field"


class WrongTenant(PayloadError):
    """The object belongs to another tenant than the one that was asked."""

    kind = "wrong_tenant"


class GraphError(FetcherError):
    """Microsoft Graph or Entra ID answered with an error."""

    kind = "graph"

    def __init__(
        self, message: str, *, tenant_id: str | None = None, status: int | None = None, url: str | None = None
    ) -> None:
        super().__init__(message)
        self.tenant_id = tenant_id
        self.status = status
        self.url = url


class AuthenticationError(GraphError):
    """Entra ID refused to issue a token, or Graph refused the one it issued."""

    kind = "authentication"

    def __init__(
        self,
        message: str,
        *,
        tenant_id: str | None = None,
        status: int | None = None,
        url: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, tenant_id=tenant_id, status=status, url=url)
        self.code = code


class PermissionDenied(GraphError):
    """403: the app lacks SecurityEvents.Read.All with admin consent in the tenant."""

    kind = "permission"


class NotFound(GraphError):
    """404: no such secureScore."""

    kind = "not_found"


class BadRequest(GraphError):
    """400: Graph rejected the request itself."""

    kind = "bad_request"


class UnsafeResponse(GraphError):
    """An answer we refuse to process: too large, too deep, or pointing elsewhere."""

    kind = "unsafe_response"


class RetryWaitTooLong(GraphError):
    """Graph asked us to wait longer than `max_retry_wait_seconds`."""

    kind = "retry_wait_too_long"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        tenant_id: str | None = None,
        status: int | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, tenant_id=tenant_id, status=status, url=url)
        self.retry_after = retry_after


class ProviderRefused(GraphError):
    """A `206 Partial Content` without data whose `Warning` carries a 4xx from Secure Score's provider."""

    kind = "provider_refused"


class TransientError(GraphError):
    """A failure worth retrying; raised to the caller only once attempts run out."""

    kind = "transient"

    def __init__(
        self,
        message: str,
        *,
        tenant_id: str | None = None,
        status: int | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, tenant_id=tenant_id, status=status, url=url)
        self.retry_after = retry_after


class Throttled(TransientError):
    """429 Too Many Requests."""

    kind = "throttled"


class ServerError(TransientError):
    """A 5xx answer that Graph documents as transient."""

    kind = "server_error"


class ProviderUnavailable(TransientError):
    """A `206 Partial Content` without data: Secure Score's only provider failed (5xx) or timed out."""

    kind = "provider_unavailable"


class ConnectionFailed(TransientError):
    """The connection could not be made or broke."""

    kind = "connection"


class RequestTimedOut(TransientError):
    """No complete answer within the configured timeout."""

    kind = "timeout"


class InvalidResponse(TransientError):
    """A 2xx answer whose body is not valid JSON (seen from Graph under load), or not the JSON asked for.

    It carries the body, so that one still refused after the retries can be quarantined.
    """

    kind = "invalid_response"

    def __init__(
        self,
        message: str,
        *,
        tenant_id: str | None = None,
        status: int | None = None,
        url: str | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message, tenant_id=tenant_id, status=status, url=url)
        self.body = body


class LocalResourceError(FetcherError):
    """This machine, not Graph or Entra ID, ran out of something: open files (EMFILE), memory, disk."""

    kind = "local_resource"

    def __init__(self, message: str, *, tenant_id: str | None = None) -> None:
        super().__init__(message)
        self.tenant_id = tenant_id


class OutputUnwritable(FetcherError):
    """A file a command was asked to write (`metrics --output`, `report --output`, `report --html`) cannot be
    written: its folder is missing or not writable, the disk is full. This machine's state, as a database
    that cannot be opened (exit 3), not a usage error: the command line may be right on another host."""

    kind = "output_unwritable"
    exit_code = 3


class StandardOutputClosed(FetcherError):
    """The reader of standard output went away (`fetcher report | head -1` once head has what it wants). Not
    said at all, as git and coreutils say nothing then; exit 141, 128 + SIGPIPE, what a shell reports for a
    command the signal stopped (the fetcher ignores SIGPIPE, as Python does, and exits so that what it holds,
    a database connection, the run lock, is let go)."""

    kind = "stdout_closed"
    exit_code = 141


class DiscoveryFailed(FetcherError):
    """Partner discovery (`tenants discover`, automatic mode) got no customer list: Entra ID or Graph refused
    or failed, or answered with no customer at all. Exit 4, as a run whose every tenant failed: something was
    asked (2 says nothing was, and Kubernetes' podFailurePolicy never retries it), and a retry may pass."""

    kind = "discovery_failed"
    exit_code = 4


class NoCustomerList(DiscoveryFailed):
    """`tenants_source = "partner"`: discovery failed and no earlier discovery left a list to fall back to.

    Exit 4, as a run whose every tenant failed: Entra ID or Graph was asked and refused or failed (a wrong
    secret, an outage), so it is no configuration error (2 says nothing was asked) and a retry may pass."""

    kind = "no_customer_list"


class Interrupted(FetcherError):
    """The run was stopped by a signal."""

    kind = "interrupted"

    def __init__(self, message: str, *, signal_number: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal_number
