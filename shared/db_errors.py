"""The database errors that mean "unreachable or busy, try again": one list for every caller."""

from __future__ import annotations

import asyncpg

# Retried with backoff by the consumers and loops, never dead-lettered; answered 503 with
# Retry-After by the APIs (a request that met one stored nothing it acknowledged).
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.InterfaceError,
    # PostgreSQL restarting or failing over: the connection is gone, the next one will work.
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)
