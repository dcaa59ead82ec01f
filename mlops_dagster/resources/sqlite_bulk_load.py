"""Load an Arrow IPC stream (stdin) into an existing SQLite table, committed; run as a script by
``SqliteOnlineStore`` in a process of its own.

    python sqlite_bulk_load.py DATABASE TABLE < batches.arrows

ADBC's SQLite driver appends Arrow batches in C (about 3x Python's ``sqlite3``), but it links its
own copy of SQLite: two SQLite libraries writing one database file from one process break each
other's POSIX locks, so the store's own process never loads it. Imports only pyarrow and ADBC.
"""

import sys


def main(database: str, table: str) -> None:
    import adbc_driver_sqlite.dbapi
    import pyarrow as pa

    batches = pa.ipc.open_stream(sys.stdin.buffer)
    with adbc_driver_sqlite.dbapi.connect(database) as conn, conn.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.adbc_ingest(table, batches, mode="append")
        conn.commit()


if __name__ == "__main__":
    main(*sys.argv[1:])
