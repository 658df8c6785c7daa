"""suite.dashboard_data: the filters the traffic explorer pushes into SQL count what the raw
rows say, whether the minute rollups or the raw calls answer; keys never show a secret."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from suite import dashboard_data as data
from suite.rollup import rollup_dirty_minutes
from suite.store import Store
from tests.dashboards.seed import Seeded, seed_home


@pytest.fixture(scope="module")
def seeded_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    root = tmp_path_factory.mktemp("dashboard-data") / "home"
    return root, seed_home(root)


@pytest.fixture
def seeded(seeded_root: tuple[Path, Seeded], monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """One seeded home shared by the tests that only read it."""
    monkeypatch.setenv("AIOPS_HOME", str(seeded_root[0]))
    return seeded_root[1]


@pytest.fixture
def own_seeded(home: Path) -> Seeded:
    return seed_home(home)


def raw_count(store: Store, where: str) -> int:
    return int(store.query(f"SELECT count(*) FROM requests WHERE {where}").item())


@pytest.mark.parametrize(
    ("fields", "where", "source"),
    [
        ({}, "true", "rollups"),
        ({"services": ("openai",)}, "route = 'openai'", "rollups"),
        ({"models": ("mystery-model",)}, "llm_model = 'mystery-model'", "rollups"),
        ({"tenants": ("acme",), "services": ("claims-api",)}, "tenant = 'acme' AND route = 'claims-api'", "rollups"),
        ({"status_classes": ("5xx",)}, "status >= 500", "requests"),
        ({"status_classes": ("4xx", "2xx")}, "status BETWEEN 200 AND 299 OR status BETWEEN 400 AND 499", "requests"),
        ({"kinds": ("mcp",)}, "kind = 'mcp'", "requests"),
        ({"keys": ("key-a",)}, "api_key_id = 'key-a'", "requests"),
        ({"path_contains": "/claims/new"}, "contains(path, '/claims/new')", "requests"),
        ({"models": ("gpt-4o-mini",), "tenants": ("acme",)}, "llm_model = 'gpt-4o-mini' AND tenant = 'acme'", "requests"),
    ],
)  # fmt: skip
def test_traffic_filters_count_what_the_rows_say(
    seeded: Seeded, fields: dict[str, object], where: str, source: str
) -> None:
    store = Store()
    since = seeded.now - timedelta(days=1)
    f = data.TrafficFilter(since=since, until=seeded.now + timedelta(minutes=1), **fields)  # type: ignore[arg-type]
    expected = raw_count(store, f"({where}) AND ts >= '{since}'")
    assert expected > 0
    assert data.traffic_source(store, f) == source
    totals = data.traffic_totals(store, f)
    assert totals["calls"] == expected
    series = data.traffic_series(store, f, 5)
    assert series["calls_per_min"].sum() * 5 == pytest.approx(expected)
    sample = data.traffic_sample(store, f, 10)
    assert sample.height == min(10, expected)


def test_rows_not_rolled_up_yet_are_counted_from_the_raw_calls(own_seeded: Seeded) -> None:
    seeded = own_seeded
    store = Store()
    with store.write() as con:
        con.execute(
            "INSERT INTO requests (id, ts, route, status, kind) VALUES ('fresh-1', ?, 'openai', 200, 'llm')",
            [seeded.now],
        )
        con.execute("INSERT INTO rollup_dirty_minutes VALUES (?)", [seeded.now])
    f = data.TrafficFilter(seeded.now - timedelta(hours=3), seeded.now + timedelta(minutes=1))
    total = raw_count(store, "true")
    assert data.traffic_source(store, f) == "requests"
    assert data.traffic_totals(store, f)["calls"] == total
    rollup_dirty_minutes(store)
    assert data.traffic_source(store, f) == "rollups"
    assert data.traffic_totals(store, f)["calls"] == total


def test_llm_usage_groups_every_dimension_in_one_scan(seeded: Seeded) -> None:
    by = data.llm_usage_by_all(
        Store(), seeded.now - timedelta(days=1), seeded.now + timedelta(minutes=1)
    )
    assert set(by) == set(data.LLM_DIMENSIONS)
    for dim, table in by.items():
        assert int(table["calls"].sum()) == seeded.llm_calls, dim
    providers = {r["provider"]: r for r in by["provider"].iter_rows(named=True)}
    assert providers["selfhosted"]["unpriced_calls"] == 5
    assert providers["openai"]["cost_usd"] == pytest.approx(seeded.llm_cost)
    keys = {r["key"]: r["calls"] for r in by["key"].iter_rows(named=True)}
    assert keys == {"key-a": 10, "(none)": 45}


def test_keys_never_show_the_salt_or_hash(seeded: Seeded) -> None:
    store = Store()
    assert {"salt", "hash"}.isdisjoint(data.safe_key_columns(store))
    keys = data.gateway_keys(store, seeded.now)
    assert keys.height == 1 and {"salt", "hash"}.isdisjoint(keys.columns)
    assert "SALT" not in json.dumps(keys.to_dicts(), default=str)


def test_chaos_drills_read_the_gateway_file_and_survive_a_bad_one(tmp_path: Path) -> None:
    assert data.chaos_drills(tmp_path) == []
    (tmp_path / "chaos.json").write_text(
        '{"version": 1, "drills": [{"id": "CHG-1", "route": "a"}]}'
    )
    assert data.chaos_drills(tmp_path) == [{"id": "CHG-1", "route": "a"}]
    (tmp_path / "chaos.json").write_text("{not json")
    assert data.chaos_drills(tmp_path) == []
