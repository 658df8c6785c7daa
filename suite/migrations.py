"""Named schema migrations, applied in order, each in its own transaction.

Add new ones at the end; never edit or reorder one that has shipped.
"""

from __future__ import annotations

from typing import NamedTuple

from suite.schema import (
    BODY_COLUMNS,
    REQUEST_COLUMNS,
    REQUESTS_V1_COLUMNS,
    add_columns_ddl,
    requests_table_ddl,
)


class Migration(NamedTuple):
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_requests_and_ingest_ledger",
        (
            requests_table_ddl("requests", REQUEST_COLUMNS[:REQUESTS_V1_COLUMNS]),
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
    Migration(
        "0002_llm_mcp_columns_and_request_bodies",
        (
            *add_columns_ddl("requests", REQUEST_COLUMNS[REQUESTS_V1_COLUMNS:]),
            requests_table_ddl("request_bodies", BODY_COLUMNS),
        ),
    ),
)
