"""The sample data generator: deterministic, faults where the labels say, loadable."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from suite.errors import AiopsError
from suite.sample_data import (
    SAMPLE_DIR,
    generate,
    load_into_store,
    read_sample_files,
    write_sample_files,
)
from suite.store import Store

END = datetime(2026, 11, 1)
DAY = timedelta(days=1)


def test_same_arguments_same_data() -> None:
    a, fa = generate(days=2, seed=3, end=END)
    b, fb = generate(days=2, seed=3, end=END)
    c, _ = generate(days=2, seed=4, end=END)
    assert a.equals(b) and fa == fb
    assert not a.equals(c)


def test_committed_sample_is_what_the_documented_command_makes(tmp_path: Path) -> None:
    requests, faults = generate(days=2, seed=7, end=END, rate=0.5, faults_per_day=3)
    write_sample_files(requests, faults, tmp_path)
    fresh, fresh_faults = read_sample_files(tmp_path)
    committed, committed_faults = read_sample_files(SAMPLE_DIR)
    assert committed.equals(fresh)
    assert committed_faults == fresh_faults and len(committed_faults) == 3


def test_faults_show_in_their_signal() -> None:
    requests, faults = generate(days=3, seed=11, end=END, faults_per_day=4)
    assert faults
    ts = requests.column("ts")
    for f in faults:
        rows = requests.filter(pc.equal(requests.column("route"), f.service))
        t = rows.column("ts")
        inside = rows.filter(pc.and_(pc.greater_equal(t, f.start), pc.less(t, f.end)))
        # The same hours a day earlier: same daily load, no fault.
        before = rows.filter(pc.and_(pc.greater_equal(t, f.start - DAY), pc.less(t, f.end - DAY)))
        if f.kind == "latency_step":
            assert _median(inside, "duration_ms") > 3 * _median(before, "duration_ms")
        elif f.kind == "error_burst":
            assert _share_5xx(inside) > 0.2 > _share_5xx(before)
        elif f.kind == "traffic_drop":
            assert inside.num_rows < 0.2 * max(before.num_rows, 1)
        else:
            assert _median(inside, "completion_tokens") > 4 * _median(before, "completion_tokens")
    assert ts.type.unit == "us"


def _median(t, column: str) -> float:  # noqa: ANN001
    return float(np.median(t.column(column).to_numpy(zero_copy_only=False)))


def _share_5xx(t) -> float:  # noqa: ANN001
    status = t.column("status").to_numpy()
    return float((status >= 500).mean()) if len(status) else 0.0


def test_load_into_store_then_rollup(home: Path) -> None:
    from suite.rollup import rollup_dirty_minutes

    requests, faults = generate(days=1.5, seed=5, end=END)
    store = Store(home)
    assert load_into_store(store, requests, faults) == requests.num_rows
    rollup_dirty_minutes(store)
    got = store.query(
        "SELECT (SELECT count(*) FROM requests) AS n, "
        "(SELECT sum(requests) FROM metrics_1m WHERE dimension = 'service') AS rolled, "
        "(SELECT count(*) FROM sample_faults) AS faults, "
        "(SELECT count(DISTINCT route) FROM requests) AS services"
    ).to_dicts()[0]
    assert got == {
        "n": requests.num_rows,
        "rolled": requests.num_rows,
        "faults": len(faults),
        "services": 7,
    }
    llm = store.query(
        "SELECT count(*) AS n, count(cost_usd) AS priced FROM requests WHERE kind = 'llm'"
    ).to_dicts()[0]
    http_cost = store.query("SELECT count(cost_usd) AS c FROM requests WHERE kind <> 'llm'").item()
    assert llm["n"] == llm["priced"] > 0 and http_cost == 0


def test_bad_arguments_and_directories(tmp_path: Path) -> None:
    with pytest.raises(AiopsError, match="positive"):
        generate(days=0)
    with pytest.raises(AiopsError, match="not a sample data directory"):
        read_sample_files(tmp_path)
