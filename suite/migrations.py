"""Named schema migrations, applied in order, each in its own transaction.

Add new ones at the end; never edit or reorder one that has shipped.
"""

from __future__ import annotations

from typing import NamedTuple

from suite.schema import requests_table_ddl


class Migration(NamedTuple):
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_requests_and_ingest_ledger",
        (
            requests_table_ddl("requests"),
            # The ingest ledger: a segment's name is written in the same transaction as
            # its rows, which is what makes ingest exactly-once.
            """
            CREATE TABLE IF NOT EXISTS ingested_segments (
                name VARCHAR PRIMARY KEY,
                rows BIGINT NOT NULL,
                loaded_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
)
