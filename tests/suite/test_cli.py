from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

import suite
from suite.cli import build_parser
from suite.ingest import ingest_spool
from suite.store import Store
from tests.procs import run_aiops
from tests.suite.test_ingest import write_segments


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    home = tmp_path / "seeded"
    store = Store(home)
    write_segments(store.home.spool_dir, 2, 25)
    ingest_spool(store)
    return home


def test_every_subcommand_has_help_and_takes_home() -> None:
    """Every command a user can run (`aiops X`, or `aiops X Y` for groups such as
    `incidents`) describes itself and accepts --home after its own name."""

    def leaves(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, Any]]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return [(name, parser)]
        return [
            leaf
            for sub in subs
            for child_name, child in sub.choices.items()
            for leaf in leaves(child, f"{name} {child_name}".strip())
        ]

    commands = leaves(build_parser(), "")
    assert len(commands) > 10
    for name, p in commands:
        assert "--home" in p.format_help(), name
        assert p.description, name


def test_query_json_is_one_array_of_objects(seeded: Path) -> None:
    r = run_aiops(
        "query",
        "--home",
        str(seeded),
        "SELECT route, count(*) AS n, min(ts) AS first FROM requests GROUP BY route",
        "--format",
        "json",
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data[0]["route"] == "claims-api" and data[0]["n"] == 50
    assert "T" in data[0]["first"]  # ISO 8601 timestamps
    r = run_aiops(
        "query",
        "--home",
        str(seeded),
        "SELECT sum(status) AS s, avg(status) AS a FROM requests",
        "--format",
        "json",
    )
    assert json.loads(r.stdout) == [{"s": 10000, "a": 200.0}]  # numbers, not strings


def test_query_csv_and_table(seeded: Path) -> None:
    r = run_aiops(
        "query",
        "--home",
        str(seeded),
        "SELECT id, status FROM requests ORDER BY id LIMIT 3",
        "--format",
        "csv",
    )
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 3 and rows[0]["status"] == "200"
    r = run_aiops("query", "--home", str(seeded), "SELECT count(*) AS total_requests FROM requests")
    assert r.returncode == 0
    assert "total_requests" in r.stdout and "50" in r.stdout and "1 row" in r.stdout


def test_query_is_read_only_and_errors_are_readable(seeded: Path) -> None:
    r = run_aiops("query", "--home", str(seeded), "DROP TABLE requests")
    assert r.returncode == 1
    assert "read-only" in r.stderr and "Traceback" not in r.stderr
    r = run_aiops("query", "--home", str(seeded), "SELECT nope FROM requests")
    assert r.returncode == 1 and "nope" in r.stderr and "Traceback" not in r.stderr
    assert Store(seeded).query("SELECT count(*) AS n FROM requests")["n"][0] == 50


def test_home_from_environment(seeded: Path) -> None:
    r = run_aiops(
        "query",
        "SELECT count(*) AS n FROM requests",
        "--format",
        "json",
        env={"AIOPS_HOME": str(seeded)},
    )
    assert json.loads(r.stdout) == [{"n": 50}]


def test_worker_once_reports_what_it_loaded(tmp_path: Path) -> None:
    home = tmp_path / "h"
    write_segments(Store(home).home.spool_dir, 3, 10)
    r = run_aiops("worker", "--once", "--home", str(home))
    assert r.returncode == 0, r.stderr
    assert "ingest: 30 rows from 3 segments" in r.stdout
    assert "rollup: 1 minutes recomputed" in r.stdout  # make_row's 30 timestamps share a minute
    assert (
        Store(home).query("SELECT sum(requests) AS n FROM metrics_1m WHERE dimension = 'service'")[
            "n"
        ][0]
        == 30
    )


def test_python_api_returns_polars(seeded: Path) -> None:
    suite.connect(seeded)
    df = suite.query("SELECT status, count(*) AS n FROM requests GROUP BY status")
    assert df.to_dicts() == [{"status": 200, "n": 50}]
