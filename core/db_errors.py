"""Which database errors are transient: the server or file was out of reach, the SQL was fine.

Its own module so that both ``core.db`` (its retry loop) and ``core.errors`` (what a task may
retry) can use it without importing each other.
"""

from __future__ import annotations

import sqlite3
import sys

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

__all__ = ["is_transient_db_error"]

# SQLite primary result codes of a busy, locked or briefly unreadable file. Its other
# OperationalErrors ("no such table", syntax errors) are mistakes that retrying cannot fix.
_SQLITE_TRANSIENT = {5, 6, 10, 14, 15}  # BUSY, LOCKED, IOERR, CANTOPEN, PROTOCOL


def is_transient_db_error(exc: BaseException) -> bool:
    """True when ``exc`` says the database was out of reach, not that the statement was wrong.

    Transient: a connection lost, refused or terminated by the server (a PostgreSQL restart
    sends SQLSTATE 57P01 to every session), that is SQLAlchemy's ``OperationalError``,
    ``InterfaceError`` and ``DisconnectionError``, any ``DBAPIError`` that invalidated its
    connection, and psycopg's ``OperationalError`` raised outside SQLAlchemy. On SQLite only a
    busy, locked or unreadable file counts. Integrity and programming errors never do: the
    same statement would fail again.
    """
    if isinstance(exc, DisconnectionError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        if not isinstance(exc, OperationalError | InterfaceError):
            return False
        if isinstance(exc.orig, sqlite3.Error):
            return (exc.orig.sqlite_errorcode & 0xFF) in _SQLITE_TRANSIENT
        return True
    psycopg = sys.modules.get("psycopg")  # loaded only when a PostgreSQL URL is in use
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)
