"""The Python API notebooks use: suite.connect/query/requests/incidents/changes/metrics and
suite.detectors (register, score, plugins the worker imports)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import suite
import suite.detectors as detectors
from suite.config import parse_gateway_config
from suite.errors import ConfigError
from suite.rollup import rollup_dirty_minutes
from suite.sample_data import load_into_store, read_sample_files


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("api-home")
    store = suite.connect(home)
    requests, faults = read_sample_files()
    load_into_store(store, requests, faults)
    rollup_dirty_minutes(store)
    return home


def test_requests_filters_match_sql(sample_home: Path) -> None:
    suite.connect(sample_home)
    total = suite.query("SELECT count(*) AS n FROM requests WHERE route = 'claims-api'").item()
    claims = suite.requests(service="claims-api", limit=None, columns=["ts", "route"])
    assert claims.height == total > 0
    assert claims["route"].unique().to_list() == ["claims-api"]
    assert claims["ts"].is_sorted(descending=True)
    llm = suite.requests(kind="llm", limit=None)
    assert set(llm["kind"].unique()) == {"llm"}
    start = claims["ts"].min() + timedelta(hours=12)
    later = suite.requests(since=start, service="claims-api", limit=None, columns=["ts"])
    assert later.height == claims.filter(pl.col("ts") >= start).height
    assert suite.requests(service="claims-api", limit=5).height == 5
    assert suite.requests(service=["claims-api", "quotes-api"], limit=None).height > total


def test_relative_since_and_bad_input(sample_home: Path) -> None:
    suite.connect(sample_home)
    # The sample ends 2026-11-01, so nothing is newer than an hour ago.
    assert suite.requests(since="1h").height == 0
    with pytest.raises(suite.ApiError, match="since='yesterday'"):
        suite.requests(since="yesterday")
    with pytest.raises(suite.ApiError, match="not column names"):
        suite.requests(columns=["ts; DROP TABLE requests"])


def test_metrics_incidents_changes_frames(sample_home: Path) -> None:
    suite.connect(sample_home)
    m = suite.metrics("claims-api")
    assert m.height > 0 and set(m["service"].unique()) == {"claims-api"}
    assert suite.incidents().columns[:3] == ["id", "fingerprint", "title"]
    assert "kind" in suite.changes().columns


def _steps(n: int = 400) -> pl.DataFrame:
    ts = [datetime(2026, 1, 1) + timedelta(minutes=i) for i in range(n)]
    rng = np.random.default_rng(0)
    values = 100 + rng.normal(0, 1, n)
    values[300:] += 40
    return pl.DataFrame({"timestamp": ts, "value": values})


def test_register_and_score_a_custom_detector() -> None:
    @detectors.register("jump_test")
    class Jump(detectors.Detector):
        threshold = 0.5
        defaults = {"size": 10.0, "threshold": 0.5}

        def _initial_carry(self):  # type: ignore[no-untyped-def]
            return {"last": np.nan}

        def _score(self, ts_ns, values, carry):  # type: ignore[no-untyped-def]
            prev = np.concatenate([[carry["last"]], values[:-1]])
            jump = np.abs(values - prev)
            return np.where(np.isfinite(jump) & (jump > self.params["size"]), 1.0, 0.0), {
                "last": values[-1]
            }

    assert "jump_test" in detectors.names()
    scored = detectors.score(_steps(), "jump_test")
    assert scored.filter(pl.col("anomaly"))["timestamp"].to_list() == [
        datetime(2026, 1, 1) + timedelta(minutes=300)
    ]
    with pytest.raises(detectors.DetectorError, match="unknown detector"):
        detectors.score(_steps(), "no_such_detector")
    with pytest.raises(detectors.DetectorError, match="no column 'v'"):
        detectors.score(_steps(), value="v")


PLUGIN = """
import numpy as np
import suite.detectors as detectors


@detectors.register("always_alarm")
class AlwaysAlarm(detectors.Detector):
    threshold = 0.5
    defaults = {"threshold": 0.5}

    def _score(self, ts_ns, values, carry):
        return np.where(np.isfinite(values), 1.0, 0.0), carry
"""


def test_the_worker_runs_a_plugin_detector(sample_home: Path, tmp_path: Path) -> None:
    (tmp_path / "plugin_det.py").write_text(PLUGIN)
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[detect]\ndetector = "always_alarm"\nplugins = ["plugin_det.py"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "suite.cli", "worker", "--once", "--home", str(sample_home),
         "--config", str(cfg)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    suite.connect(sample_home)
    by = suite.query("SELECT detector, count(*) AS n FROM anomalies GROUP BY detector")
    assert by.filter(pl.col("detector") == "always_alarm")["n"].item() > 0


def test_detect_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        parse_gateway_config(
            {"detect": {"detector": "bad name!", "plugins": ["nope.py", "9bad"]}},
            str(tmp_path / "c.toml"),
        )
    text = str(e.value)
    assert "detect.detector: 'bad name!' is not a detector name" in text
    assert "detect.plugins[0]: 'nope.py': no such file" in text
    assert "detect.plugins[1]: '9bad' is neither a module name nor a .py file" in text


def test_a_broken_plugin_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(detectors.PluginError, match="broken.py.*RuntimeError: boom"):
        detectors.load_plugins([str(bad)])
